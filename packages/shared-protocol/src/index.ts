// The wire: names, versions and dates, headers, methods, errors and their answers.
export {
  FiletrackerError,
  BadRequestError,
  NotFoundError,
  ConflictError,
  MethodNotAllowedError,
  FileTooLargeError,
  InsufficientStorageError,
  StoreNotWritableError,
  FallbackError,
  DeletedError,
  codeForStatus,
  oneLine,
  type FiletrackerErrorCode,
  type FiletrackerErrorOptions,
} from './errors.js';
export { answerReason, errorAnswer, type AnswerReason, type ErrorAnswer } from './error-answer.js';
export { HEADER, MEDIA_TYPE, STATUS_FIELD } from './header-names.js';
export {
  LAST_MODIFIED_PARAM,
  acceptsGzip,
  digestOfEtag,
  exceptionHeader,
  headerValue,
  isGzipEncoding,
  parseChecksumHeader,
  parseLogicalSizeHeader,
} from './headers.js';
export {
  ENDPOINTS,
  encodeName,
  joinName,
  normalizeName,
  parseRequestPath,
  percentDecode,
  splitName,
  type Endpoint,
  type RequestTarget,
} from './path.js';
export { ENDPOINT_METHODS, LEGACY_METHODS, checkMethod } from './methods.js';
export { PROTOCOL_VERSION, VERSION_BODY, parseVersionBody } from './protocol-version.js';
export {
  LEGACY_FILES_DIR,
  legacyFilesDir,
  legacyName,
  parseLegacyPath,
  type LegacyTarget,
} from './legacy-path.js';
export { LATEST_DATE_VERSION, formatHttpDate, nowVersion, parseHttpDate } from './dates.js';
export { SMALL_FILE_BYTES } from './put-body.js';
export { prepareStoredBody, type StoredBody, type StoredPutBody } from './stored-body.js';
export {
  FiletrackerClient,
  type ClientOptions,
  type GetOptions,
  type GetResult,
  type PutOptions,
  type ServerVersion,
  type StatResult,
} from './client.js';
