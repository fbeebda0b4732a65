// The wire without an HTTP client: names, versions and dates, headers, methods, errors and
// their answers, and what a client sends and reads. Importing it does not load got (about
// 90 modules, 0.1-0.2 s of start-up): ft-migrate, which uploads through node:http, starts
// from here (issue 15).
export {
  FiletrackerError,
  BadRequestError,
  NotFoundError,
  NotADirectoryError,
  ConflictError,
  MethodNotAllowedError,
  FileTooLargeError,
  InsufficientStorageError,
  StoreNotWritableError,
  BackendUnavailableError,
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
  listCutoff,
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
  requestEndpoint,
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
  legacyVersion,
  parseLegacyPath,
  type LegacyTarget,
} from './legacy-path.js';
export { LATEST_DATE_VERSION, formatHttpDate, nowVersion, parseHttpDate } from './dates.js';
export { prepareStoredBody, type StoredBody, type StoredPutBody } from './stored-body.js';
export { errorFromAnswer, type ReceivedAnswer } from './answer-error.js';
export {
  CLIENT_HEADERS,
  answerSize,
  answerVersion,
  checkSuccess,
  checkVersion,
  fileUrl,
  headSize,
  protocolError,
  requestRoot,
  sendPut,
  sendPutStored,
  versionQuery,
  type AnswerHeaders,
  type PutOptions,
  type PutRequest,
  type PutSender,
  type PutStoredOptions,
  type PutStoredResult,
} from './client-wire.js';
export { DEFAULT_GZIP_LEVEL, SMALL_FILE_BYTES, preparePutBody, type PutBody } from './put-body.js';
export { splitLines } from './split-lines.js';
