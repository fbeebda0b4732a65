import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BackendUnavailableError, StoreNotWritableError } from '@filetracker/shared-protocol';
import type { BlobStore } from './blob-store.js';
import { redactUrl, type BucketLocation } from './bucket-url.js';
import type { Registry } from 'prom-client';
import { DirSync } from './dir-sync.js';
import { EngineMetrics } from './engine-metrics.js';
import { notWritableError } from './fs-failure.js';
import { storeLayout, type StoreLayout } from './layout.js';
import { LocalBlobStore } from './local-blob-store.js';
import { PgMetadataStore } from './pg-metadata-store.js';
import { S3BlobStore } from './s3-blob-store.js';
import { StoreOpenError, type StoreHealth } from './store-api.js';
import { MeteredStore, StoreMetrics } from './store-metrics.js';
import { PortStore, type StoreOptions, type WriteGuard } from './store.js';
import { Sweeper } from './sweeper.js';

export { parseBucketUrl, redactUrl, type BucketLocation } from './bucket-url.js';

export interface ScaleOutOptions extends StoreOptions {
  /** postgres://USER@HOST:PORT/DB (`--db`). */
  db: string;
  /** `--blobs`: a bucket; else the blobs are in `dir`/blobs/. */
  bucket?: BucketLocation | undefined;
  /** `--s3-endpoint`: a non-AWS object store, addressed path-style. */
  s3Endpoint?: string | undefined;
  /**
   * `-d DIR`: the blobs (`DIR/blobs/`, shared by the processes) when there is no bucket,
   * and the uploads being verified (`DIR/ft-tmp/`). Without it (a bucket), a private temp
   * dir holds the uploads being verified, removed at close.
   */
  dir?: string | undefined;
  /** Default: the standard AWS environment variables and profiles. */
  s3Credentials?: { accessKeyId: string; secretAccessKey: string } | undefined;
  /** Default: AWS_REGION, else us-east-1. */
  s3Region?: string | undefined;
  /** Connections to the database at most (per process). */
  poolSize?: number | undefined;
  /** zlib level for plain uploads (gzip uploads are stored as sent). */
  gzipLevel?: number;
  /** false: a missing bucket is an open error instead of being created (ft-recover). */
  createBucket?: boolean | undefined;
  /**
   * Runs the periodic sweeper (sweeper.ts: one process at a time sweeps, elected through
   * the database); without it nothing is removed but by {@link PgMetadataStore.sweep}.
   */
  sweep?: { intervalMs: number; graceSeconds: number } | undefined;
  /** Told of the sweeper's election and of what its sweeps removed. */
  info?: ((details: Record<string, unknown>, message: string) => void) | undefined;
}

/**
 * The scale-out store (issue 14): names, versions, reference counts and tombstones in
 * PostgreSQL, blobs in an S3-compatible bucket or a directory the processes share, counted
 * as the local store is (MeteredStore). Any number of ft-server processes on one database
 * and one bucket are one store: the same identity, and each sees the others' writes at
 * once, because a name is looked up in the database on every read (no name cache; small
 * blobs are cached by digest, which needs no invalidation).
 */
export class ScaleOutStore extends MeteredStore {
  /** Where uploads are verified before they go to the blob store; named in logs. */
  readonly layout: StoreLayout;
  readonly metadata: PgMetadataStore;
  readonly blobs: BlobStore;
  /** What `--blobs` or `-d` named: for the listening log line. */
  readonly blobsAt: string;
  /** The periodic sweeper, when the options asked for one. */
  readonly sweeper: Sweeper | undefined;
  /** The database's and the object store's latency, errors and pools. */
  readonly engineMetrics: EngineMetrics;
  readonly #release: () => Promise<void>;
  #closing: Promise<void> | undefined;

  constructor(
    store: PortStore<PgMetadataStore>,
    layout: StoreLayout,
    metrics: StoreMetrics,
    blobsAt: string,
    engineMetrics: EngineMetrics,
    release: () => Promise<void>,
    sweeper?: Sweeper,
  ) {
    super(store, metrics);
    this.engineMetrics = engineMetrics;
    this.layout = layout;
    this.metadata = store.metadata;
    this.blobs = store.blobs;
    this.blobsAt = blobsAt;
    this.sweeper = sweeper;
    this.#release = release;
    if (sweeper !== undefined) metrics.stats.sweeper = sweeper.stats;
  }

  /**
   * Whether both services answer, the database first: a round trip to each (the object
   * store: a small object written and removed, as an upload does). The reason names the
   * service that is down, in one line.
   */
  override async health(): Promise<StoreHealth> {
    try {
      await this.metadata.ping();
    } catch (err) {
      return { ok: false, error: new BackendUnavailableError(reasonOf('database', err)) };
    }
    try {
      await this.blobs.checkWritable();
    } catch (err) {
      if (this.blobs instanceof S3BlobStore) {
        return { ok: false, error: new BackendUnavailableError(reasonOf('object store', err)) };
      }
      return { ok: false, error: new StoreNotWritableError(reasonOf('blob directory', err)) };
    }
    return { ok: true };
  }

  registerMetrics(registry: Registry): void {
    this.engineMetrics.register(registry);
  }

  /** Stops the sweeper, ends the database pool, closes the object store's sockets; idempotent. */
  override close(): Promise<void> {
    this.#closing ??= (async () => {
      // The sweeper first: its sweeps use the pool and the object store.
      await this.sweeper?.close();
      const results = await Promise.allSettled([this.inner.close(), this.#release()]);
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
    })();
    return this.#closing;
  }
}

