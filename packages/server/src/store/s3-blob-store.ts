import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Agent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import {
  CopyObjectCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { byteCountOfStream } from '@filetracker/runtime';
import { BackendUnavailableError } from '@filetracker/shared-protocol';
import type {
  BlobHandle,
  BlobSizes,
  BlobStore,
  StageBody,
  StageOptions,
  StagedBlob,
} from './blob-store.js';
import type { EngineMetrics, ObjectStoreErrorKind } from './engine-metrics.js';
import { unlink } from './fs-calls.js';
import { ingest, type IngestTarget } from './ingest.js';
import { sdkLogger } from './sdk-logger.js';

/**
 * A blob up to this size is read whole when opened (one GET, from the first byte), so its
 * handle reads from memory and outlives the blob's removal, as the port promises. Larger
 * ones are read by ranged GETs: their bytes stay readable for the sweeper's grace period.
 */
const WHOLE_READ_BYTES = 1024 * 1024;

/**
 * How long a connection to the object store may take, and a request stay silent (no byte
 * either way: an upload or download that keeps moving is never cut off), and how many times
 * a request is tried. A store that is down (connections refused) fails a request within
 * about a second; one that accepts connections and then says nothing, within MAX_ATTEMPTS
 * x (3 + IDLE_TIMEOUT_MS) s, about 26 s (the SDK starts the idle timer of a timeout of 6 s
 * or more 3 s into the request). The SDK's `requestTimeout` only logs a warning, and by
 * default no timeout applies at all: a silent store hung every request.
 */
const CONNECT_TIMEOUT_MS = 3_000;
const IDLE_TIMEOUT_MS = 10_000;
const MAX_ATTEMPTS = 2;
/** Sockets to the object store at once (the pool is bounded, as the database's is). */
const MAX_SOCKETS = 64;

const DIGEST = /^[0-9a-f]{64}$/;
/** The location of a body staged in memory (see S3BlobStore's #inMemory). */
const MEMORY_STAGING = 'memory:';

/** Where the blobs of a bucket are, and how to reach it. */
export interface S3BlobStoreOptions {
  bucket: string;
  /** Keys start with this (no leading or trailing slash needed); empty for the bucket's root. */
  prefix?: string | undefined;
  /** A non-AWS store (Swift, Ceph, MinIO, Garage): path-style addressing then. */
  endpoint?: string | undefined;
  /** Default: AWS_REGION, else us-east-1. */
  region?: string | undefined;
  /** Default: the standard AWS environment variables and profiles. */
  credentials?: S3ClientConfig['credentials'];
  /** A local directory for bodies being read and verified before they are uploaded. */
  tmpDir: string;
  /** zlib level for plain bodies. */
  gzipLevel?: number | undefined;
  /** false: a missing bucket is an error, not created (ft-recover: a typo creates nothing). */
  createBucket?: boolean | undefined;
  /** Counts each request's latency and failures, and watches the socket pool. */
  metrics?: EngineMetrics | undefined;
  /** Where the SDK's own warnings and errors go, one line each, rate-limited (sdk-logger.ts). */
  warn?: ((details: Record<string, unknown>, message: string) => void) | undefined;
}

/** The status an S3 error carries, if it came from an answer. */
function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

function isNotFound(err: unknown): boolean {
  const name = (err as { name?: string }).name;
  return statusOf(err) === 404 || name === 'NoSuchKey' || name === 'NotFound';
}

/** What kind of failure `err` is, for the metrics; undefined for a 404 (an answer). */
function failureKind(err: unknown): ObjectStoreErrorKind | undefined {
  if (isNotFound(err)) return undefined;
  const e = err as { name?: string; code?: string };
  if (e.name === 'TimeoutError' || e.code === 'ETIMEDOUT') return 'timeout';
  const status = statusOf(err);
  if (status === undefined) return 'unavailable';
  return status >= 500 ? 'server' : 'refused';
}

/** The one-line 503 for a failed call to the object store (never its address or keys). */
function unavailable(what: string, err: unknown): BackendUnavailableError {
  const e = err as { name?: string; code?: string };
  const why = statusOf(err) ?? e.code ?? e.name ?? 'error';
  return new BackendUnavailableError(`object store unavailable (${what}: ${why})`, err);
}

/**
 * The {@link BlobStore} in an S3-compatible bucket (AWS S3, Swift's s3api, Ceph RGW, MinIO,
 * Garage), using only the common subset: PUT with a length, GET (ranged), HEAD, DELETE,
 * server-side copy, ListObjectsV2. A blob is the object `PREFIX/blobs/<2 hex>/<sha256>`.
 *
 * A body is read, hashed and counted into a local temp file by the same code as the local
 * store's (ingest.ts: the claims checked, 4xx before anything is uploaded), then uploaded
 * with its length under a staging key `PREFIX/staging/<random>`: invisible to `open` and
 * `digests`, and a discard deletes only its own copy (two uploads of one content must not
 * share a key before commit). Commit is a server-side copy to the digest's key: a PUT is
 * atomic in S3, and a second commit of one digest overwrites it with the same content
 * (Swift has no conditional PUT, and none is needed). Staging keys left by a crash are the
 * sweeper's ({@link removeStaleStaging}, see sweeper.ts). A small gzip body read whole
 * (the Python client's usual upload) is staged in memory instead and committed with one
 * PUT to its digest's key (see #inMemory).
 */
export class S3BlobStore implements BlobStore {
  readonly client: S3Client;
  readonly bucket: string;
  readonly #prefix: string;
  readonly #target: IngestTarget;
  /**
   * Small bodies staged in memory, by their staged location: committed with one PUT to the
   * digest's key, no staging key, copy or delete (a third of the object store's requests).
   * The caller commits under the digest's lock, after the blob's record is inserted and
   * only when the digest's blob is not stored (PgMetadataStore.commit): no other upload
   * writes that key meanwhile and the sweeper, which takes the same lock, waits; a crash
   * between the PUT and the transaction's commit leaves an orphan, swept after the grace.
   * Bounded by the uploads in flight, each at most ingest's whole-body size (64 KiB).
   */
  readonly #inMemory = new Map<string, Buffer>();

  private constructor(client: S3Client, options: S3BlobStoreOptions) {
    this.client = client;
    this.bucket = options.bucket;
    const prefix = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
    this.#prefix = prefix === '' ? '' : `${prefix}/`;
    // Small bodies go up from memory: durable in the bucket, a local fsync buys nothing.
    this.#target = { tmpDir: options.tmpDir, gzipLevel: options.gzipLevel ?? 6, inMemory: true };
  }

  /** A store on `options.bucket`, which is created if missing. */
  static async open(options: S3BlobStoreOptions): Promise<S3BlobStore> {
    const agent = { keepAlive: true, maxSockets: MAX_SOCKETS };
    // Agents of our own, so that the metrics can see the pool (the client destroys them).
    const httpAgent = new Agent(agent);
    const httpsAgent = new HttpsAgent(agent);
    const secure = options.endpoint === undefined || options.endpoint.startsWith('https:');
    options.metrics?.watchObjectStoreAgent(secure ? httpsAgent : httpAgent);
    const client = new S3Client({
      ...(options.endpoint !== undefined && { endpoint: options.endpoint, forcePathStyle: true }),
      region: options.region ?? process.env.AWS_REGION ?? 'us-east-1',
      ...(options.credentials !== undefined && { credentials: options.credentials }),
      // The SDK's default checksums make streamed PUTs fail on Swift (501) and Ceph (411):
      // only where the API demands one. Our own integrity check is the content's sha256.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: MAX_ATTEMPTS,
      // Not the console: the SDK writes a line there on every failed streamed upload.
      logger: sdkLogger(options.warn ?? (() => {})),
      requestHandler: {
        connectionTimeout: CONNECT_TIMEOUT_MS,
        socketTimeout: IDLE_TIMEOUT_MS,
        httpAgent,
        httpsAgent,
      },
    });
    const metrics = options.metrics;
    if (metrics !== undefined) {
      // Around the whole call, retries included: the latency a request of ours waits.
      client.middlewareStack.add(
        (next, context) => async (args) => {
          const operation = (context.commandName ?? 'unknown').replace(/Command$/, '');
          const start = performance.now();
          try {
            const result = await next(args);
            metrics.objectStoreRequest(operation, (performance.now() - start) / 1000);
            return result;
          } catch (err) {
            const seconds = (performance.now() - start) / 1000;
            metrics.objectStoreRequest(operation, seconds, failureKind(err));
            throw err;
          }
        },
        { step: 'initialize', name: 'ftEngineMetrics' },
      );
    }
    const store = new S3BlobStore(client, options);
    try {
      await store.#ensureBucket(options.createBucket ?? true);
    } catch (err) {
      client.destroy();
      throw err;
    }
    return store;
  }

  async #ensureBucket(create: boolean): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (err) {
      if (!isNotFound(err)) throw unavailable(`bucket ${this.bucket}`, err);
    }
    if (!create) throw new Error(`bucket ${this.bucket} does not exist`);
    try {
      await this.client.send(new CreateBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      // Another process made it meanwhile.
      if ((err as { name?: string }).name !== 'BucketAlreadyOwnedByYou') {
        throw unavailable(`create bucket ${this.bucket}`, err);
      }
    }
  }

  /** The key of a committed blob. */
  key(digest: string): string {
    return `${this.#prefix}blobs/${digest.slice(0, 2)}/${digest}`;
  }

  #stagingKey(kind: 'upload' | 'health'): string {
    return `${this.#prefix}staging/${kind}-${randomBytes(12).toString('hex')}`;
  }

  async stage(body: StageBody, options: StageOptions): Promise<StagedBlob> {
    const { buffer, ...verified } = await ingest(body, options, this.#target);
    if (buffer !== undefined) {
      // Kept here until commit uploads it straight to its digest's key (see #inMemory).
      const staged = {
        ...verified,
        location: `${MEMORY_STAGING}${randomBytes(12).toString('hex')}`,
      };
      this.#inMemory.set(staged.location, buffer);
      return staged;
    }
    const file = verified.location;
    if (file === undefined) return verified;
    const key = this.#stagingKey('upload');
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: createReadStream(file),
          // A streamed PUT needs its length (no aws-chunked encoding on Swift).
          ContentLength: (await stat(file)).size,
          ContentType: 'application/gzip',
        }),
      );
    } catch (err) {
      throw unavailable('upload', err);
    } finally {
      await unlink(file).catch(() => {});
    }
    return { ...verified, location: key };
  }

  async commit(blob: StagedBlob): Promise<void> {
    if (blob.location === undefined) {
      throw new TypeError(`blob ${blob.digest} was only verified, not staged`);
    }
    if (blob.location.startsWith(MEMORY_STAGING)) {
      const buffer = this.#inMemory.get(blob.location);
      if (buffer === undefined) throw new Error(`staged blob ${blob.digest} is gone (discarded?)`);
      try {
        await this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: this.key(blob.digest),
            Body: buffer,
            ContentLength: buffer.length,
            ContentType: 'application/gzip',
          }),
        );
      } catch (err) {
        throw unavailable('commit', err);
      }
      this.#inMemory.delete(blob.location);
      return;
    }
    try {
      await this.client.send(
        new CopyObjectCommand({
          Bucket: this.bucket,
          Key: this.key(blob.digest),
          CopySource: encodeURI(`${this.bucket}/${blob.location}`),
        }),
      );
    } catch (err) {
      if (isNotFound(err)) {
        throw new Error(`staged blob ${blob.digest} is gone (discarded?)`, { cause: err });
      }
      throw unavailable('commit', err);
    }
    // The staging copy is no longer needed: deleted after the answer, not before (the
    // caller holds the name's and the digest's row locks); one a failure or a crash leaves
    // is the sweeper's.
    void this.discard(blob);
  }

  async discard(blob: StagedBlob): Promise<void> {
    if (blob.location === undefined) return;
    if (blob.location.startsWith(MEMORY_STAGING)) {
      this.#inMemory.delete(blob.location);
      return;
    }
    // Deleting a key that is not there succeeds: idempotent. One the service fails to
    // delete is a stale staging key for the sweeper (the failure is in the metrics).
    await this.client
      .send(new DeleteObjectCommand({ Bucket: this.bucket, Key: blob.location }))
      .catch(() => {});
  }

  async open(digest: string): Promise<BlobHandle | null> {
    const key = this.key(digest);
    let first: { bytes: Buffer; size: number };
    try {
      // One round trip for most blobs: the first WHOLE_READ_BYTES, and the total size.
      const res = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Range: `bytes=0-${WHOLE_READ_BYTES - 1}`,
        }),
      );
      const bytes = Buffer.from(await res.Body!.transformToByteArray());
      const total = /\/(\d+)$/.exec(res.ContentRange ?? '')?.[1];
      first = { bytes, size: total === undefined ? bytes.length : Number(total) };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw unavailable('read', err);
    }
    return new S3BlobHandle(this, key, first.bytes, first.size);
  }

  async has(digest: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(digest) }));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw unavailable('head', err);
    }
  }

  async sizes(digest: string): Promise<BlobSizes | undefined> {
    let res;
    try {
      res = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.key(digest) }),
      );
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw unavailable('read', err);
    }
    const body = res.Body as Readable;
    const logicalSize = await byteCountOfStream([body, createGunzip()]);
    return { logicalSize, storedSize: res.ContentLength ?? 0 };
  }

  async remove(digest: string): Promise<void> {
    try {
      await this.client.send(
        new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(digest) }),
      );
    } catch (err) {
      throw unavailable('delete', err);
    }
  }

  /**
   * Every committed blob, from ListObjectsV2 pages. Listings may lag writes (Swift's are
   * eventually consistent): for repair and sweeps, never to decide a request.
   */
  async *digests(): AsyncGenerator<string> {
    for await (const { digest } of this.#blobObjects()) yield digest;
  }

  async *staleBlobs(beforeMs: number): AsyncGenerator<string> {
    for await (const { digest, modifiedMs } of this.#blobObjects()) {
      if (modifiedMs < beforeMs) yield digest;
    }
  }

  /**
   * Deletes the staging keys (uploads and health probes a crash left) last written before
   * `beforeMs`, one DeleteObject each: Swift refuses a multi-object delete without
   * Content-MD5, and leftovers are few.
   */
  async removeStaleStaging(beforeMs: number): Promise<number> {
    let removed = 0;
    for await (const { key, modifiedMs } of this.#objects(`${this.#prefix}staging/`)) {
      if (modifiedMs >= beforeMs) continue;
      try {
        await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
      } catch (err) {
        throw unavailable('delete', err);
      }
      removed++;
    }
    return removed;
  }

  /** The objects under `blobs/` that are where {@link key} puts a digest's blob. */
  async *#blobObjects(): AsyncGenerator<{ digest: string; modifiedMs: number }> {
    const prefix = `${this.#prefix}blobs/`;
    for await (const { key, modifiedMs } of this.#objects(prefix)) {
      const [fan, digest] = key.slice(prefix.length).split('/');
      if (digest !== undefined && DIGEST.test(digest) && digest.startsWith(fan!)) {
        yield { digest, modifiedMs };
      }
    }
  }

  /** The objects whose keys start with `prefix`, page by page (ListObjectsV2, 1000 a page). */
  async *#objects(prefix: string): AsyncGenerator<{ key: string; modifiedMs: number }> {
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: prefix,
            ContinuationToken: token,
          }),
        );
      } catch (err) {
        throw unavailable('list', err);
      }
      for (const { Key, LastModified } of page.Contents ?? []) {
        // No date (never seen): taken as new, so nothing is deleted on a guess.
        if (Key !== undefined) yield { key: Key, modifiedMs: LastModified?.getTime() ?? Infinity };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  async checkWritable(): Promise<void> {
    const key = this.#stagingKey('health');
    try {
      await this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: 'ok', ContentLength: 2 }),
      );
    } catch (err) {
      // Nothing was written: no DELETE to wait for (a silent store would double the wait).
      throw unavailable('write', err);
    }
    await this.client
      .send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }))
      .catch(() => {});
  }

  /** Closes the client's sockets. Idempotent. */
  close(): void {
    this.client.destroy();
  }

  /** Reads `length` bytes at `position` of `key` (a ranged GET); fewer at the end. */
  async readRange(key: string, position: number, length: number): Promise<Buffer> {
    try {
      const res = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Range: `bytes=${position}-${position + length - 1}`,
        }),
      );
      return Buffer.from(await res.Body!.transformToByteArray());
    } catch (err) {
      throw unavailable('read', err);
    }
  }

  /** The object's bytes from `position` to its end, as one GET's body (a stream). */
  async readFrom(key: string, position: number): Promise<Readable> {
    try {
      const res = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: `bytes=${position}-` }),
      );
      return res.Body as Readable;
    } catch (err) {
      throw unavailable('read', err);
    }
  }
}

