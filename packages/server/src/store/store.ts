import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { BadRequestError, FiletrackerError, joinName } from '@filetracker/shared-protocol';
import type { BlobHandle, BlobStore, StagedBlob } from './blob-store.js';
import { DirSync } from './dir-sync.js';
import { describeFailure, notWritableError } from './fs-failure.js';
import { storeLayout, type StoreLayout } from './layout.js';
import { LocalBlobStore } from './local-blob-store.js';
import { LocalMetadataStore } from './local-metadata-store.js';
import { MetaDb, isLevelLocked } from './meta-db.js';
import { inUseMessage, lockHolder } from './lock-holder.js';
import type { MetadataStore, NameLookup, NameRecord } from './metadata-store.js';
import { ReadCaches, type EntryLookup, type FileEntry } from './read-caches.js';
import { StoreDirs } from './store-dirs.js';
import { loadStoreId } from './store-id.js';
import { StoreMetrics, type StoreStats } from './store-metrics.js';

export type { FileEntry, StoreStats };

/** An open blob: the handle keeps the bytes readable even if a writer drops the blob. */
export interface OpenedFile extends FileEntry {
  /** The whole gzip when the blob is small (served from memory), else undefined. */
  buffer: Buffer | undefined;
  /** An open handle when `buffer` is undefined; the caller closes it. */
  handle: BlobHandle | undefined;
}

export interface PutRequest {
  components: string[];
  version: number;
  body: Readable;
  /** The body's Content-Length, when it declared one. */
  bodyLength?: number | undefined;
  gzip: boolean;
  checksum?: string | undefined;
  logicalSize?: number | undefined;
  /** Content larger than this (uncompressed) is refused with 413 (`--max-file-size`). */
  maxLogicalSize?: number | undefined;
}

export interface PutResult {
  /** The version stored under the name afterwards (the request's, or a newer one). */
  version: number;
  /** Whether this request's content is what the name now holds. */
  stored: boolean;
  /** Body bytes read (0 when an older version was answered without reading it). */
  receivedBytes: number;
}

/**
 * A say on a PUT, asked under the name's lock once the body is read and the stored version
 * is older (migration mode's tombstones, see migration.ts): it throws to refuse the PUT, and
 * returns whether the change clears the name's tombstone.
 */
export type PutAdmission = (
  name: string,
  version: number,
  existing: NameLookup,
) => Promise<boolean>;

/** A delete's view of a name, under its lock (see {@link Store.withName}). */
export interface LockedName {
  /** What the name holds now. */
  existing: NameLookup;
  /** Deletes the name (it holds a record, at most `version`); keeps the caches right. */
  remove(held: NameRecord): Promise<void>;
}

/**
 * What a backend checks around writes: the local one, that its directories were not
 * removed while it runs (see StoreDirs, issue 18).
 */
export interface WriteGuard {
  /** Usually undefined at once; else resolves when writes may go on, or rejects with the 503. */
  beforeWrite(): Promise<void> | undefined;
  /** The 503 to answer for a write that failed because the backend went missing, if so. */
  afterMissing(err: unknown): Promise<unknown>;
  /** Looks now (for /healthz); rejects when writes are refused. */
  check(): Promise<void>;
  /** Why writes are refused until a restart; undefined while they are not. */
  readonly gone: string | undefined;
}

export interface StoreOptions {
  /** zlib level for plain uploads (gzip uploads are stored as sent). */
  gzipLevel?: number;
  /** Blobs up to this size are read whole and kept in memory. */
  smallBlobBytes?: number;
  /** Bytes of small blobs kept in memory. */
  blobCacheBytes?: number;
  /** Names whose (digest, version, sizes) stay in memory. */
  entryCacheSize?: number;
  /** Blob records (refcount and sizes) that stay in memory. */
  blobRecordCacheSize?: number;
  /** The least number of digests the filter of stored digests is sized for. */
  digestFilterCapacity?: number;
  /** Told of problems the store works around (a log line for the operator). */
  warn?: (details: Record<string, unknown>, message: string) => void;
}