/**
 * The one check of a write this backend's files need: uploads verified in `ft-tmp/` (and
 * blobs in `DIR/blobs/`) that the files refuse are the 503 naming the directory, as in the
 * local store. The services' own failures are theirs to report (BACKEND_UNAVAILABLE).
 */
function refusedFiles(layout: StoreLayout): WriteGuard {
  return {
    beforeWrite: () => undefined,
    writeFailure: (err) => Promise.resolve(notWritableError(err, layout.root)),
    check: () => Promise.resolve(),
    gone: undefined,
  };
}

/** `err` as one line that starts with the service's name. */
function reasonOf(service: string, err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const message = (e.message ?? String(err)).split('\n')[0]!;
  if (message.startsWith(service)) return message;
  return `${service} unavailable (${e.code ?? message})`;
}

/**
 * Opens the scale-out store: connects to the database (creating or migrating its schema,
 * one process at a time) and to the blob store (creating the bucket if missing). A failure
 * is a StoreOpenError naming the service that refused.
 */
export async function openScaleOutStore(options: ScaleOutOptions): Promise<ScaleOutStore> {
  if (options.bucket === undefined && options.dir === undefined) {
    throw new TypeError('openScaleOutStore needs a bucket or a dir for the blobs');
  }
  const privateTmp =
    options.dir === undefined ? await mkdtemp(path.join(tmpdir(), 'ft-server-')) : undefined;
  const layout = storeLayout(options.dir ?? privateTmp!);
  // What the store holds besides the database pool (which the PortStore ends), last first.
  const closers: (() => Promise<void> | void)[] = [];
  if (privateTmp !== undefined) {
    closers.push(() => rm(privateTmp, { recursive: true, force: true }));
  }
  const release = async (): Promise<void> => {
    for (const close of closers.splice(0).reverse()) await close();
  };
  let metadata: PgMetadataStore | undefined;
  const engineMetrics = new EngineMetrics();
  try {
    // Other processes share DIR: its ft-tmp/ is never emptied here (their uploads in flight).
    await mkdir(layout.tmp, { recursive: true });
    let blobs: BlobStore;
    let blobsAt: string;
    if (options.bucket !== undefined) {
      const { bucket, prefix } = options.bucket;
      blobsAt = `s3://${bucket}${prefix === '' ? '' : `/${prefix}`}`;
      const s3 = await S3BlobStore.open({
        bucket,
        prefix,
        endpoint: options.s3Endpoint,
        region: options.s3Region,
        credentials: options.s3Credentials,
        tmpDir: layout.tmp,
        gzipLevel: options.gzipLevel,
        createBucket: options.createBucket,
        metrics: engineMetrics,
        warn: options.warn,
      }).catch((err: unknown) => {
        throw new StoreOpenError(
          'OPEN_FAILED',
          `cannot open the object store (bucket ${bucket}${options.s3Endpoint ? ` at ${options.s3Endpoint}` : ''}): ${oneLine(err)}`,
          err,
        );
      });
      closers.push(() => s3.close());
      blobs = s3;
    } else {
      await refuseLocalStore(layout);
      await mkdir(layout.blobs, { recursive: true });
      blobsAt = layout.blobs;
      blobs = new LocalBlobStore(layout, new DirSync(), options.gzipLevel);
    }
    const metrics = new StoreMetrics();
    metadata = await PgMetadataStore.open({
      url: options.db,
      blobs,
      poolSize: options.poolSize,
      events: metrics,
      metrics: engineMetrics,
      warn: options.warn,
    }).catch((err: unknown) => {
      throw new StoreOpenError(
        'OPEN_FAILED',
        `cannot open the database ${redactUrl(options.db)}: ${oneLine(err)}`,
        err,
      );
    });
    const storeId = await metadata.storeId();
    const store = new PortStore(
      { blobs, metadata, stats: metrics.stats, guard: refusedFiles(layout) },
      storeId,
      // Names are not cached: another process may change any of them (see the class comment).
      { ...options, entryCacheSize: 0 },
    );
    // This process's view: the totals at start, plus its own changes since.
    metrics.countTotals(metadata, async () => {});
    const sweeper =
      options.sweep === undefined
        ? undefined
        : new Sweeper({
            url: options.db,
            metadata,
            blobs,
            ...options.sweep,
            info: options.info,
            warn: options.warn,
          });
    const scaleOut = new ScaleOutStore(
      store,
      layout,
      metrics,
      blobsAt,
      engineMetrics,
      release,
      sweeper,
    );
    sweeper?.start();
    return scaleOut;
  } catch (err) {
    await metadata?.close().catch(() => {});
    await release().catch(() => {});
    throw err;
  }
}

/**
 * Refuses a DIR that holds a local store (`meta/` or `links/`): its blobs/ are that store's,
 * and a sweep of the database would remove the ones only it names. Move it with
 * ft-migrate instead.
 */
async function refuseLocalStore(layout: StoreLayout): Promise<void> {
  for (const dir of [layout.meta, layout.links]) {
    const found = await stat(dir).then(
      () => true,
      () => false,
    );
    if (found) {
      throw new StoreOpenError(
        'OPEN_FAILED',
        `${layout.root} holds a local store (${path.basename(dir)}/): with --db its blobs/ would be shared with a database that does not know its names; give --db another -d DIR (or --blobs), and copy this store in with ft-migrate`,
      );
    }
  }
}

function oneLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0]!;
}
