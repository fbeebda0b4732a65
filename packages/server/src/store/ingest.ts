import { createHash } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { Readable, Transform, Writable, finished, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGunzip, createGzip, gunzipSync, gzip, gzipSync } from 'node:zlib';
import {
  BadRequestError,
  FileTooLargeError,
  FiletrackerError,
  InsufficientStorageError,
} from '@filetracker/shared-protocol/wire';
import type { StageBody, StageOptions, StagedBlob } from './blob-store.js';
import { unlink, writeDurably } from './fs-calls.js';
import { tmpFile } from './layout.js';

/**
 * What an upload turned out to be once its body was read in full; `location` is the gzip
 * file in `ft-tmp/`, or undefined when the body was only verified.
 */
/** `buffer`: the gzip of a body read whole, kept in memory (see {@link IngestTarget.inMemory}). */
export type IngestResult = StagedBlob & { readonly buffer?: Buffer | undefined };

type IngestOptions = StageOptions;

/** Where bodies are staged, and how plain ones are compressed. */
export interface IngestTarget {
  tmpDir: string;
  /** zlib level for plain bodies. */
  gzipLevel: number;
  /**
   * A small gzip body read whole is kept in memory (`buffer`, no `location`) instead of
   * written to `tmpDir`: for a store whose blobs become durable elsewhere (the object
   * store), where the temp file's writes and fsync bought nothing.
   */
  inMemory?: boolean | undefined;
}

/** Gzip bodies up to this Content-Length are read whole and written in one write... */
const WHOLE_BODY_BYTES = 64 * 1024;
/** ...when they inflate to at most this much (else they are streamed like larger ones). */
const WHOLE_INFLATED_BYTES = 1024 * 1024;

/** The most content bytes a body may hold, and the error for one that holds more. */
interface ContentLimit {
  bytes: number;
  refuse(): FiletrackerError;
}

const sizeMismatch = (): BadRequestError =>
  new BadRequestError('SIZE_MISMATCH', 'Logical-Size does not match the content');

const tooLarge = (maxBytes: number): FileTooLargeError =>
  new FileTooLargeError(`Files larger than ${maxBytes} bytes are not accepted`);

/**
 * What the content must not pass: the client's Logical-Size (a body may not hold more than
 * it claimed), else the server's cap. Passing it ends the upload then and there: a gzip
 * bomb of a few MiB inflates to GiBs, and was inflated and hashed in full before (issue 16).
 */
function contentLimit(options: IngestOptions): ContentLimit | undefined {
  const { expectedLogicalSize: expected, maxLogicalSize: max } = options;
  if (expected !== undefined) return { bytes: expected, refuse: sizeMismatch };
  if (max !== undefined) return { bytes: max, refuse: () => tooLarge(max) };
  return undefined;
}

/** Refuses, before a byte is read, a body whose headers already say it is too large. */
function checkDeclaredSize(options: IngestOptions): void {
  const max = options.maxLogicalSize;
  if (max === undefined) return;
  const { expectedLogicalSize, bodyLength } = options;
  // A plain body is its content; a gzip body's length says nothing of what it inflates to.
  const plainLength = options.gzip ? undefined : bodyLength;
  if ((expectedLogicalSize ?? 0) > max || (plainLength ?? 0) > max) throw tooLarge(max);
}

/**
 * Hashes and counts the uncompressed bytes flowing through; with `gzip`, the bytes passing
 * through are gzip, inflated on the side for hashing and passed on untouched. Content past
 * `limit` fails the stream at once.
 */
class Verifier extends Transform {
  readonly hash = createHash('sha256');
  logicalSize = 0;
  receivedBytes = 0;
  readonly #gunzip: ReturnType<typeof createGunzip> | undefined;
  readonly #limit: ContentLimit | undefined;

  constructor(gzip: boolean, limit: ContentLimit | undefined) {
    super();
    this.#limit = limit;
    if (gzip) {
      const gunzip = createGunzip();
      gunzip.on('data', (chunk: Buffer) => {
        const err = this.#count(chunk);
        if (err) this.destroy(err);
      });
      gunzip.on('error', (err) =>
        this.destroy(
          new BadRequestError('BAD_GZIP', 'Body claims gzip but is not valid gzip', err),
        ),
      );
      this.#gunzip = gunzip;
    }
  }

  /** Counts and hashes content; returns the error when it passes the limit. */
  #count(chunk: Buffer): FiletrackerError | undefined {
    this.logicalSize += chunk.length;
    if (this.#limit && this.logicalSize > this.#limit.bytes) return this.#limit.refuse();
    this.hash.update(chunk);
    return undefined;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.receivedBytes += chunk.length;
    const gunzip = this.#gunzip;
    if (!gunzip) {
      const err = this.#count(chunk);
      if (err) callback(err);
      else callback(null, chunk);
      return;
    }
    this.push(chunk);
    if (gunzip.write(chunk)) callback();
    else gunzip.once('drain', callback);
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    // Stops inflating: zlib checks between output chunks whether its stream is destroyed.
    this.#gunzip?.destroy();
    callback(err);
  }

