import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { FiletrackerError } from './errors.js';
import { HEADER } from './header-names.js';
import { SMALL_FILE_BYTES, preparePutBody, type PutBody } from './put-body.js';

/**
 * A file's bytes as a filetracker 2.x source keeps them (`ft-migrate --from`): the stored
 * gzip, to be passed to the target unchanged, and what the source tells of the content.
 */
export interface StoredBody {
  /** The gzip when `gzip`, else the content itself. Small bodies may come as a Buffer. */
  data: Buffer | Readable;
  gzip: boolean;
  /** SHA-256 (hex) of the content, when the source names it (ft-server's ETag, a blob's name). */
  digest?: string;
  /** The content's size, when the source tells it (`Logical-Size`). */
  logicalSize?: number;
  /** The byte count of `data` (`Content-Length`, a blob's file size), when known. */
  storedSize?: number;
}

/** A PUT body made from a {@link StoredBody}, and the content size when it is known. */
export type StoredPutBody = PutBody & { logicalSize: number | undefined };

function badSource(message: string, cause?: unknown): FiletrackerError {
  // 502: the source's bytes are wrong, not our request to it.
  return new FiletrackerError(message, { code: 'BAD_GZIP', status: 502, cause });
}

/**
 * The PUT body of a stored file (PROTOCOL.md, PUT): the gzip goes through as it is, with
 * `Content-Encoding: gzip` and the `SHA256-Checksum` and `Logical-Size` the target verifies.
 * - A small body (below SMALL_FILE_BYTES) whose hints the source did not give is read into
 *   memory and decompressed here to compute them (and checked against what it did give):
 *   microseconds for the small files a contest store is mostly made of.
 * - A stream goes through with the hints the source gave, `Content-Length` when known;
 *   the target still verifies the gzip's own CRC and size, so a truncated or corrupt
 *   body is refused (400) and nothing is stored.
 * - Plain content (a 1.x tree behind a fallback) is gzipped as a local file would be.
 */
export async function prepareStoredBody(
  body: StoredBody,
  signal?: AbortSignal,
  gzipLevel?: number,
): Promise<StoredPutBody> {
  let { data } = body;
  const hinted = body.digest !== undefined && body.logicalSize !== undefined;
  const small = body.storedSize !== undefined && body.storedSize < SMALL_FILE_BYTES;
  if (!Buffer.isBuffer(data) && small && !(body.gzip && hinted)) data = await readAll(data, signal);
  if (!body.gzip) {
    const put = await preparePutBody(data, true, signal, gzipLevel);
    return { ...put, logicalSize: Buffer.isBuffer(data) ? data.length : body.logicalSize };
  }
  let { digest, logicalSize } = body;
  if (Buffer.isBuffer(data) && (digest === undefined || logicalSize === undefined)) {
    let content: Buffer;
    try {
      content = gunzipSync(data);
    } catch (err) {
      throw badSource('The source sent a body that is not valid gzip', err);
    }
    const actual = createHash('sha256').update(content).digest('hex');
    if (digest !== undefined && digest !== actual) {
      throw badSource(`The source's content does not match its digest ${digest}`);
    }
    if (logicalSize !== undefined && logicalSize !== content.length) {
      throw badSource(`The source's content is not the ${logicalSize} bytes it claims`);
    }
    digest = actual;
    logicalSize = content.length;
  }
  const storedSize = Buffer.isBuffer(data) ? data.length : body.storedSize;
  const headers: Record<string, string> = { [HEADER.contentEncoding]: 'gzip' };
  if (digest !== undefined) headers[HEADER.checksum] = digest;
  if (logicalSize !== undefined) headers[HEADER.logicalSize] = String(logicalSize);
  if (storedSize !== undefined) headers[HEADER.contentLength] = String(storedSize);
  let opened = false;
  return {
    headers,
    replayable: Buffer.isBuffer(data),
    logicalSize,
    open() {
      if (Buffer.isBuffer(data)) return data;
      if (opened) throw new TypeError('A stream body can be sent only once');
      opened = true;
      return data;
    },
  };
}

async function readAll(stream: Readable, signal: AbortSignal | undefined): Promise<Buffer> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of stream) {
      signal?.throwIfAborted();
      chunks.push(chunk as Buffer);
    }
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks);
}