/** A GET of an object's bytes from some position on, read as a handle's reads ask. */
interface SequentialRead {
  /** The position of the next byte it gives. */
  position: number;
  body: Readable;
  chunks: AsyncIterator<Buffer>;
  /** Bytes received and not yet given. */
  pending: Buffer;
}

/**
 * A blob of the bucket, opened: its first bytes (the whole of a small blob) from the GET of
 * `open`, the rest by a GET from where the reads are (see #sequential).
 */
class S3BlobHandle implements BlobHandle {
  readonly #store: S3BlobStore;
  readonly #key: string;
  readonly #first: Buffer;
  readonly #size: number;
  /**
   * Reads past the first bytes go through one GET of the rest of the object, kept open
   * while they ask for the bytes that follow (a download reads in order): a ranged GET
   * per 1 MiB read held a download at a fifth of a bare GET's speed (one round trip per
   * MiB). A read elsewhere starts a new GET from there. Reads run one at a time, in the
   * order asked (a download asks for the next chunk before the last is answered).
   */
  #sequential: SequentialRead | undefined;
  #reads: Promise<unknown> = Promise.resolve();

  constructor(store: S3BlobStore, key: string, first: Buffer, size: number) {
    this.#store = store;
    this.#key = key;
    this.#first = first;
    this.#size = size;
  }