  override _flush(callback: TransformCallback): void {
    const gunzip = this.#gunzip;
    if (!gunzip) return callback();
    // Inflating ends with the body; a truncated stream errors here (and destroys us).
    gunzip.once('end', () => callback());
    gunzip.end();
  }
}

/** Counts bytes on their way to the file. */
class Counter extends Transform {
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}

const discard = (): Writable =>
  new Writable({
    write(_chunk, _enc, callback) {
      callback();
    },
  });

const gzipAsync = promisify(gzip);

/**
 * Maps a failure while reading a body or writing a blob to the error a client sees;
 * `body` undefined: a body given whole, which cannot fail.
 */
function classify(err: unknown, body: Readable | undefined): unknown {
  if (err instanceof FiletrackerError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new InsufficientStorageError('No space left on the store', err);
  }
  // The store refusing the file (its owner, a flag, a read-only mount) is no fault of the
  // body, though pipeline() has destroyed it by now: the store answers 503 for it.
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return err;
  // The client went away or its connection timed out: the body is short.
  const failedBody =
    body !== undefined && (body.errored !== null || (body.destroyed && !body.readableEnded));
  if (code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || failedBody) {
    return new BadRequestError('INCOMPLETE_BODY', 'Request body ended early', err);
  }
  return err;
}

/**
 * Streams an upload body into `ft-tmp/` as gzip while hashing and counting the uncompressed
 * bytes, then checks them against the client's claims (DESIGN.md invariants 1 and 3). Memory
 * is bounded by stream buffers whatever the size. On any failure the temp file is removed.
 */
export async function ingest(
  body: StageBody,
  options: IngestOptions,
  target: IngestTarget,
): Promise<IngestResult> {
  if (Buffer.isBuffer(body)) return ingestBuffer(body, options, target);
  checkDeclaredSize(options);
  const { bodyLength } = options;
  if (options.gzip && bodyLength && bodyLength <= WHOLE_BODY_BYTES) {
    return ingestWhole(body, options, target);
  }
  return ingestStream(body, options, target);
}

/**
 * {@link ingest} of a body given whole (see StageBody): what the same bytes streamed
 * would give, through no stream. A gzip one up to {@link WHOLE_BODY_BYTES} is verified as
 * a small upload's is ({@link ingestGzip}); a plain one up to {@link WHOLE_INFLATED_BYTES}
 * is hashed, checked and gzipped here, in one call each (a larger one on the thread pool,
 * so the event loop is not held for long), and written with one write: the digest is the
 * store's own, so there is nothing to inflate again, and a dedup hit (`write: false`) is
 * only hashed. Larger bodies are streamed from memory.
 */
async function ingestBuffer(
  body: Buffer,
  options: IngestOptions,
  target: IngestTarget,
): Promise<IngestResult> {
  checkDeclaredSize({ ...options, bodyLength: body.length });
  if (options.gzip) {
    if (body.length <= WHOLE_BODY_BYTES) return ingestGzip(body, undefined, options, target);
  } else if (body.length <= WHOLE_INFLATED_BYTES) {
    const result: IngestResult = {
      digest: createHash('sha256').update(body).digest('hex'),
      logicalSize: body.length,
      storedSize: 0,
      receivedBytes: body.length,
      location: undefined,
    };
    checkClaims(result, options);
    if (!options.write) return result;
    const level = target.gzipLevel;
    const gz =
      body.length <= WHOLE_BODY_BYTES
        ? gzipSync(body, { level })
        : await gzipAsync(body, { level });
    return stageWhole(gz, { ...result, storedSize: gz.length }, undefined, target);
  }
  return ingestStream(Readable.from([body]), options, target);
}

/**
 * {@link ingest} of a small gzip body: read whole, inflated and hashed in one call each, and
 * written with one write. The Python client uploads every file as gzip with Content-Length,
 * and contest files are mostly small; streamed, each upload went through four stream
 * objects and two zlib trips through the thread pool besides the file's open, write,
 * fsync and close. The same zlib inflates, so a body it refuses here is refused alike
 * streamed; one that inflates past {@link WHOLE_INFLATED_BYTES} goes on to be streamed
 * from memory, so a small gzip of a large file cannot hold the event loop for long.
 *
 * A body only to verify (`write: false`: a dedup hit, its blob stored already) is read the
 * same way and written nowhere: streamed, its pipeline made an AbortController per upload
 * and aborted it at the end (Node's own clean-up), a DOMException with its stack each
 * time, and contest data is full of such repeats (the same test files in many packages).
 */
async function ingestWhole(
  body: Readable,
  options: IngestOptions,
  target: IngestTarget,
): Promise<IngestResult> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of body) chunks.push(chunk as Buffer);
  } catch (err) {
    throw classify(err, body);
  }
  return ingestGzip(
    chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks),
    body,
    options,
    target,
  );
}

