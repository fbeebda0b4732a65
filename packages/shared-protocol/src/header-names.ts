/**
 * Every header name the servers and the client use, spelled as on the wire (HTTP names
 * are case-insensitive; {@link headerValue} reads them from Node's lowercased headers).
 */
export const HEADER = {
  checksum: 'SHA256-Checksum',
  logicalSize: 'Logical-Size',
  lastModified: 'Last-Modified',
  contentEncoding: 'Content-Encoding',
  contentLength: 'Content-Length',
  contentType: 'Content-Type',
  acceptEncoding: 'Accept-Encoding',
  /** The one-line reason of an error answer, which the Python client shows. */
  exception: 'X-Exception',
  /** Ours: the error code (errors.ts) of an error answer; the Python server sends none. */
  errorCode: 'X-Error-Code',
  /** The methods a 405 names (ours; Python answers 500). */
  allow: 'Allow',
  /** Where a 307 of migration mode sends a read. */
  location: 'Location',
  /** Ours: the digest of a file, for conditional GETs. */
  etag: 'ETag',
  ifNoneMatch: 'If-None-Match',
  vary: 'Vary',
  connection: 'Connection',
  userAgent: 'User-Agent',
  /**
   * Ours: the identity of the store behind the server (made once, when the store was
   * created), on the answers to `/version` and `/status`. The Python server sends none.
   */
  storeId: 'X-Filetracker-Store-Id',
} as const;

/** Fields of ft-server's `GET /status` JSON that clients may read. */
export const STATUS_FIELD = {
  /** The same identity as the {@link HEADER} `storeId`. */
  storeId: 'storeId',
} as const;

/** The media types of the protocol's answers. */
export const MEDIA_TYPE = {
  /** A file, in both servers, whatever its name says. */
  file: 'application/octet-stream',
  /** Error reasons, listings and the empty bodies of PUT and DELETE. */
  text: 'text/plain; charset=utf-8',
  /** `GET /version`. */
  json: 'application/json',
} as const;
