import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { DirSync } from './dir-sync.js';
import { storeOpenError } from './fs-failure.js';
import { storeLayout, type StoreLayout } from './layout.js';
import { LocalBlobStore } from './local-blob-store.js';
import { LocalMetadataStore } from './local-metadata-store.js';
import { inUseMessage } from './lock-holder.js';
import { MetaDb } from './meta-db.js';
import { StoreOpenError } from './store-api.js';
import { StoreDirs } from './store-dirs.js';
import { loadStoreId } from './store-id.js';
import { MeteredStore, StoreMetrics } from './store-metrics.js';
import { PortStore, type StoreOptions } from './store.js';

/** The settings of a local store: {@link StoreOptions} and those of its local ports. */
export interface LocalStoreOptions extends StoreOptions {
  /** zlib level for plain uploads (gzip uploads are stored as sent). */
  gzipLevel?: number;
  /** Blob records (refcount and sizes) that stay in memory. */
  blobRecordCacheSize?: number;
  /** The least number of digests the filter of stored digests is sized for. */
  digestFilterCapacity?: number;
}

/**
 * The store of one directory on local disk (blobs/, links/, meta/, ft-tmp/), counted: what
 * {@link openLocalStore} gives. Besides the {@link Store} interface, its owner (main.ts, the
 * tests, the tools) reaches its layout and its metadata store.
 */
export class LocalStore extends MeteredStore {
  /** Where the store lives; named in errors and logs. */
  readonly layout: StoreLayout;
  readonly metadata: LocalMetadataStore;
  /** Leftovers found in `ft-tmp/` at open (from a crash), now removed. */
  readonly tmpLeftovers: number;

  constructor(
    store: PortStore<LocalMetadataStore>,
    layout: StoreLayout,
    metrics: StoreMetrics,
    tmpLeftovers: number,
  ) {
    super(store, metrics);
    this.layout = layout;
    this.metadata = store.metadata;
    this.tmpLeftovers = tmpLeftovers;
  }
}

/**
 * Opens (creating if new) the store in `dir`: the local ports under a {@link PortStore},
 * counted (see MeteredStore). Refuses a Python-made store (`links/` without `meta/`) and a
 * store another process holds (LEVEL_LOCKED, invariant 5); any other failure is a
 * StoreOpenError saying what refused us.
 */
export async function openLocalStore(
  dir: string,
  options: LocalStoreOptions = {},
): Promise<LocalStore> {
  const layout = storeLayout(dir);
  try {
    return await open(layout, options);
  } catch (err) {
    throw storeOpenError(err, layout.root);
  }
}

async function open(layout: StoreLayout, options: LocalStoreOptions): Promise<LocalStore> {
  await refusePythonStore(layout);
  await Promise.all(
    [layout.root, layout.blobs, layout.links, layout.tmp].map((d) => mkdir(d, { recursive: true })),
  );
  const meta = await lock(layout);
  try {
    await refuseLinkedBlobDirs(layout);
    // Only the lock holder may clear ft-tmp/: what is there was left by a crash.
    const leftovers = await readdir(layout.tmp);
    await Promise.all(
      leftovers.map((f) => rm(`${layout.tmp}/${f}`, { force: true, recursive: true })),
    );
    const metrics = new StoreMetrics();
    const warn = options.warn ?? (() => {});
    const dirs = new DirSync();
    const ports = localPorts(layout, meta, dirs, metrics, options, () => store.forgetCached());
    // Under the lock, ft-tmp/ empty; made durable by the fsync of the root just below.
    const storeId = await loadStoreId(layout, warn);
    const store = new PortStore({ ...ports, stats: metrics.stats }, storeId, options);
    // A new store's directories (blobs/, links/...) must outlive a power cut as the first
    // upload into them must. Best effort: a parent the service user may not read (mode
    // 711) must not keep the store from opening.
    await Promise.all(
      [layout.root, path.dirname(layout.root)].map((d) =>
        dirs.sync(d).catch((err: unknown) => {
          warn({ dir: d, err }, 'cannot fsync a directory of the store at open');
        }),
      ),
    );
    // Sized for twice the store: a migration into it doubles it before the filter must grow.
    const { metadata } = ports;
    metrics.countTotals(metadata, (n) => metadata.digestFilter.build(2 * n));
    return new LocalStore(store, layout, metrics, leftovers.length);
  } catch (err) {
    await meta.close();
    throw err;
  }
}