/** {@link ingestWhole} once the gzip is read (`body`: where from, if streamed). */
async function ingestGzip(
  gz: Buffer,
  body: Readable | undefined,
  options: IngestOptions,
  target: IngestTarget,
): Promise<IngestResult> {
  let plain: Buffer;
  try {
    plain = gunzipSync(gz, { maxOutputLength: WHOLE_INFLATED_BYTES });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      return ingestStream(Readable.from([gz]), options, target);
    }
    throw new BadRequestError('BAD_GZIP', 'Body claims gzip but is not valid gzip', err);
  }
  const result: IngestResult = {
    digest: createHash('sha256').update(plain).digest('hex'),
    logicalSize: plain.length,
    storedSize: gz.length,
    receivedBytes: gz.length,
    location: undefined,
  };
  checkClaims(result, options);
  if (!options.write) return result;
  return stageWhole(gz, result, body, target);
}

/** Stages a verified gzip held whole: kept in memory (`inMemory`) or written with one write. */
async function stageWhole(
  gz: Buffer,
  result: IngestResult,
  body: Readable | undefined,
  target: IngestTarget,
): Promise<IngestResult> {
  if (target.inMemory) return { ...result, buffer: gz };
  const tmpPath = tmpFile(target.tmpDir, 'upload');
  try {
    // Durable before any link may point at it (invariant 1).
    await writeDurably(tmpPath, gz);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') await unlink(tmpPath).catch(() => {});
    throw classify(err, body);
  }
  return { ...result, location: tmpPath };
}

/** Throws when the body is not what the client's headers said it is. */
function checkClaims(result: IngestResult, options: IngestOptions): void {
  // Sizes first, as a streamed body is refused once it passes them, before its digest is known.
  if (
    options.expectedLogicalSize !== undefined &&
    options.expectedLogicalSize !== result.logicalSize
  ) {
    throw sizeMismatch();
  }
  if (options.maxLogicalSize !== undefined && result.logicalSize > options.maxLogicalSize) {
    throw tooLarge(options.maxLogicalSize);
  }
  if (options.expectedDigest !== undefined && options.expectedDigest !== result.digest) {
    throw new BadRequestError('CHECKSUM_MISMATCH', 'SHA256-Checksum does not match the content');
  }
}

/**
 * A stream of `body`'s bytes that pipeline() may destroy without destroying `body`. A failed
 * pipeline destroys its source, and destroying a request whose body is still arriving
 * drops the connection under the error answer (a reset: issue 16). Borrowed, the rest of
 * the body stays paused in `body` for the error handler to drain (see http/linger.ts).
 */
function borrow(body: Readable): Readable {
  const onData = (chunk: Buffer): void => {
    if (!source.push(chunk)) body.pause();
  };
  const source = new Readable({
    read() {
      body.resume();
    },
    destroy(err, callback) {
      body.off('data', onData);
      stopWatching();
      body.pause();
      callback(err);
    },
  });
  const stopWatching = finished(body, (err) => (err ? source.destroy(err) : source.push(null)));
  body.on('data', onData);
  return source;
}

/** {@link ingest} through streams: any size, memory bounded by stream buffers. */
async function ingestStream(
  body: Readable,
  options: IngestOptions,
  target: IngestTarget,
): Promise<IngestResult> {
  const verifier = new Verifier(options.gzip, contentLimit(options));
  const counter = new Counter();
  const source = borrow(body);
  let tmpPath: string | undefined;
  let out: WriteStream | undefined;
  try {
    if (!options.write) {
      await pipeline(source, verifier, discard());
    } else {
      tmpPath = tmpFile(target.tmpDir, 'upload');
      // `flush` fsyncs before the close that pipeline() waits for: once this resolves the
      // bytes are on disk, and only then may a link point at them (invariant 1).
      out = createWriteStream(tmpPath, { flags: 'wx', mode: 0o644, flush: true });
      const stages: NodeJS.ReadWriteStream[] = [verifier];
      if (!options.gzip) stages.push(createGzip({ level: target.gzipLevel }));
      await pipeline([source, ...stages, counter, out]);
    }
  } catch (err) {
    // A body that fails at once (a client gone) can fail the pipeline while the temp
    // file's open is still in the thread pool (7 times in 50 in a bare test): unlinking
    // then would miss the file that the open creates, and leave it in ft-tmp/. So while
    // it is not open yet, wait until the destroyed stream has opened and closed it (an
    // open that failed, on a full disk, has closed it already). Once open, unlink at
    // once: the stream may be in its fsync, which a busy disk can hold for seconds.
    if (out?.pending && !out.closed) {
      const stream = out;
      const closed = new Promise<void>((resolve) => stream.once('close', () => resolve()));
      stream.destroy(); // pipeline() has done so already; a second call is a no-op
      await closed;
    }
    if (tmpPath) await unlink(tmpPath).catch(() => {});
    throw classify(err, body);
  }
  const digest = verifier.hash.digest('hex');
  const result: IngestResult = {
    digest,
    logicalSize: verifier.logicalSize,
    storedSize: counter.bytes,
    receivedBytes: verifier.receivedBytes,
    location: tmpPath,
  };
  try {
    checkClaims(result, options);
  } catch (err) {
    if (tmpPath) await unlink(tmpPath).catch(() => {});
    throw err;
  }
  return result;
}
