import { HEADER } from './header-names.js';

/**
 * Error codes are part of the contract (README lists them); messages are not.
 */
export type FiletrackerErrorCode =
  | 'BAD_PATH'
  | 'UNKNOWN_ENDPOINT'
  | 'MISSING_DATE'
  | 'BAD_DATE'
  | 'BAD_HEADER'
  | 'BAD_CHECKSUM'
  | 'CHECKSUM_MISMATCH'
  | 'SIZE_MISMATCH'
  | 'BAD_GZIP'
  | 'INCOMPLETE_BODY'
  | 'FILE_TOO_LARGE'
  | 'NOT_FOUND'
  | 'NOT_A_DIRECTORY'
  | 'PATH_CONFLICT'
  | 'METHOD_NOT_ALLOWED'
  | 'INSUFFICIENT_STORAGE'
  | 'STORE_NOT_WRITABLE'
  | 'BACKEND_UNAVAILABLE'
  | 'FALLBACK_UNREACHABLE'
  | 'FALLBACK_TIMEOUT'
  | 'FALLBACK_CANNOT_LIST'
  | 'DELETED'
  | 'VERSION_MISMATCH'
  | 'SERVER_ERROR'
  | 'PROTOCOL_ERROR';

export interface FiletrackerErrorOptions {
  code: FiletrackerErrorCode;
  status: number;
  cause?: unknown;
  /** Extra response headers (e.g. `Allow` for 405). */
  headers?: Record<string, string>;
}

/**
 * The one error type of the protocol: a code, the HTTP status it maps to and a one-line
 * reason. The server maps it to a response; the client raises it from a response.
 */
/** Marks every FiletrackerError, whichever copy of this module made it (see hasInstance). */
const FILETRACKER_ERROR = Symbol.for('@filetracker/shared-protocol FiletrackerError');

export class FiletrackerError extends Error {
  /**
   * `instanceof FiletrackerError` holds for an error made by another copy of this module:
   * ft-migrate runs bundled (scripts/bundle-migrate.mjs), with its own copy, while its
   * `--into` store and its 2.x client load this package's own. A subclass (`instanceof
   * NotFoundError`) is checked as usual, within one copy.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (this !== FiletrackerError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return typeof value === 'object' && value !== null && FILETRACKER_ERROR in value;
  }

  readonly [FILETRACKER_ERROR] = true;
  readonly code: FiletrackerErrorCode;
  readonly status: number;
  readonly headers: Record<string, string>;

  constructor(message: string, options: FiletrackerErrorOptions) {
    super(oneLine(message), { cause: options.cause });
    this.name = 'FiletrackerError';
    this.code = options.code;
    this.status = options.status;
    this.headers = options.headers ?? {};
  }

  /** 4xx messages are the client's to read; 5xx ones may name internals. */
  get expose(): boolean {
    return this.status < 500;
  }
}

/** A request the server will not carry out as sent (4xx). */
export class BadRequestError extends FiletrackerError {
  constructor(code: FiletrackerErrorCode, message: string, cause?: unknown) {
    super(message, { code, status: 400, cause });
    this.name = 'BadRequestError';
  }
}

export class NotFoundError extends FiletrackerError {
  constructor(message: string, code: FiletrackerErrorCode = 'NOT_FOUND', cause?: unknown) {
    super(message, { code, status: 404, cause });
    this.name = 'NotFoundError';
  }
}

/** `/list` of a directory that is absent or a file (PROTOCOL.md: 400, compat). */
export class NotADirectoryError extends FiletrackerError {
  constructor() {
    super("Path doesn't exist or is not a directory", { code: 'NOT_A_DIRECTORY', status: 400 });
    this.name = 'NotADirectoryError';
  }
}

/** A name needs an existing file to be a directory, or the reverse. */
export class ConflictError extends FiletrackerError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'PATH_CONFLICT', status: 409, cause });
    this.name = 'ConflictError';
  }
}

