import { formatHttpDate, nowVersion, parseHttpDate } from './dates.js';
import { FiletrackerError } from './errors.js';
import { HEADER } from './header-names.js';
import {
  LAST_MODIFIED_PARAM,
  headerValue,
  isGzipEncoding,
  parseLogicalSizeHeader,
} from './headers.js';
import { encodeName, normalizeName } from './path.js';
import { preparePutBody, type PutBody } from './put-body.js';
import { prepareStoredBody, type StoredBody } from './stored-body.js';

/*
 * What a client of protocol 2 sends and reads, with no HTTP library: the URLs, the
 * `last_modified` query, and the headers of the answers. `FiletrackerClient` (got) and
 * ft-migrate's lean uploader (node:http) both go by these.
 */

/** Lowercased answer headers, as Node and got give them. */
export type AnswerHeaders = Readonly<Record<string, string | string[] | undefined>>;

/** The latest date `Date` can hold, in seconds. */
const MAX_VERSION = 8.64e12;

/**
 * The root every request URL starts with, for a server at `baseUrl` (`http(s)://host:port`,
 * optionally with a path prefix such as `/ft`, with or without a trailing slash). With a
 * prefix, requests go to `/ft//files/...`, which the server's "last `//`" rule serves
 * whether or not a proxy strips the prefix. A `TypeError` for another scheme.
 */
export function requestRoot(baseUrl: string): string {
  const url = new URL(baseUrl);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`Not an http(s) URL: ${baseUrl}`);
  }
  url.search = '';
  url.hash = '';
  return url.pathname === '/' ? url.href.slice(0, -1) : url.href.replace(/\/?$/, '/');
}

/** The URL of `name` under `/files`, percent-encoded as the Python client sends it. */
export function fileUrl(root: string, name: string): string {
  return `${root}/files${encodeName(normalizeName(name))}`;
}

/** A `TypeError` unless `version` is a whole number of seconds `Date` can hold. */
export function checkVersion(version: number): number {
  if (!Number.isInteger(version) || Math.abs(version) > MAX_VERSION) {
    throw new TypeError(`A version is a whole number of seconds, got ${version}`);
  }
  return version;
}

/** `?last_modified=...` form-encoded as the Python client sends it (`+`, `%2C`). */
export function versionQuery(version: number): string {
  const date = formatHttpDate(checkVersion(version));
  return `?${new URLSearchParams({ [LAST_MODIFIED_PARAM]: date }).toString()}`;
}

/** A `PROTOCOL_ERROR`: the server answered something the protocol does not allow. */
export function protocolError(message: string, status: number, cause?: unknown): FiletrackerError {
  return new FiletrackerError(message, { code: 'PROTOCOL_ERROR', status, cause });
}

/** A success is a 2xx; a 3xx not followed is not one. */
export function checkSuccess(status: number): void {
  if (status < 200 || status > 299) throw protocolError(`Unexpected answer ${status}`, status);
}

/** The version an answer names in `Last-Modified` (a `PROTOCOL_ERROR` if none or bad). */
export function answerVersion(status: number, headers: AnswerHeaders): number {
  const value = headerValue(headers, HEADER.lastModified);
  if (value === undefined) throw protocolError('The answer has no Last-Modified header', status);
  try {
    return parseHttpDate(value);
  } catch (err) {
    throw protocolError('The answer has an unparsable Last-Modified header', status, err);
  }
}

/** The logical size of a GET's answer: `Logical-Size` if sent; else `Content-Length` unless the body is gzip. */
export function answerSize(status: number, headers: AnswerHeaders): number | undefined {
  try {
    const logical = parseLogicalSizeHeader(headerValue(headers, HEADER.logicalSize));
    if (logical !== undefined) return logical;
    if (isGzipEncoding(headerValue(headers, HEADER.contentEncoding))) return undefined;
    return parseLogicalSizeHeader(headerValue(headers, HEADER.contentLength));
  } catch (err) {
    throw protocolError('The answer has an unparsable size header', status, err);
  }
}

/**
 * The logical size a HEAD answers (PROTOCOL.md): `Logical-Size` when the answer is gzip,
 * else `Content-Length`; a `PROTOCOL_ERROR` if absent or unparsable.
 */