/**
 * The local ports over one directory, sharing its directory fsyncs (see DirSync), and the
 * guard that watches its directories (StoreDirs). `forgetCached`: the store's caches are
 * wrong once files went behind our back (a blob or a directory removed by hand).
 */
function localPorts(
  layout: StoreLayout,
  meta: MetaDb,
  dirs: DirSync,
  metrics: StoreMetrics,
  options: LocalStoreOptions,
  forgetCached: () => void,
): { blobs: LocalBlobStore; metadata: LocalMetadataStore; guard: StoreDirs } {
  const warn = options.warn ?? (() => {});
  const forget = (): void => {
    forgetCached();
    metadata.forgetDirs();
  };
  const blobs = new LocalBlobStore(layout, dirs, options.gzipLevel);
  const metadata = new LocalMetadataStore(layout, meta, dirs, blobs, {
    cachedRecords: options.blobRecordCacheSize,
    filterCapacity: options.digestFilterCapacity,
    events: metrics,
    warn: options.warn,
    blobRestored: (digest) => {
      // Names cached with the sizes of the gzip that was removed would be sent wrong.
      forget();
      warn({ digest }, 'blob was missing from blobs/ and is stored again from an upload');
    },
  });
  const guard = new StoreDirs(layout, dirs, {
    onRestored: (made) => {
      forget();
      const lost = made.some((d) => d !== layout.tmp);
      warn(
        { dirs: made.map((d) => path.relative(layout.root, d) + '/') },
        'store directories were removed while ft-server ran and are made again' +
          (lost
            ? '; the files stored in them are gone: run ft-recover when convenient to drop their records'
            : ''),
      );
    },
    onGone: (reason) => warn({ dir: layout.root }, reason),
  });
  return { blobs, metadata, guard };
}

/** A store the Python server made has `links/` but no `meta/`: ft-recover adopts it. */
async function refusePythonStore(layout: StoreLayout): Promise<void> {
  const [hasLinks, hasMeta] = await Promise.all([exists(layout.links), exists(layout.meta)]);
  if (hasLinks && !hasMeta) {
    throw new StoreOpenError(
      'NEEDS_RECOVER',
      `${layout.root} holds a store without meta/ (made by the Python server?): run \`ft-recover ${layout.root}\` first`,
    );
  }
}

/** Opens `meta/`, whose LevelDB lock makes this process the store's only owner. */
async function lock(layout: StoreLayout): Promise<MetaDb> {
  return MetaDb.open(
    layout.meta,
    (err, pid) => new StoreOpenError('LOCKED', inUseMessage(layout.root, pid), err),
  );
}

/**
 * Refuses a `blobs/<2 hex>` that is not a real directory. A symlink there would take blob
 * writes, reads and removals out of the store; checked once at open, as only a hand edit
 * makes one (ft-server makes these directories with mkdir).
 */
async function refuseLinkedBlobDirs(layout: StoreLayout): Promise<void> {
  for (const dirent of await readdir(layout.blobs, { withFileTypes: true })) {
    if (/^[0-9a-f]{2}$/.test(dirent.name) && !dirent.isDirectory()) {
      throw new StoreOpenError(
        'NEEDS_RECOVER',
        `${layout.blobs}/${dirent.name} is not a directory (a symlink?), and ft-server follows no link out of its store: put the directory itself there, or run \`ft-recover --check ${layout.root}\` to see what ft-recover would remove`,
      );
    }
  }
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}
