import { BadRequestError } from './errors.js';

/** Header names of the protocol, lowercased as Node presents incoming headers. */
export const HEADER = {
  checksum: 'sha256-checksum',
  logicalSize: 'logical-size',
  lastModified: 'last-modified',
  contentEncoding: 'content-encoding',
  acceptEncoding: 'accept-encoding',
  exception: 'x-exception',
  /** Ours: the error code (errors.ts) of an error answer; the Python server sends none. */
  errorCode: 'x-error-code',
  /**
   * Ours: the identity of the store behind the server (made once, when the store was
   * created), on the answers to `/version` and `/status`. The Python server sends none.
   */
  storeId: 'x-filetracker-store-id',
} as const;

/** Fields of ft-server's `GET /status` JSON that clients may read. */
export const STATUS_FIELD = {
  /** The same identity as the {@link HEADER} `storeId`. */
  storeId: 'storeId',
} as const;

/** The query parameter that carries a version on PUT, DELETE and list. */
export const LAST_MODIFIED_PARAM = 'last_modified';

const HEX64 = /^[0-9a-fA-F]{64}$/;

/** `SHA256-Checksum`: 64 hex digits, lowercased; anything else is 400. */
export function parseChecksumHeader(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (!HEX64.test(v)) {
    throw new BadRequestError('BAD_CHECKSUM', 'SHA256-Checksum must be 64 hex digits');
  }
  return v.toLowerCase();
}

/** `Logical-Size`: a whole number of bytes. */
export function parseLogicalSizeHeader(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (!/^\d{1,16}$/.test(v) || !Number.isSafeInteger(Number(v))) {
    throw new BadRequestError('BAD_HEADER', 'Logical-Size must be a whole number of bytes');
  }
  return Number(v);
}

/** Only exactly `gzip` means a gzip body (PROTOCOL.md); anything else is a plain body. */
export function isGzipEncoding(value: string | undefined): boolean {
  return value !== undefined && value.trim().toLowerCase() === 'gzip';
}

/**
 * Whether an `Accept-Encoding` value allows gzip (q=0 refuses it). An explicit `gzip` or
 * `x-gzip` entry wins over `*`, wherever it stands (RFC 9110, 12.5.3).
 */
export function acceptsGzip(value: string | undefined): boolean {
  if (!value) return false;
  let star = false;
  for (const part of value.split(',')) {
    const [coding, ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    const q = params.find((p) => p.startsWith('q='));
    const allowed = q === undefined || Number(q.slice(2)) !== 0;
    if (coding === 'gzip' || coding === 'x-gzip') return allowed;
    if (coding === '*') star = allowed;
  }
  return star;
}