/**
 * The store of DESIGN.md, as the HTTP layer sees it: put, openFile, stat, delete, list,
 * health. Knows nothing of HTTP, and nothing of where bytes and names live: it runs the
 * write sequence over two ports, a {@link BlobStore} and a {@link MetadataStore} (local
 * disk + symlinks + LevelDB today, see {@link Store.open}). Writes of a name are serialized
 * by the metadata store; readers take no lock and never wait for writers.
 */
export class Store<M extends MetadataStore = MetadataStore> {
  /** Where the store lives; named in errors and logs. */
  readonly layout: StoreLayout;
  readonly blobs: BlobStore;
  readonly metadata: M;
  /** Leftovers found in `ft-tmp/` at open (from a crash), now removed. */
  readonly tmpLeftovers: number;
  /**
   * The store's identity: made once, at its first open, and kept in the store (see
   * store-id.ts). Answered in `/status` and the `X-Filetracker-Store-Id` header.
   */
  readonly storeId: string;
  readonly #metrics: StoreMetrics;
  readonly #guard: WriteGuard | undefined;
  readonly #caches: ReadCaches;
  readonly #smallBlobBytes: number;
  readonly #warn: (details: Record<string, unknown>, message: string) => void;
  #closing: Promise<void> | undefined;

  constructor(
    ports: { blobs: BlobStore; metadata: M; metrics: StoreMetrics; guard?: WriteGuard },
    where: { layout: StoreLayout; tmpLeftovers: number; storeId: string },
    options: StoreOptions = {},
  ) {
    this.layout = where.layout;
    this.tmpLeftovers = where.tmpLeftovers;
    this.storeId = where.storeId;
    this.blobs = ports.blobs;
    this.metadata = ports.metadata;
    this.#metrics = ports.metrics;
    this.#guard = ports.guard;
    this.#caches = new ReadCaches({
      entries: options.entryCacheSize,
      blobBytes: options.blobCacheBytes,
    });
    this.#smallBlobBytes = options.smallBlobBytes ?? 256 * 1024;
    this.#warn = options.warn ?? (() => {});
  }

  /**
   * Forgets every cached name and small blob, after files were removed behind our back: the
   * next reads ask the ports.
   */
  forgetCached(): void {
    this.#caches.clear();
  }

  /**
   * The error to answer for a failed write: a 503 for files that refuse us or for a
   * directory removed while it ran (see StoreDirs), else `err` itself.
   */
  async #writeFailure(err: unknown): Promise<unknown> {
    return notWritableError(err, this.layout.root) ?? (await this.#guard?.afterMissing(err)) ?? err;
  }

  /** Counters for a metrics exporter (see StoreMetrics). */
  get stats(): StoreStats {
    return this.#metrics.stats;
  }

  /**
   * Opens (creating if new) the store in `dir`. Refuses a Python-made store (`links/`
   * without `meta/`) and a store another process holds (LEVEL_LOCKED, invariant 5).
   */
  static async open(dir: string, options: StoreOptions = {}): Promise<Store<LocalMetadataStore>> {
    const layout = storeLayout(dir);
    try {
      return await Store.#open(layout, options);
    } catch (err) {
      if (err instanceof StoreOpenError) throw err;
      const { code, reason } = describeFailure(err, layout.root);
      throw new StoreOpenError(code, `cannot open store ${layout.root}: ${reason}`, err);
    }
  }

  static async #open(
    layout: StoreLayout,
    options: StoreOptions,
  ): Promise<Store<LocalMetadataStore>> {
    const [hasLinks, hasMeta] = await Promise.all([exists(layout.links), exists(layout.meta)]);
    if (hasLinks && !hasMeta) {
      throw new StoreOpenError(
        'NEEDS_RECOVER',
        `${layout.root} holds a store without meta/ (made by the Python server?): run \`ft-recover ${layout.root}\` first`,
      );
    }
    await Promise.all(
      [layout.root, layout.blobs, layout.links, layout.tmp].map((d) =>
        mkdir(d, { recursive: true }),
      ),
    );
    let meta: MetaDb;
    try {
      meta = await MetaDb.open(layout.meta);
    } catch (err) {
      if (isLevelLocked(err)) {
        const pid = await lockHolder(layout.meta);
        throw new StoreOpenError('LOCKED', inUseMessage(layout.root, pid), err);
      }
      throw err;
    }
    const notReal = await blobDirsNotReal(layout.blobs);
    if (notReal !== undefined) {
      await meta.close();
      throw new StoreOpenError(
        'NEEDS_RECOVER',
        `${layout.blobs}/${notReal} is not a directory (a symlink?), and ft-server follows no link out of its store: put the directory itself there, or run \`ft-recover --check ${layout.root}\` to see what ft-recover would remove`,
      );
    }
    let leftovers: string[];
    try {
      // Only the lock holder may clear ft-tmp/: what is there was left by a crash.
      leftovers = await readdir(layout.tmp);
      await Promise.all(
        leftovers.map((f) => rm(`${layout.tmp}/${f}`, { force: true, recursive: true })),
      );
    } catch (err) {
      await meta.close();
      throw err;
    }
    // Directory fsyncs, shared by the blob and link writers (see DirSync).
    const dirs = new DirSync();
    const metrics = new StoreMetrics();
    const warn = options.warn ?? (() => {});
    const forget = (): void => {
      store.forgetCached();
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
    let storeId: string;
    try {
      // Under the lock, ft-tmp/ empty; made durable by the fsync of the root just below.
      storeId = await loadStoreId(layout, warn);
    } catch (err) {
      await meta.close();
      throw err;
    }
    const store: Store<LocalMetadataStore> = new Store(
      { blobs, metadata, metrics, guard },
      { layout, tmpLeftovers: leftovers.length, storeId },
      options,
    );
    // A new store's directories (blobs/, links/...) must outlive a power cut as the first
    // upload into them must. Best effort: a parent the service user may not read (mode
    // 711) must not keep the store from opening.
    await Promise.all(
      [layout.root, path.dirname(layout.root)].map((d) =>
        dirs.sync(d).catch((err: unknown) => {
          store.#warn({ dir: d, err }, 'cannot fsync a directory of the store at open');
        }),
      ),
    );
    // Sized for twice the store: a migration into it doubles it before the filter must grow.
    metrics.countTotals(metadata, (n) => metadata.digestFilter.build(2 * n));
    return store;
  }

  /** The current entry of a name, or null when it holds no file (absent, or a directory). */
  async stat(components: readonly string[]): Promise<FileEntry | null> {
    const name = joinName(components);
    const entry =
      this.#caches.entry(name) ??
      (await this.#caches.lookup(name, () => this.#load(components), false));
    return typeof entry === 'object' ? entry : null;
  }

  /** The entry of a name, from the metadata store. */
  async #load(components: readonly string[]): Promise<EntryLookup> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const held = await this.metadata.read(components);
      if (typeof held !== 'object') return held;
      const sizes = await this.#sizes(components, held.digest);
      if (sizes) return { digest: held.digest, version: held.version, ...sizes };
      // The name was replaced and its old blob dropped between our two reads: read again.
    }
    throw new Error(`name ${joinName(components)} points at a blob with no record`);
  }

  /** A blob's sizes: from its record, else off the blob itself; undefined when it is gone. */
  async #sizes(
    components: readonly string[],
    digest: string,
  ): Promise<{ logicalSize: number; storedSize: number } | undefined> {
    // The metadata store unavailable (a full disk stopped its reopen): reads go on from blobs.
    const record = await this.metadata.blob(digest).catch(() => undefined);
    if (record) return { logicalSize: record.logicalSize, storedSize: record.storedSize };
    const healed = await this.blobs.sizes(digest);
    if (!healed) return undefined;
    this.#warn(
      { name: joinName(components), digest },
      'blob has no record in meta/ (served from the blob; run ft-recover to rebuild meta/)',
    );
    return healed;
  }

  /**
   * The entry and whole gzip of a name when both are in memory, else undefined: the
   * synchronous read path for the small files judges fetch by the thousand.
   */
  peek(name: string): { entry: FileEntry; buffer: Buffer } | undefined {
    return this.#caches.peek(name);
  }

  /**
   * Opens a name's content for reading. Retries when a concurrent replace dropped the blob
   * between choosing it and opening it, so a reader sees the old or the new content.
   */
  async openFile(components: readonly string[]): Promise<OpenedFile | null> {
    let lastMissing: string | undefined;
    for (let attempt = 0; attempt < 10; attempt++) {
      const entry = await this.stat(components);
      if (!entry) return null;
      const cachedBlob = this.#caches.blob(entry.digest);
      if (cachedBlob) return { ...entry, buffer: cachedBlob, handle: undefined };
      const handle = await this.blobs.open(entry.digest);
      if (!handle) {
        this.#caches.forgetIfStill(joinName(components), entry);
        if (attempt > 0 && entry.digest === lastMissing) {
          // Twice the same name to a blob that is not there: removed by hand (issue 18).
          this.#warn(
            { name: joinName(components), digest: entry.digest },
            'blob of a name is missing from blobs/ (answered 404): run ft-recover to drop the link',
          );
          return null;
        }
        lastMissing = entry.digest;
        continue;
      }
      if (entry.storedSize > this.#smallBlobBytes) return { ...entry, buffer: undefined, handle };
      try {
        const buffer = await handle.readFile();
        this.#caches.setBlob(entry.digest, buffer);
        return { ...entry, buffer, handle: undefined };
      } finally {
        await handle.close();
      }
    }
    throw new Error(`could not open a stable version of ${joinName(components)}`);
  }

  /**
   * Stores a version of a name (DESIGN.md's write sequence). A stored version newer than the
   * request wins and the body is not read; an equal or older one is replaced. `admit`:
   * migration mode's say (see {@link PutAdmission}).
   */
  async put(req: PutRequest, admit?: PutAdmission): Promise<PutResult> {
    const { components, version } = req;
    if (components.length === 0) throw new BadRequestError('BAD_PATH', 'A file needs a name');
    this.metadata.checkStorable(components);
    const name = joinName(components);
    const guarded = this.#guard?.beforeWrite();
    if (guarded) {
      await guarded.catch(async (err: unknown) => {
        throw await this.#writeFailure(err);
      });
    }
    // 1. A newer version stored: answered without reading the body.
    const current =
      this.#caches.entry(name) ??
      (await this.#caches.lookup(name, () => this.#load(components), true));
    if (typeof current === 'object' && current.version > version) {
      return { version: current.version, stored: false, receivedBytes: 0 };
    }
    this.#metrics.uploadStarted();
    let dedup = false;
    let pinned: string | undefined;
    let body: StagedBlob | undefined;
    try {
      // 2. Content claimed and stored already: held, and the body only verified.
      if (req.checksum !== undefined && (await this.metadata.pin(req.checksum))) {
        pinned = req.checksum;
      }
      // 3. The body read, verified against the claims and staged (durable).
      body = await this.blobs.stage(req.body, {
        gzip: req.gzip,
        write: pinned === undefined,
        expectedDigest: req.checksum,
        expectedLogicalSize: req.logicalSize,
        maxLogicalSize: req.maxLogicalSize,
        bodyLength: req.bodyLength,
      });
      const staged = body;
      // 4. Under the name's lock: the version checked again, then one change of the name.
      return await this.metadata.withName(name, async () => {
        const existing = this.#caches.takeAbsent(name)
          ? 'absent'
          : await this.metadata.read(components);
        if (typeof existing === 'object' && existing.version > version) {
          await this.blobs.discard(staged);
          return { version: existing.version, stored: false, receivedBytes: staged.receivedBytes };
        }
        const clearTombstone = admit ? await admit(name, version, existing) : false;
        this.#caches.written(name);
        const change = { components, blob: staged, version, previous: existing, clearTombstone };
        const committed = await this.metadata.commit(change);
        dedup = committed.dedup;
        const sizes = committed.sizes ?? (await this.#sizes(components, staged.digest)) ?? staged;
        this.#caches.set(name, {
          digest: staged.digest,
          version,
          logicalSize: sizes.logicalSize,
          storedSize: sizes.storedSize,
        });
        this.#caches.written(name);
        return { version, stored: true, receivedBytes: staged.receivedBytes };
      });
    } catch (err) {
      // Whatever failed after the body was read (a full disk, a conflict), its staged copy
      // goes; once committed it is no longer staged and this does nothing.
      if (body !== undefined) await this.blobs.discard(body);
      throw await this.#writeFailure(err);
    } finally {
      this.#metrics.uploadEnded(dedup);
      if (pinned !== undefined) await this.metadata.unpin(pinned);
    }
  }

  /**
   * Runs `fn` under the name's write lock with what the name holds (for a delete: see
   * {@link delete} and migration mode's). Errors of a store that refuses writes become a
   * StoreNotWritableError (503).
   */
  async withName<T>(
    components: readonly string[],
    fn: (locked: LockedName) => Promise<T>,
  ): Promise<T> {
    const name = joinName(components);
    try {
      await this.#guard?.beforeWrite();
      return await this.metadata.withName(name, async () => {
        const existing = await this.metadata.read(components);
        return fn({
          existing,
          remove: async (held) => {
            this.#caches.written(name);
            await this.metadata.remove(components, held);
            this.#caches.forget(name);
            this.#caches.written(name);
          },
        });
      });
    } catch (err) {
      throw await this.#writeFailure(err);
    }
  }

  /**
   * Deletes a name unless its stored version is newer than `version`. `found` is false when
   * the name holds no file (absent, or a directory). Empty directories stay (compat).
   */
  delete(
    components: readonly string[],
    version: number,
  ): Promise<{ deleted: boolean; found: boolean }> {
    return this.withName(components, async ({ existing, remove }) => {
      if (typeof existing !== 'object') return { deleted: false, found: false };
      if (existing.version > version) return { deleted: false, found: true };
      await remove(existing);
      return { deleted: true, found: true };
    });
  }

  /**
   * Every file under a directory with a version `<= cutoff`, relative to it, streamed (never
   * the whole listing in memory).
   */
  async list(components: readonly string[], cutoff: number): Promise<AsyncIterable<string>> {
    if (!(await this.metadata.isDirectory(components))) {
      throw new FiletrackerError("Path doesn't exist or is not a directory", {
        code: 'NOT_A_DIRECTORY',
        status: 400,
      });
    }
    return this.metadata.list(components, cutoff);
  }

  /**
   * Whether the store can take writes: the metadata store is open and a blob can be staged
   * the way an upload is. The reason says what failed.
   */
  async health(): Promise<{ ok: true } | { ok: false; reason: string }> {
    try {
      // Directories removed since are made again; a database removed is the reason.
      await this.#guard?.check();
    } catch (err) {
      const reason = this.#guard?.gone;
      if (reason !== undefined) return { ok: false, reason };
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      return { ok: false, reason: `store directories cannot be made again (${code})` };
    }
    if (!this.metadata.isOpen) return { ok: false, reason: 'database is not open' };
    try {
      await this.blobs.checkWritable();
      return { ok: true };
    } catch (err) {
      return {
        ok: false,
        reason: `store is not writable (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      };
    }
  }

  /** Idempotent: closes the metadata store once; every call returns the same promise. */
  close(): Promise<void> {
    this.#closing ??= this.metadata.close();
    return this.#closing;
  }
}

/**
 * Why a store cannot be opened: NEEDS_RECOVER (a Python store), LOCKED (in use), PERMISSION
 * (its files refuse us: owner, immutable flag, read-only mount), OPEN_FAILED (anything else).
 */
export type StoreOpenErrorCode = 'NEEDS_RECOVER' | 'LOCKED' | 'PERMISSION' | 'OPEN_FAILED';

/** The store cannot be opened; `code` says why, the one-line message what to do. */
export class StoreOpenError extends Error {
  readonly code: StoreOpenErrorCode;
  constructor(code: StoreOpenErrorCode, message: string, cause?: unknown) {
    super(message, { cause });
    this.name = 'StoreOpenError';
    this.code = code;
  }
}

/**
 * The first `blobs/<2 hex>` that is not a real directory, if any. A symlink there would
 * take blob writes, reads and removals out of the store; checked once at open, as only a
 * hand edit makes one (ft-server makes these directories with mkdir).
 */
async function blobDirsNotReal(blobs: string): Promise<string | undefined> {
  for (const dirent of await readdir(blobs, { withFileTypes: true })) {
    if (/^[0-9a-f]{2}$/.test(dirent.name) && !dirent.isDirectory()) return dirent.name;
  }
  return undefined;
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}
