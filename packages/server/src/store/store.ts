import { constants as fsConstants } from 'node:fs';
import { lstat, mkdir, open, readdir, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { LRUCache } from 'lru-cache';
import {
  BadRequestError,
  DeletedError,
  FallbackError,
  FiletrackerError,
  formatHttpDate,
  joinName,
} from '@filetracker/shared-protocol';
import { BlobRefs } from './blob-refs.js';
import { inflateBlob } from '../recover/gzip-size.js';
import { DirSync } from './dir-sync.js';
import { ingest } from './ingest.js';
import { KeyedMutex } from './keyed-mutex.js';
import { writeDurably } from './fs-calls.js';
import { describeFailure, notWritableError } from './fs-failure.js';
import { blobPath, storeLayout, tmpFile, type StoreLayout } from './layout.js';
import { LinkTree, type LinkState } from './link-tree.js';
import { listLinks } from './list.js';
import { MetaDb } from './meta-db.js';
import { StoreDirs } from './store-dirs.js';
import { loadStoreId } from './store-id.js';

/** What a reader needs to answer for a name. */
export interface FileEntry {
  digest: string;
  version: number;
  logicalSize: number;
  /** Size of the stored gzip. */
  storedSize: number;
}

/** An open blob: the handle keeps the bytes readable even if a writer drops the blob. */
export interface OpenedFile extends FileEntry {
  /** The whole gzip when the blob is small (served from memory), else undefined. */
  buffer: Buffer | undefined;
  /** An open handle when `buffer` is undefined; the caller closes it. */
  handle: FileHandle | undefined;
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
  signal?: AbortSignal | undefined;
  /**
   * Migration mode: a tombstone of the name (a 1.x file deleted during migration) makes a
   * PUT with a version `<=` its version store nothing and throw a {@link DeletedError}
   * (410); a newer PUT clears it.
   */
  honorTombstones?: boolean;
}

export interface PutResult {
  /** The version stored under the name afterwards (the request's, or a newer one). */
  version: number;
  /** Whether this request's content is what the name now holds. */
  stored: boolean;
  /** Body bytes read (0 when an older version was answered without reading it). */
  receivedBytes: number;
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
 * Counters a metrics exporter may read. The store keeps them as things happen; blob and
 * tombstone totals start from one pass over meta/ in the background after open (a
 * snapshot taken before any request, so adding the changes made since is exact).
 */
export interface StoreStats {
  dedupHits: number;
  uploadsInFlight: number;
  blobs: number;
  blobBytes: number;
  tombstones: number;
  /** The background count has finished: blobs, blobBytes and tombstones are totals. */
  countsReady: boolean;
}

/**
 * The store of DESIGN.md: content-addressed gzip blobs, a tree of versioned symlinks and a
 * refcount database. Knows nothing of HTTP. One writer per name at a time (a keyed mutex);
 * readers take no lock and never wait for writers.
 */
export class Store {
  readonly layout: StoreLayout;
  readonly meta: MetaDb;
  readonly links: LinkTree;
  /** Directory fsyncs, shared by the blob and link writers (see DirSync). */
  readonly #dirs = new DirSync();
  readonly blobs: BlobRefs;
  readonly stats: StoreStats = {
    dedupHits: 0,
    uploadsInFlight: 0,
    blobs: 0,
    blobBytes: 0,
    tombstones: 0,
    countsReady: false,
  };
  /** Leftovers found in `ft-tmp/` at open (from a crash), now removed. */
  readonly tmpLeftovers: number;
  readonly #names = new KeyedMutex();
  readonly #gzipLevel: number;
  readonly #warn: (details: Record<string, unknown>, message: string) => void;
  readonly #smallBlobBytes: number;
  /**
   * name -> entry, kept coherent by the writers (who hold the name's lock and update it
   * after each change). Readers fill it on a miss only if no write of the name happened
   * meanwhile (see {@link #reads}).
   */
  readonly #entries: LRUCache<string, FileEntry>;
  /**
   * Names a PUT found without a link before taking the name's lock, so that under the lock
   * it need not read the link again (one thread-pool trip fewer for each new name). Filled
   * like {@link #entries}, only if no write of the name happened meanwhile; used once,
   * under the lock; and cleared by every write of the name, whose lock keeps other PUTs
   * from using it in between.
   */
  readonly #absent = new LRUCache<string, true>({ max: 10_000 });
  /**
   * Link reads in flight, by name. A write marks those of its name and of the name's
   * ancestors stale (a new file makes its parents directories), and a stale read fills no
   * cache. It replaced one counter of all writes: under 64 concurrent uploads some other
   * name was written during nearly every read, so every new name's link was read twice.
   */
  readonly #reads = new Map<string, { stale: boolean }[]>();
  /** digest -> gzip bytes of small blobs; blobs never change, so this is always right. */
  readonly #blobCache: LRUCache<string, Buffer>;
  /** Notices the store's directories removed while we run (see StoreDirs). */
  readonly #storeDirs: StoreDirs;
  #closing: Promise<void> | undefined;
  #storeId = '';

  private constructor(
    layout: StoreLayout,
    meta: MetaDb,
    tmpLeftovers: number,
    options: StoreOptions,
  ) {
    this.layout = layout;
    this.meta = meta;
    this.links = new LinkTree(layout, this.#dirs);
    this.blobs = new BlobRefs(layout, meta, this.#dirs, {
      cachedRecords: options.blobRecordCacheSize,
      filterCapacity: options.digestFilterCapacity,
    });
    this.tmpLeftovers = tmpLeftovers;
    this.#gzipLevel = options.gzipLevel ?? 6;
    this.#warn = options.warn ?? (() => {});
    this.#smallBlobBytes = options.smallBlobBytes ?? 256 * 1024;
    this.#entries = new LRUCache({ max: options.entryCacheSize ?? 200_000 });
    this.blobs.onBlobCountChange = (delta, storedSize) => {
      this.stats.blobs += delta;
      this.stats.blobBytes += delta * storedSize;
    };
    this.#blobCache = new LRUCache({
      maxSize: options.blobCacheBytes ?? 64 * 1024 * 1024,
      sizeCalculation: (b) => b.length || 1,
    });
    this.#storeDirs = new StoreDirs(layout, this.#dirs, {
      onRestored: (made) => {
        this.#forgetCached();
        const lost = made.some((d) => d !== layout.tmp);
        this.#warn(
          { dirs: made.map((d) => path.relative(layout.root, d) + '/') },
          'store directories were removed while ft-server ran and are made again' +
            (lost
              ? '; the files stored in them are gone: run ft-recover when convenient to drop their records'
              : ''),
        );
      },
      onGone: (reason) => this.#warn({ dir: layout.root }, reason),
    });
    this.blobs.onBlobRestored = (digest) => {
      // Names cached with the sizes of the gzip that was removed would be sent wrong.
      this.#forgetCached();
      this.#warn({ digest }, 'blob was missing from blobs/ and is stored again from an upload');
    };
  }

  /**
   * Forgets every cached name, directory and small blob, after files were removed behind
   * our back: the next reads look at the disk.
   */
  #forgetCached(): void {
    for (const reads of this.#reads.values()) for (const read of reads) read.stale = true;
    this.#entries.clear();
    this.#absent.clear();
    this.#blobCache.clear();
    this.links.forgetDirs();
  }

  /**
   * Opens (creating if new) the store in `dir`. Refuses a Python-made store (`links/`
   * without `meta/`) and a store another process holds (LEVEL_LOCKED, invariant 5).
   */
  static async open(dir: string, options: StoreOptions = {}): Promise<Store> {
    const layout = storeLayout(dir);
    try {
      return await Store.#open(layout, options);
    } catch (err) {
      if (err instanceof StoreOpenError) throw err;
      const { code, reason } = describeFailure(err, layout.root);
      throw new StoreOpenError(code, `cannot open store ${layout.root}: ${reason}`, err);
    }
  }

  static async #open(layout: StoreLayout, options: StoreOptions): Promise<Store> {
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
      const code =
        (err as { code?: string; cause?: { code?: string } }).cause?.code ??
        (err as { code?: string }).code;
      if (code === 'LEVEL_LOCKED') {
        throw new StoreOpenError(
          'LOCKED',
          `${layout.root} is in use by another ft-server or ft-recover`,
          err,
        );
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
    const store = new Store(layout, meta, leftovers.length, options);
    try {
      // Under the lock, ft-tmp/ empty; made durable by the fsync of the root just below.
      store.#storeId = await loadStoreId(layout, store.#warn);
    } catch (err) {
      await meta.close();
      throw err;
    }
    // A new store's directories (blobs/, links/...) must outlive a power cut as the first
    // upload into them must. Best effort: a parent the service user may not read (mode
    // 711) must not keep the store from opening.
    await Promise.all(
      [layout.root, path.dirname(layout.root)].map((d) =>
        store.#dirs.sync(d).catch((err: unknown) => {
          store.#warn({ dir: d, err }, 'cannot fsync a directory of the store at open');
        }),
      ),
    );
    store.#countTotals();
    return store;
  }

  /**
   * The store's identity: made once, at its first open, and kept in the store (see
   * store-id.ts). Answered in `/status` and the `X-Filetracker-Store-Id` header.
   */
  get storeId(): string {
    return this.#storeId;
  }

  #countTotals(): void {
    // Both iterators are created here, before any request: their snapshots plus the
    // changes counted since are the totals.
    const blobs = this.meta.blobs();
    const tombstones = this.meta.tombstones();
    void (async () => {
      let n = 0;
      let bytes = 0;
      for await (const [, record] of blobs) {
        n++;
        bytes += record.storedSize;
      }
      let t = 0;
      for await (const _ of tombstones) t++;
      this.stats.blobs += n;
      this.stats.blobBytes += bytes;
      this.stats.tombstones += t;
      this.stats.countsReady = true;
      // Sized for twice the store: a migration into it doubles it before the filter
      // must grow.
      await this.blobs.stored.build(2 * n);
    })().catch(() => {
      // Closed during the count: the numbers no longer matter.
    });
  }

  /** The current entry of a name, or null (absent, or a directory). */
  stat(components: readonly string[]): Promise<FileEntry | null> {
    return this.#lookup(components, false);
  }

  /** {@link stat}; `noteAbsent`: a PUT's look, whose "no link" {@link #absent} keeps. */
  async #lookup(components: readonly string[], noteAbsent: boolean): Promise<FileEntry | null> {
    const name = joinName(components);
    const cached = this.#entries.get(name);
    if (cached) return cached;
    const read = { stale: false };
    const reads = this.#reads.get(name);
    if (reads) reads.push(read);
    else this.#reads.set(name, [read]);
    let entry;
    try {
      entry = await this.#load(components);
    } finally {
      const left = this.#reads.get(name)!;
      if (left.length === 1) this.#reads.delete(name);
      else left.splice(left.indexOf(read), 1);
    }
    if (entry === 'absent') {
      if (noteAbsent && !read.stale) this.#absent.set(name, true);
      return null;
    }
    if (entry && !read.stale) this.#entries.set(name, entry);
    return entry;
  }

  /**
   * A write of `name` starts or has happened: the link reads in flight of the name and of
   * its ancestors are stale, and so is a "no link" noted for an ancestor (a new file makes
   * its parents directories). The writer itself clears the name's own note, which it uses.
   */
  #written(name: string): void {
    for (let end = name.length; end > 0; end = name.lastIndexOf('/', end - 1)) {
      const key = end === name.length ? name : name.slice(0, end);
      const reads = this.#reads.get(key);
      if (reads) for (const read of reads) read.stale = true;
      if (key !== name) this.#absent.delete(key);
    }
  }

  /** The entry of a name; 'absent' when it has no link; null for a directory. */
  async #load(components: readonly string[]): Promise<FileEntry | 'absent' | null> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const link = await this.links.read(components);
      if (link === null) return 'absent';
      if (link === 'directory') return null;
      const entry = await this.#entryOf(components, link);
      if (entry) return entry;
      // The link was replaced and its old blob dropped between our two reads: read again.
    }
    throw new Error(`link ${joinName(components)} points at a blob with no record`);
  }

  /** A link's entry: sizes from meta/, else off the blob; null when the blob is gone. */
  async #entryOf(components: readonly string[], link: LinkState): Promise<FileEntry | null> {
    // meta/ unavailable (a full disk stopped its reopen): reads go on from the blobs.
    const record = await this.blobs.get(link.digest).catch(() => undefined);
    if (record) {
      return {
        digest: link.digest,
        version: link.version,
        logicalSize: record.logicalSize,
        storedSize: record.storedSize,
      };
    }
    const healed = await this.#sizesFromBlob(link.digest);
    if (!healed) return null;
    this.#warn(
      { name: joinName(components), digest: link.digest },
      'blob has no record in meta/ (served from the blob; run ft-recover to rebuild meta/)',
    );
    return { digest: link.digest, version: link.version, ...healed };
  }

  /**
   * Sizes read off the blob itself, for a link whose record is missing (meta/ damaged, e.g.
   * by a full disk): reads keep working until ft-recover rebuilds meta/. undefined when the
   * blob is gone too.
   */
  async #sizesFromBlob(
    digest: string,
  ): Promise<{ logicalSize: number; storedSize: number } | undefined> {
    const file = blobPath(this.layout, digest);
    let storedSize: number;
    try {
      const st = await lstat(file);
      if (!st.isFile()) return undefined;
      storedSize = st.size;
    } catch {
      return undefined;
    }
    const { logicalSize } = await inflateBlob(file, { hash: false, storedSize });
    return { logicalSize, storedSize };
  }

  /**
   * The entry and whole gzip of a name when both are in memory, else undefined: the
   * synchronous read path for the small files judges fetch by the thousand.
   */
  peek(name: string): { entry: FileEntry; buffer: Buffer } | undefined {
    const entry = this.#entries.get(name);
    if (!entry) return undefined;
    const buffer = this.#blobCache.get(entry.digest);
    return buffer ? { entry, buffer } : undefined;
  }

  /**
   * Opens a name's content for reading. Retries when a concurrent replace dropped the blob
   * between choosing it and opening it, so a reader sees the old or the new content.
   */
  async openFile(components: readonly string[]): Promise<OpenedFile | null> {
    const name = joinName(components);
    let lastMissing: string | undefined;
    for (let attempt = 0; attempt < 10; attempt++) {
      const entry = await this.stat(components);
      if (!entry) return null;
      const cachedBlob = this.#blobCache.get(entry.digest);
      if (cachedBlob) return { ...entry, buffer: cachedBlob, handle: undefined };
      let handle: FileHandle;
      try {
        handle = await open(blobPath(this.layout, entry.digest), READ_BLOB);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ELOOP') {
          throw new Error(
            `blob ${entry.digest} is a symlink, which ft-server does not follow: run ft-recover`,
            { cause: err },
          );
        }
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        if (this.#entries.get(name) === entry) this.#entries.delete(name);
        if (attempt > 0 && entry.digest === lastMissing) {
          // Twice the same link to a blob that is not there: removed by hand (issue 18).
          this.#warn(
            { name, digest: entry.digest },
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
        this.#blobCache.set(entry.digest, buffer);
        return { ...entry, buffer, handle: undefined };
      } finally {
        await handle.close();
      }
    }
    throw new Error(`could not open a stable version of ${name}`);
  }

  /**
   * Stores a version of a name. A stored version newer than the request wins and the body is
   * not read; an equal or older one is replaced. Returns the version stored afterwards.
   */
  async put(req: PutRequest): Promise<PutResult> {
    const name = joinName(req.components);
    if (req.components.length === 0) throw new BadRequestError('BAD_PATH', 'A file needs a name');
    this.links.checkStorable(req.components);
    const dirsChecked = this.#storeDirs.beforeWrite();
    if (dirsChecked) {
      await dirsChecked.catch(async (err: unknown) => {
        throw await this.#writeFailure(err);
      });
    }
    const current = await this.#lookup(req.components, true);
    if (current && current.version > req.version)
      return { version: current.version, stored: false, receivedBytes: 0 };

    this.stats.uploadsInFlight++;
    let pinned: string | undefined;
    try {
      if (req.checksum !== undefined && (await this.blobs.pinIfStored(req.checksum))) {
        pinned = req.checksum;
      }
      const body = await ingest(req.body, {
        gzip: req.gzip,
        write: pinned === undefined,
        tmpDir: this.layout.tmp,
        gzipLevel: this.#gzipLevel,
        expectedDigest: req.checksum,
        expectedLogicalSize: req.logicalSize,
        maxLogicalSize: req.maxLogicalSize,
        bodyLength: req.bodyLength,
        signal: req.signal,
      });
      try {
        return await this.#names.run(name, async () => {
          const existing = this.#absent.delete(name) ? null : await this.links.read(req.components);
          if (existing !== null && existing !== 'directory' && existing.version > req.version) {
            await discard(body.tmpPath);
            return { version: existing.version, stored: false, receivedBytes: body.receivedBytes };
          }
          const tombstone = req.honorTombstones ? await this.meta.getTombstone(name) : undefined;
          if (tombstone !== undefined && existing === null && tombstone >= req.version) {
            // Nothing is stored, so there is no version to answer with (a 200 would make
            // the client believe in a name@version that cannot be read): see DeletedError.
            throw new DeletedError(
              `Deleted during the migration: versions up to ${formatHttpDate(tombstone)} are refused`,
            );
          }
          this.#written(name);
          const sameBlob =
            existing !== null && existing !== 'directory' && existing.digest === body.digest;
          // The sizes of the blob the name will point at (a dedup hit keeps the first
          // upload's gzip, whose size is not this body's).
          let sizes: { logicalSize: number; storedSize: number };
          if (sameBlob) {
            // The blob is stored again from this body if it went missing.
            sizes =
              (await this.blobs.keep(body.digest, body, body.tmpPath)) ??
              (await this.#entryOf(req.components, existing)) ??
              body;
          } else {
            const acquired = await this.blobs.acquire(body.digest, body, body.tmpPath);
            if (acquired.dedup) this.stats.dedupHits++;
            sizes = acquired.record;
          }
          try {
            await this.links.replace(req.components, body.digest, req.version);
          } catch (err) {
            if (!sameBlob) await this.blobs.release(body.digest);
            throw err;
          }
          // The link is in place: the PUT has happened. What follows is bookkeeping whose
          // failure (a full disk) must not turn an applied write into an error answer; a
          // drifted refcount is what ft-recover repairs.
          this.#entries.set(name, {
            digest: body.digest,
            version: req.version,
            logicalSize: sizes.logicalSize,
            storedSize: sizes.storedSize,
          });
          // A look that crossed this write may have noted the name absent after we used it.
          this.#absent.delete(name);
          this.#written(name);
          await this.#afterCommit(name, async () => {
            if (tombstone !== undefined) {
              await this.meta.deleteTombstone(name);
              this.stats.tombstones--;
            }
            if (existing !== null && existing !== 'directory' && !sameBlob) {
              await this.blobs.release(existing.digest);
            }
          });
          return { version: req.version, stored: true, receivedBytes: body.receivedBytes };
        });
      } catch (err) {
        // Whatever failed after the body was read (a full disk, a conflict), its temp file
        // goes; once renamed into blobs/ it is no longer there and this does nothing.
        await discard(body.tmpPath);
        throw err;
      }
    } catch (err) {
      throw await this.#writeFailure(err);
    } finally {
      this.stats.uploadsInFlight--;
      if (pinned !== undefined) await this.blobs.unpin(pinned);
    }
  }

  /**
   * Deletes a name unless its stored version is newer than `version`. Returns false when the
   * name is absent (or a directory). Empty directories stay (compat).
   */
  async delete(
    components: readonly string[],
    version: number,
  ): Promise<{ deleted: boolean; found: boolean }> {
    try {
      await this.#storeDirs.beforeWrite();
      return await this.#names.run(joinName(components), () =>
        this.#deleteLocked(components, version),
      );
    } catch (err) {
      throw await this.#writeFailure(err);
    }
  }

  /**
   * The error to answer for a failed write: a 503 for files that refuse us or for a
   * directory removed while it ran (see StoreDirs), else `err` itself.
   */
  async #writeFailure(err: unknown): Promise<unknown> {
    return (
      notWritableError(err, this.layout.root) ?? (await this.#storeDirs.afterMissing(err)) ?? err
    );
  }

  /** Deletes under the name's lock, which the caller holds. */
  async #deleteLocked(
    components: readonly string[],
    version: number,
  ): Promise<{ deleted: boolean; found: boolean }> {
    const existing = await this.links.read(components);
    if (existing === null || existing === 'directory') return { deleted: false, found: false };
    if (existing.version > version) return { deleted: false, found: true };
    const name = joinName(components);
    this.#written(name);
    await this.links.remove(components);
    this.#entries.delete(name);
    this.#absent.delete(name);
    this.#written(name);
    await this.blobs.release(existing.digest);
    return { deleted: true, found: true };
  }

  /**
   * Every file under a directory with a version `<= cutoff`, relative to it, streamed from a
   * walk of `links/` (never the whole listing in memory).
   */
  async list(components: readonly string[], cutoff: number): Promise<AsyncIterable<string>> {
    if (!(await this.links.isDirectory(components))) {
      throw new FiletrackerError("Path doesn't exist or is not a directory", {
        code: 'NOT_A_DIRECTORY',
        status: 400,
      });
    }
    return listLinks(this.links.path(components), cutoff);
  }

  async #afterCommit(name: string, work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (err) {
      this.#warn({ name, err }, 'bookkeeping after a write failed; run ft-recover when convenient');
    }
  }

  /** The tombstone version of a name deleted while only the 1.x fallback had it. */
  tombstone(components: readonly string[]): Promise<number | undefined> {
    return this.meta.getTombstone(joinName(components));
  }

  /**
   * Migration mode DELETE (DESIGN.md "Online migration"). The fallback is asked for the
   * name's legacy version (`askFallback`, under the name's lock so no PUT interleaves); if
   * it has it at a version `<=` the request's, a tombstone with the **fallback's** version
   * is recorded, so the migrator cannot bring it back while a re-upload in the same second
   * still can. A name we hold is deleted as usual either way. A name only the fallback has,
   * at a version newer than the request's, is kept and answered as found, like a held name
   * newer than the request.
   *
   * When the fallback cannot be asked (`askFallback` throws a {@link FallbackError}: down,
   * or no answer in time), a name we hold is still deleted, and the tombstone gets the
   * **held** version H instead. The migrator can only bring back the legacy copy, at its
   * mtime L: if L <= H the tombstone stops it; if L > H, its PUT would have replaced the
   * held file anyway (the newer version wins), so the delete is ordered before it. In
   * practice L <= H: clients write at their current time, after the 1.x store was frozen,
   * and the migrator's own upload holds H = L, the very tombstone the fallback would have
   * given. The cost: a re-upload at a version <= H is refused (410) until migration mode
   * ends. A name we do not hold still needs the fallback (we cannot know whether it
   * exists), so its DELETE fails with the FallbackError (502/504).
   */
  async deleteWithFallback(
    components: readonly string[],
    version: number,
    askFallback: () => Promise<number | null>,
  ): Promise<{ deleted: boolean; found: boolean }> {
    const name = joinName(components);
    await this.#storeDirs.beforeWrite()?.catch(async (err: unknown) => {
      throw await this.#writeFailure(err);
    });
    return this.#names
      .run(name, async () => {
        const existing = await this.links.read(components);
        const held = existing !== null && existing !== 'directory';
        if (held && existing.version > version) return { deleted: false, found: true };
        if (!held && (await this.meta.getTombstone(name)) !== undefined) {
          return { deleted: false, found: false };
        }
        // Asked even for a name we hold: if the migrator has not reached it yet, only a
        // tombstone stops it from bringing the legacy copy back after this delete.
        let unanswered: FallbackError | undefined;
        const legacyVersion = await askFallback().catch((err: unknown) => {
          if (!held || !(err instanceof FallbackError)) throw err;
          unanswered = err;
          return null;
        });
        if (held && unanswered !== undefined) {
          this.#warn(
            { name, version: existing.version, err: unanswered },
            'the fallback did not answer: deleted a held name, tombstone at its version',
          );
          // The tombstone first: if the delete then fails, a tombstone beside a held link
          // changes nothing (it only stops PUTs of absent names), and the next PUT clears it.
          await this.meta.putTombstone(name, existing.version);
          this.stats.tombstones++;
          await this.#deleteLocked(components, version);
          return { deleted: true, found: true };
        }
        const legacyDeleted = legacyVersion !== null && legacyVersion <= version;
        // A legacy file newer than the DELETE exists and is kept, as a held name newer than
        // the DELETE is: found, not deleted (issue 18, item 4; it used to be a 404).
        if (!held && !legacyDeleted) return { deleted: false, found: legacyVersion !== null };
        // The tombstone before the link goes, for the same reason: a crash in between must
        // not leave a name that the migrator can bring back.
        if (legacyDeleted) {
          await this.meta.putTombstone(name, legacyVersion);
          this.stats.tombstones++;
        }
        if (held) await this.#deleteLocked(components, version);
        return { deleted: true, found: true };
      })
      .catch(async (err: unknown) => {
        throw await this.#writeFailure(err);
      });
  }

  /** Removes every tombstone (after migration); returns how many there were. */
  async purgeTombstones(): Promise<number> {
    let n = 0;
    for await (const [name] of this.meta.tombstones()) {
      await this.meta.deleteTombstone(name);
      this.stats.tombstones--;
      n++;
    }
    return n;
  }

  /** Forgets a cached entry (after a change made outside put/delete). */
  invalidate(components: readonly string[]): void {
    const name = joinName(components);
    this.#written(name);
    this.#entries.delete(name);
    this.#absent.delete(name);
  }

  /**
   * Whether the store can take writes: the database is open and a file can be created,
   * written, fsynced and removed in ft-tmp/. The reason says what failed.
   */
  async health(): Promise<{ ok: true } | { ok: false; reason: string }> {
    try {
      // Directories removed since are made again; a database removed is the reason.
      await this.#storeDirs.check();
    } catch (err) {
      const reason = this.#storeDirs.gone;
      if (reason !== undefined) return { ok: false, reason };
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      return { ok: false, reason: `store directories cannot be made again (${code})` };
    }
    if (!this.meta.isOpen) return { ok: false, reason: 'database is not open' };
    const probe = tmpFile(this.layout.tmp, 'health');
    try {
      // The same durable write an upload makes.
      await writeDurably(probe, Buffer.from('ok'));
      await rm(probe, { force: true });
      return { ok: true };
    } catch (err) {
      await rm(probe, { force: true }).catch(() => {});
      return {
        ok: false,
        reason: `store is not writable (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      };
    }
  }

  /** Idempotent: closes the database once; every call returns the same promise. */
  close(): Promise<void> {
    this.#closing ??= this.meta.close();
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
 * A blob is opened only if it is a file: a symlink in its place (a hand edit) is never
 * followed out of the store.
 */
const READ_BLOB = fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW;

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

async function discard(tmpPath: string | undefined): Promise<void> {
  if (tmpPath) await rm(tmpPath, { force: true });
}
