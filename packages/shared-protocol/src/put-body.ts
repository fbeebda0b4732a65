import { createHash } from 'node:crypto';
import fs, { createReadStream } from 'node:fs';
import { PassThrough, pipeline, type Readable, type Transform } from 'node:stream';
import { promisify } from 'node:util';
import { createGzip, gzip, gzipSync } from 'node:zlib';
import { sha256OfStream } from '@filetracker/runtime';
import { HEADER } from './headers.js';

/**
 * Files below this size are read into memory and sent like a Buffer (gzip, all hints,
 * `Content-Length`), as the Python client sends everything; larger ones are streamed so
 * memory stays bounded whatever the size.
 */
export const SMALL_FILE_BYTES = 1024 * 1024;

/** zlib's default, and what the Python client uses (`gzip.compress`'s 9 is too slow). */
export const DEFAULT_GZIP_LEVEL = 6;

const gzipAsync = promisify(gzip);

/*
 * Through callbacks, promisified: in Node 20 a call through fs/promises costs about twice
 * the main-thread CPU, and ft-migrate makes several per file (the server's
 * store/fs-calls.ts has the measurement).
 */
const stat = promisify(fs.stat);
function readFile(path: string, signal?: AbortSignal): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    fs.readFile(path, { signal }, (err, data) => (err ? reject(err) : resolve(data))),
  );
}

/**
 * Up to this size a body is gzipped on the calling thread: a trip through the thread pool
 * and zlib's stream machinery cost more than compressing a few KiB (at level 6, 64 KiB take
 * about 2 ms).
 */
const GZIP_INLINE_BYTES = 64 * 1024;

/** What one PUT sends, made fresh for every attempt. */
export interface PutBody {
  headers: Record<string, string>;
  /** A new body for one attempt; for a stream source, only the first call is valid. */
  open(): Buffer | Readable;
  /** Whether `open()` can be called again after a failed attempt (buffer or file). */
  replayable: boolean;
}

/**
 * Prepares the body of a PUT from a Buffer, a file path or a stream (PROTOCOL.md, PUT):
 * gzip with `SHA256-Checksum` (of the uncompressed bytes) and `Logical-Size` when the
 * digest can be known up front, gzip without hints for a stream, plain bytes and no hints
 * when `compress` is false.
 */
export async function preparePutBody(
  source: string | Buffer | NodeJS.ReadableStream,
  compress: boolean,
  signal?: AbortSignal,
  level = DEFAULT_GZIP_LEVEL,
): Promise<PutBody> {
  if (Buffer.isBuffer(source)) return bufferBody(source, compress, level);
  if (typeof source === 'string') return fileBody(source, compress, level, signal);
  // A stream can be read once: gzip it on the fly and let the server hash it.
  const body: Transform = compress ? createGzip({ level }) : new PassThrough();
  let opened = false;
  return {
    headers: compress ? { [HEADER.contentEncoding]: 'gzip' } : {},
    replayable: false,
    open() {
      if (opened) throw new TypeError('A stream body can be sent only once');
      opened = true;
      // Errors of either side surface as errors of `body`, which got reports.
      pipeline(source, body, () => {});
      return body;
    },
  };
}

async function bufferBody(data: Buffer, compress: boolean, level: number): Promise<PutBody> {
  if (!compress) {
    return {
      headers: { 'content-length': String(data.length) },
      replayable: true,
      open: () => data,
    };
  }
  const gz =
    data.length <= GZIP_INLINE_BYTES ? gzipSync(data, { level }) : await gzipAsync(data, { level });
  return {
    headers: {
      ...hints(createHash('sha256').update(data).digest('hex'), data.length),
      'content-length': String(gz.length),
    },
    replayable: true,
    open: () => gz,
  };
}

async function fileBody(
  path: string,
  compress: boolean,
  level: number,
  signal?: AbortSignal,
): Promise<PutBody> {
  const info = await stat(path);
  if (info.size < SMALL_FILE_BYTES) {
    return bufferBody(await readFile(path, signal), compress, level);
  }
  if (!compress) {
    // Chunked: a Content-Length taken from stat() would break if the file changes size.
    return { headers: {}, replayable: true, open: () => createReadStream(path) };
  }
  // First pass: the digest and size, so the server can verify what it stores.
  const { digest, size } = await sha256OfStream(createReadStream(path), signal);
  return {
    headers: hints(digest, size),
    replayable: true,
    open() {
      const gz = createGzip({ level });
      pipeline(createReadStream(path), gz, () => {});
      return gz;
    },
  };
}

function hints(checksum: string, logicalSize: number): Record<string, string> {
  return {
    [HEADER.contentEncoding]: 'gzip',
    [HEADER.checksum]: checksum,
    [HEADER.logicalSize]: String(logicalSize),
  };
}
