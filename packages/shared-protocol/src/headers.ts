import { BadRequestError, oneLine } from './errors.js';
import { HEADER } from './header-names.js';
import { nowVersion, parseHttpDate } from './dates.js';

/** The first value of header `name` (any case) in Node's or got's lowercased headers. */
export function headerValue(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  name: string,
): string | undefined {
  const value = headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * `X-Exception` with `message` made one latin-1-safe line: how every answer that is not a
 * success gives its reason (error answers, and a 503 of `/healthz` or `/status`).
 */
export function exceptionHeader(message: string): Record<string, string> {
  return { [HEADER.exception]: oneLine(message) };
}

/** The query parameter that carries a version on PUT, DELETE and list. */
export const LAST_MODIFIED_PARAM = 'last_modified';

/**
 * The cutoff of a `/list` from its `?last_modified=` value (the first, if repeated):
 * missing or empty is the server's now, so versions in the future stay hidden; unparsable
 * is 400 (PROTOCOL.md `GET /list`). Both servers read it here.
 */
export function listCutoff(value: string | readonly string[] | undefined): number {
  const first = typeof value === 'string' ? value : value?.[0];
  return first === undefined || first === '' ? nowVersion() : parseHttpDate(first);
}

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

/**
 * The content digest a strong `ETag` names, as ft-server sends it (`"<sha256 hex>"`), or
 * `undefined` for any other tag (the Python server sends none).
 */
export function digestOfEtag(value: string | undefined): string | undefined {
  const match = value === undefined ? null : /^\s*"([0-9a-fA-F]{64})"\s*$/.exec(value);
  return match ? match[1]!.toLowerCase() : undefined;
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