export function headSize(status: number, headers: AnswerHeaders): number {
  const gzip = isGzipEncoding(headerValue(headers, HEADER.contentEncoding));
  let logicalSize: number | undefined;
  try {
    logicalSize = parseLogicalSizeHeader(
      headerValue(headers, gzip ? HEADER.logicalSize : HEADER.contentLength),
    );
  } catch (err) {
    throw protocolError('HEAD answered an unparsable size', status, err);
  }
  if (logicalSize === undefined) throw protocolError('HEAD answered no size', status);
  return logicalSize;
}

/** The headers every request carries: what the Python client sends. Our server answers gzip as stored, 1.x servers plain. */
export const CLIENT_HEADERS: Readonly<Record<string, string>> = {
  [HEADER.acceptEncoding]: 'gzip, deflate',
  [HEADER.userAgent]: 'filetracker-ts',
};

/** Options of a client's `put`. */
export interface PutOptions {
  /** The version to store, default now ({@link nowVersion}), as the Python client sends. */
  version?: number;
  /** Send gzip (the server stores gzip either way), default true. */
  compress?: boolean;
  /** zlib level of the gzip sent, default 6 (the Python client's). */
  gzipLevel?: number;
  signal?: AbortSignal;
}

/** Options of a client's `putStored` (ft-migrate --from): the version is the source's. */
export interface PutStoredOptions {
  version: number;
  signal?: AbortSignal;
  /** zlib level when plain content has to be gzipped, default 6. */
  gzipLevel?: number;
}

/** What a `putStored` tells: the version the server kept, and the content size when known. */
export interface PutStoredResult {
  version: number;
  logicalSize: number | undefined;
}

/**
 * One `PUT /files/{name}` as it goes on the wire (PROTOCOL.md, PUT): the URL with
 * `?last_modified=`, and the body with its headers (`Content-Encoding`, `SHA256-Checksum`,
 * `Logical-Size`, `Content-Length`).
 */
export interface PutRequest {
  url: string;
  body: PutBody;
}

/**
 * Sends one PUT with a client's HTTP library (got, node:http), redirects not followed:
 * resolves with the answer's status and headers, rejects as the client does for a 4xx or
 * 5xx answer or a connection failure.
 */
export type PutSender = (
  request: PutRequest,
  signal: AbortSignal | undefined,
) => Promise<{ status: number; headers: AnswerHeaders }>;

/**
 * A client's `put`: `PUT /files/{name}` of `source` (a Buffer, a file path or a stream; see
 * `preparePutBody`) through `send`; resolves with the version the server kept.
 */
export async function sendPut(
  root: string,
  name: string,
  source: string | Buffer | NodeJS.ReadableStream,
  options: PutOptions,
  send: PutSender,
): Promise<number> {
  const url = fileUrl(root, name) + versionQuery(options.version ?? nowVersion());
  const { signal, gzipLevel } = options;
  const body = await preparePutBody(source, options.compress ?? true, signal, gzipLevel);
  return putAnswerVersion(await send({ url, body }, signal));
}

/**
 * A client's `putStored`: `PUT /files/{name}` of a file as a 2.x source keeps it, its gzip
 * passed through (see `prepareStoredBody`), through `send`.
 */
export async function sendPutStored(
  root: string,
  name: string,
  stored: StoredBody,
  options: PutStoredOptions,
  send: PutSender,
): Promise<PutStoredResult> {
  const url = fileUrl(root, name) + versionQuery(options.version);
  const { signal, gzipLevel } = options;
  const body = await prepareStoredBody(stored, signal, gzipLevel);
  return {
    version: putAnswerVersion(await send({ url, body }, signal)),
    logicalSize: body.logicalSize,
  };
}

/**
 * The version a PUT's answer says the server kept (`Last-Modified`), newer than the one
 * sent when it already had a newer one; a `PROTOCOL_ERROR` for a non-2xx (a 3xx is never
 * followed) or a missing or bad `Last-Modified`.
 */
function putAnswerVersion({ status, headers }: { status: number; headers: AnswerHeaders }): number {
  checkSuccess(status);
  return answerVersion(status, headers);
}