  async read(
    buffer: Buffer,
    offset: number,
    length: number,
    position: number,
  ): Promise<{ bytesRead: number; buffer: Buffer }> {
    const n = Math.max(0, Math.min(length, this.#size - position));
    if (n === 0) return { bytesRead: 0, buffer };
    if (position + n <= this.#first.length) {
      this.#first.copy(buffer, offset, position, position + n);
      return { bytesRead: n, buffer };
    }
    const read = this.#reads.then(() => this.#readOn(buffer, offset, n, position));
    this.#reads = read.catch(() => undefined);
    return read;
  }

  async #readOn(
    buffer: Buffer,
    offset: number,
    n: number,
    position: number,
  ): Promise<{ bytesRead: number; buffer: Buffer }> {
    let seq = this.#sequential;
    if (seq === undefined || seq.position !== position) {
      this.#stopSequential();
      const body = await this.#store.readFrom(this.#key, position);
      seq = { position, body, chunks: body[Symbol.asyncIterator](), pending: Buffer.alloc(0) };
      this.#sequential = seq;
    }
    let got = 0;
    try {
      while (got < n) {
        if (seq.pending.length === 0) {
          const next = await seq.chunks.next();
          if (next.done) break;
          seq.pending = next.value;
        }
        const take = Math.min(n - got, seq.pending.length);
        seq.pending.copy(buffer, offset + got, 0, take);
        seq.pending = seq.pending.subarray(take);
        got += take;
      }
    } catch (err) {
      this.#stopSequential();
      throw unavailable('read', err);
    }
    seq.position += got;
    return { bytesRead: got, buffer };
  }

  #stopSequential(): void {
    this.#sequential?.body.destroy();
    this.#sequential = undefined;
  }

  async readFile(): Promise<Buffer> {
    if (this.#first.length >= this.#size) return this.#first;
    const rest = await this.#store.readRange(
      this.#key,
      this.#first.length,
      this.#size - this.#first.length,
    );
    return Buffer.concat([this.#first, rest]);
  }

  async close(): Promise<void> {
    // A read still waiting for bytes ends with the GET (its reader has gone).
    this.#stopSequential();
    await this.#reads;
  }
}
