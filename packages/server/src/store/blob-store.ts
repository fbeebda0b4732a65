import type { PositionalReader } from '@filetracker/runtime';
import type { Readable } from 'node:stream';

/**
 * A body read to its end and verified: its content hashes to `digest` and holds
 * `logicalSize` bytes (DESIGN.md invariant 3). Until {@link BlobStore.commit} it is no blob:
 * nothing may name it, and a crash leaves at most a leftover the store clears at open.
 */
export interface StagedBlob {
  /** sha256 (hex) of the uncompressed content. */
  readonly digest: string;
  readonly logicalSize: number;
  /** Bytes of the gzip staged (0 when nothing was written). */
  readonly storedSize: number;
  /** Bytes of the request body as received. */
  readonly receivedBytes: number;
  /**
   * Where the implementation keeps the staged gzip (a temp file, an upload's key);
   * undefined when the body was only verified against a blob already stored.
   */
  readonly location: string | undefined;
}

/** What a client claims about a body, and how to read it (see {@link BlobStore.stage}). */
export interface StageOptions {
  /** The body is gzip (Content-Encoding: gzip) and is stored as it came. */
  gzip: boolean;
  /** false: only verify the body (its digest is stored already and pinned by the caller). */
  write: boolean;
  /** The body's Content-Length, when it declared one. */
  bodyLength?: number | undefined;
  expectedDigest?: string | undefined;
  expectedLogicalSize?: number | undefined;
  /** Content larger than this (uncompressed) is refused with 413, as soon as it is seen. */
  maxLogicalSize?: number | undefined;
}

/**
 * The stored gzip of a blob, opened: positional reads (or the whole of it), then close (the
 * reader's job). A local blob's `FileHandle` is one; a bucket's blob is read by ranged GETs.
 */
export interface BlobHandle extends PositionalReader {
  readFile(): Promise<Buffer>;
}

/** A blob's sizes, read off the blob itself (for a blob whose record is lost). */
export interface BlobSizes {
  logicalSize: number;
  storedSize: number;
}

/**
 * An upload's body: streamed, or given whole by a caller in this process that holds it in
 * memory already (`ft-migrate --into`, which has read a small file whole). A whole body
 * goes through no stream: a plain one is hashed and gzipped by the store itself in one
 * call each, with nothing to inflate again to verify, where the same bytes gzipped by the
 * caller are inflated and hashed again as any upload's claims are (issue 15).
 */
export type StageBody = Readable | Buffer;

/**
 * The blob port: content-addressed gzip blobs, immutable once committed. It knows nothing of
 * names, versions or reference counts (the {@link MetadataStore}'s), and decides nothing
 * about when a blob may go: its caller does.
 *
 * Contract (test/contract/blob-store.ts checks it for every implementation):
 * - **stage** reads the body to its end while hashing and counting it, and refuses it with a
 *   4xx error (BadRequestError, FileTooLargeError) when it is not what the options claim, or
 *   with InsufficientStorageError when the store is full. A refused or failed stage leaves
 *   nothing behind; a staged blob is invisible to `open` and `digests` until committed. A
 *   body given whole (a Buffer, see {@link StageBody}) is staged exactly as the same bytes
 *   streamed would be: the same blob, digest and sizes, the same refusals.
 * - **commit** makes a staged blob readable under its digest and durable: once it resolves,
 *   the blob survives a crash or a power cut, so a name may be pointed at it. Atomic: a
 *   reader sees no blob or the whole blob, never part of one. Committing a digest that is
 *   stored already leaves one blob with that content. A crash during commit leaves either
 *   the whole blob or none.
 * - **discard** drops a staged blob (commit not called, or failed); idempotent. It never
 *   rejects: a staged copy it cannot remove (the service down) is left, as a crash would
 *   leave it, for removeStaleStaging; the caller's answer is what failed before.
 * - **open** gives a handle on the whole gzip, or null for a digest not stored. The bytes of
 *   an open handle stay readable even if the blob is removed meanwhile (in a bucket: a
 *   blob up to 1 MiB is read whole at open; a larger one lasts the sweeper's grace period).
 * - **has** says whether a digest's blob is there (a record may outlive a blob removed by
 *   hand: a dedup checks).
 * - **remove** deletes a blob; a digest not stored is no error. Not durable by itself: a
 *   crash may bring the blob back (an orphan, which ft-recover or a sweep removes).
 * - **digests** lists every committed blob (for repair and sweeps; never on a request).
 * - **staleBlobs** lists the committed blobs last written before a time (the sweeper's
 *   orphan candidates: the caller decides, under the database's lock, which may go).
 * - **removeStaleStaging** deletes what uploads left staged before a time (a crash between
 *   stage and commit or discard), and says how many went.
 * - **checkWritable** makes and removes a small staged object the way an upload does, and
 *   rejects with the file-system or service error when it cannot.
 */
export interface BlobStore {
  stage(body: StageBody, options: StageOptions): Promise<StagedBlob>;
  commit(blob: StagedBlob): Promise<void>;
  discard(blob: StagedBlob): Promise<void>;
  open(digest: string): Promise<BlobHandle | null>;
  /** Whether a blob of `digest` is committed (and not removed since). */
  has(digest: string): Promise<boolean>;
  /** The sizes read off a stored blob (decompressing it), or undefined when not stored. */
  sizes(digest: string): Promise<BlobSizes | undefined>;
  remove(digest: string): Promise<void>;
  digests(): AsyncIterable<string>;
  /** The digests of the committed blobs last written before `beforeMs` (epoch ms). */
  staleBlobs(beforeMs: number): AsyncIterable<string>;
  /** Deletes staged leftovers last written before `beforeMs` (epoch ms); returns how many. */
  removeStaleStaging(beforeMs: number): Promise<number>;
  checkWritable(): Promise<void>;
}