export class MethodNotAllowedError extends FiletrackerError {
  constructor(method: string, allow: readonly string[]) {
    super(`Method ${method} is not allowed here`, {
      code: 'METHOD_NOT_ALLOWED',
      status: 405,
      headers: { [HEADER.allow]: allow.join(', ') },
    });
    this.name = 'MethodNotAllowedError';
  }
}

/** A file larger than the server takes (`--max-file-size`), counted uncompressed (413). */
export class FileTooLargeError extends FiletrackerError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'FILE_TOO_LARGE', status: 413, cause });
    this.name = 'FileTooLargeError';
  }
}

export class InsufficientStorageError extends FiletrackerError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'INSUFFICIENT_STORAGE', status: 507, cause });
    this.name = 'InsufficientStorageError';
  }
}

/**
 * The store's files refuse a write: their owner, an immutable flag or a read-only mount.
 * That is the store's state, for the operator to fix, not a bug: 503, as `/healthz` says,
 * and the reason is shown, so it must name only store-relative places (`ft-tmp/`).
 */
export class StoreNotWritableError extends FiletrackerError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'STORE_NOT_WRITABLE', status: 503, cause });
    this.name = 'StoreNotWritableError';
  }

  override get expose(): boolean {
    return true;
  }
}

/**
 * A service the store is made of (the scale-out backend's database or object store) is
 * down, slow or answering errors: 503 until it is back, which needs no restart. The reason
 * names the service (`database`, `object store`) and never an address or credential.
 */
export class BackendUnavailableError extends FiletrackerError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'BACKEND_UNAVAILABLE', status: 503, cause });
    this.name = 'BackendUnavailableError';
  }

  override get expose(): boolean {
    return true;
  }
}

/**
 * The fallback (1.x) server could not be asked (502), did not answer in time (504), or
 * cannot list a directory (502: a static server without `/list`, such as lighttpd).
 */
export class FallbackError extends FiletrackerError {
  constructor(
    code: 'FALLBACK_UNREACHABLE' | 'FALLBACK_TIMEOUT' | 'FALLBACK_CANNOT_LIST',
    message: string,
    cause?: unknown,
  ) {
    super(message, { code, status: code === 'FALLBACK_TIMEOUT' ? 504 : 502, cause });
    this.name = 'FallbackError';
  }

  /**
   * Shown: the reason is the operator's to act on (start the fallback, or serve the 1.x
   * tree with ft-legacy-static), and its messages name no path or URL of ours.
   */
  override get expose(): boolean {
    return true;
  }
}

/**
 * Migration mode: a PUT at or below the version of a tombstone (a name deleted during the
 * migration). Nothing is stored, so no version can be claimed: 410, not a 200.
 */
export class DeletedError extends FiletrackerError {
  constructor(message: string) {
    super(message, { code: 'DELETED', status: 410 });
    this.name = 'DeletedError';
  }
}

/**
 * The code an error answer without `X-Error-Code` stands for (a Python or 1.x server, or
 * an error that carries only a status), by its status.
 */
export function codeForStatus(status: number): FiletrackerErrorCode {
  if (status === 404) return 'NOT_FOUND';
  if (status === 405) return 'METHOD_NOT_ALLOWED';
  if (status === 409) return 'PATH_CONFLICT';
  if (status === 413) return 'FILE_TOO_LARGE';
  if (status === 507) return 'INSUFFICIENT_STORAGE';
  if (status >= 500) return 'SERVER_ERROR';
  return 'PROTOCOL_ERROR';
}

/** Reasons travel in a header: keep them on one latin-1-safe line. */
export function oneLine(message: string): string {
  // Whole code points (`u`), so a character outside the BMP is one UTF-8 sequence; a lone
  // surrogate has none and would make encodeURIComponent throw.
  return message
    .replace(/[\r\n]+/g, ' ')
    .replace(/[^\x20-\x7e]/gu, (c) =>
      c.length === 1 && isSurrogate(c) ? '%EF%BF%BD' : encodeURIComponent(c),
    );
}

function isSurrogate(c: string): boolean {
  const code = c.charCodeAt(0);
  return code >= 0xd800 && code <= 0xdfff;
}
