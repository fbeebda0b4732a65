import {
  BackendUnavailableError,
  BadRequestError,
  NotADirectoryError,
  StoreNotWritableError,
  joinName,
} from '@filetracker/shared-protocol/wire';
import type { BlobStore, StageOptions, StagedBlob } from './blob-store.js';
import type { MetadataStore, NameChange } from './metadata-store.js';
import { ReadCaches, type EntryLookup, type FileEntry } from './read-caches.js';
import type {
  DeleteResult,
  LockedName,
  OpenedFile,
  PutAdmission,
  PutRequest,
  PutResult,
  Store,
  StoreHealth,
} from './store-api.js';
import type { StoreStats } from './store-metrics.js';

/**
 * What a backend checks around writes: the local one, that its directories were not
 * removed while it runs (see StoreDirs, issue 18).
 */
export interface WriteGuard {
  /** Usually undefined at once; else resolves when writes may go on, or rejects with the 503. */
  beforeWrite(): Promise<void> | undefined;
  /**
   * The 503 to answer for a write that failed for the backend's own reasons (the local one:
   * its files refuse us, or a directory was removed while the write ran), if so.
   */
  writeFailure(err: unknown): Promise<unknown>;
  /** Looks now (for /healthz); rejects when writes are refused. */
  check(): Promise<void>;
  /** Why writes are refused until a restart; undefined while they are not. */
  readonly gone: string | undefined;
}

/** The settings of any {@link PortStore}, whatever its ports: its read caches, its warnings. */
export interface StoreOptions {
  /** Blobs up to this size are read whole and kept in memory. */
  smallBlobBytes?: number;
  /** Bytes of small blobs kept in memory. */
  blobCacheBytes?: number;
  /** Names whose (digest, version, sizes) stay in memory. */
  entryCacheSize?: number;
  /** Told of problems the store works around (a log line for the operator). */
  warn?: (details: Record<string, unknown>, message: string) => void;
}

/**
 * The {@link Store} of DESIGN.md over two ports, a {@link BlobStore} and a
 * {@link MetadataStore} (local disk + symlinks + LevelDB today, see open-local.ts):
 * it runs the write sequence and keeps the read caches, and knows nothing of where bytes and
 * names live. Writes of a name are serialized by the metadata store; readers take no lock
 * and never wait for writers.
 */
export class PortStore<M extends MetadataStore = MetadataStore> implements Store {
  readonly blobs: BlobStore;
  readonly metadata: M;
  /**
   * The store's identity: made once, at its first open, and kept in the store (see
   * store-id.ts). Answered in `/status` and the `X-Filetracker-Store-Id` header.
   */
  readonly storeId: string;
  /**
   * The counters its owner keeps: blob and tombstone totals reported by the metadata store,
   * uploads counted by a MeteredStore around this one (this store mutates none).
   */
  readonly stats: StoreStats;
  readonly #guard: WriteGuard | undefined;
  readonly #caches: ReadCaches;
  readonly #smallBlobBytes: number;
  readonly #warn: (details: Record<string, unknown>, message: string) => void;
  #closing: Promise<void> | undefined;

  constructor(
    ports: { blobs: BlobStore; metadata: M; stats: StoreStats; guard?: WriteGuard },
    storeId: string,
    options: StoreOptions = {},
  ) {
    this.storeId = storeId;
    this.blobs = ports.blobs;
    this.metadata = ports.metadata;
    this.stats = ports.stats;
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

  /** The error to answer for a failed write: the backend's 503 (see WriteGuard), else `err`. */
  async #writeFailure(err: unknown): Promise<unknown> {
    return (await this.#guard?.writeFailure(err)) ?? err;
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
      const held = await this.metadata.entry(components);
      if (typeof held !== 'object') return held;
      const sizes = held.sizes ?? (await this.#blobSizes(components, held.digest));
      if (sizes) return { digest: held.digest, version: held.version, ...sizes };
      // The name was replaced and its old blob dropped between our two reads: read again.
    }
    throw new Error(`name ${joinName(components)} points at a blob with no record`);
  }

  /** The sizes of a blob with no record, off the blob itself; undefined when it is gone. */
  async #blobSizes(
    components: readonly string[],
    digest: string,
  ): Promise<{ logicalSize: number; storedSize: number } | undefined> {
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

  get namesInMemory(): boolean {
    return this.#caches.keepsEntries;
  }

  async peekLooked(
    components: readonly string[],
  ): Promise<{ entry: FileEntry; buffer: Buffer } | undefined> {
    const entry = await this.stat(components);
    const buffer = entry && this.#caches.blob(entry.digest);
    return buffer ? { entry: entry!, buffer } : undefined;
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
   * Stores a version of a name: DESIGN.md's write sequence, step by step. A stored version
   * newer than the request wins; an equal or older one is replaced. The body is not read
   * when the newer version is known first (the name in memory, or a body of unknown or
   * large size, looked up before it is read); a small body (up to {@link LOOK_ALONGSIDE_BYTES},
   * with its length told) is read and staged while the name is looked up, and then thrown
   * away, whatever it held (a body that fails its claims too): the answer is the newer
   * version, as ever. `admit`: migration mode's say (see {@link PutAdmission}).
   */
  async put(req: PutRequest, admit?: PutAdmission): Promise<PutResult> {
    const { components, version } = req;
    const name = this.#storableName(components);
    const guarded = this.#guard?.beforeWrite();
    if (guarded) await guarded.catch(this.#refuseWrite);
    // 1. A newer version stored: answered without reading the body, when known first.
    const looking =
      this.#caches.entry(name) ?? this.#caches.lookup(name, () => this.#load(components), true);
    const readAlongside = req.bodyLength !== undefined && req.bodyLength <= LOOK_ALONGSIDE_BYTES;
    const looked = looking instanceof Promise && !readAlongside ? await looking : looking;
    if (holdsNewer(looked, version)) return kept(looked, 0);
    // Awaited below; should a step before that fail, its rejection must not go unhandled.
    if (looked instanceof Promise) looked.catch(() => {});
    let pinned: string | undefined;
    let staged: StagedBlob | undefined;
    try {
      // 2. Content claimed and stored already: held, and the body only verified.
      pinned = await this.#pinClaimed(req.checksum);
      // 3. The body read, verified against the claims and staged (durable).
      try {
        staged = await this.blobs.stage(req.body, stageOptions(req, pinned === undefined));
      } catch (err) {
        const current = await looked;
        if (holdsNewer(current, version)) return kept(current, 0);
        throw err;
      }
      const blob = staged;
      const current = await looked;
      if (holdsNewer(current, version)) {
        await this.blobs.discard(blob);
        return kept(current, blob.receivedBytes);
      }
      // 4. Under the name's lock: the version looked at again, then one change of the name.
      return await this.metadata.withName(name, async () => {
        const existing = this.#caches.takeAbsent(name)
          ? 'absent'
          : await this.metadata.read(components);
        if (holdsNewer(existing, version)) {
          await this.blobs.discard(blob);
          return kept(existing, blob.receivedBytes);
        }
        const clearTombstone = admit ? await admit(name, version, existing) : false;
        const change = { components, blob, version, previous: existing, clearTombstone };
        const { dedup, storedSize } = await this.#commit(name, change);
        // 5. The answer: the name now holds this request's content and version.
        return { version, stored: true, receivedBytes: blob.receivedBytes, dedup, storedSize };
      });
    } catch (err) {
      // Whatever failed after the body was read (a full disk, a conflict), its staged copy
      // goes; once committed it is no longer staged and this does nothing.
      if (staged !== undefined) await this.blobs.discard(staged);
      throw await this.#writeFailure(err);
    } finally {
      if (pinned !== undefined) await this.metadata.unpin(pinned);
    }
  }

  /** The name of `components`, refused (BadRequestError) when the store cannot hold it. */
  #storableName(components: readonly string[]): string {
    if (components.length === 0) throw new BadRequestError('BAD_PATH', 'A file needs a name');
    this.metadata.checkStorable(components);
    return joinName(components);
  }

  /** A failed {@link WriteGuard.beforeWrite}, as the write's error (made once, not per PUT). */
  readonly #refuseWrite = async (err: unknown): Promise<never> => {
    throw await this.#writeFailure(err);
  };

  /** Put's step 2: the digest a PUT claims, pinned when its blob is stored already. */
  async #pinClaimed(checksum: string | undefined): Promise<string | undefined> {
    if (checksum === undefined) return undefined;
    return (await this.metadata.pin(checksum)) ? checksum : undefined;
  }

  /**
   * Put's change, under the name's lock: committed, with the caches told before and after
   * (their staleness rule, see ReadCaches) and the name's new entry kept. Whether the
   * content was stored already (a dedup), and the stored size of the blob the name holds.
   */
  async #commit(name: string, change: NameChange): Promise<{ dedup: boolean; storedSize: number }> {
    const { components, blob, version } = change;
    this.#caches.written(name);
    const committed = await this.metadata.commit(change);
    const sizes = committed.sizes ?? (await this.#blobSizes(components, blob.digest)) ?? blob;
    const { logicalSize, storedSize } = sizes;
    this.#caches.set(name, { digest: blob.digest, version, logicalSize, storedSize });
    this.#caches.written(name);
    return { dedup: committed.dedup, storedSize };
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
          putTombstone: (version) => this.metadata.putTombstone(name, version),
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
  delete(components: readonly string[], version: number): Promise<DeleteResult> {
    return this.withName(components, async ({ existing, remove }) => {
      if (typeof existing !== 'object') return { deleted: false, found: false };
      if (existing.version > version) return { deleted: false, found: true };
      await remove(existing);
      return { deleted: true, found: true };
    });
  }

  tombstone(name: string): Promise<number | undefined> {
    return this.metadata.tombstone(name);
  }

  /**
   * Every file under a directory with a version `<= cutoff`, relative to it, streamed (never
   * the whole listing in memory).
   */
  async list(components: readonly string[], cutoff: number): Promise<AsyncIterable<string>> {
    if (!(await this.metadata.isDirectory(components))) throw new NotADirectoryError();
    return this.metadata.list(components, cutoff);
  }

  /**
   * Whether the store can take writes: the metadata store is open and a blob can be staged
   * the way an upload is. The error's reason says what failed; its code is the one a write
   * meets (BACKEND_UNAVAILABLE when a blob store's service said so, else STORE_NOT_WRITABLE).
   */
  async health(): Promise<StoreHealth> {
    try {
      // Directories removed since are made again; a database removed is the reason.
      await this.#guard?.check();
    } catch (err) {
      const reason =
        this.#guard?.gone ?? `store directories cannot be made again (${errorCode(err)})`;
      return { ok: false, error: new StoreNotWritableError(reason) };
    }
    if (!this.metadata.isOpen) {
      return { ok: false, error: new StoreNotWritableError('database is not open') };
    }
    try {
      await this.blobs.checkWritable();
      return { ok: true };
    } catch (err) {
      const reason = `store is not writable (${errorCode(err)})`;
      const error =
        err instanceof BackendUnavailableError
          ? new BackendUnavailableError(reason)
          : new StoreNotWritableError(reason);
      return { ok: false, error };
    }
  }

  /** Idempotent: closes the metadata store once; every call returns the same promise. */
  close(): Promise<void> {
    this.#closing ??= this.metadata.close();
    return this.#closing;
  }
}

/** An error's `code` (`EACCES`, `BACKEND_UNAVAILABLE`) for a reason, else 'error'. */
function errorCode(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? 'error';
}

/**
 * A body up to this size, its length told, is read and staged while its name is looked up
 * (see {@link PortStore.put}): the look (a thread-pool trip, or a database round trip) then
 * costs an upload no time of its own. Reading it when the name turns out to hold a newer
 * version costs next to nothing at this size; a larger body is not read before the look.
 */
const LOOK_ALONGSIDE_BYTES = 64 * 1024;

/** Whether a name's look found it holding a version newer than `version`. */
function holdsNewer<T extends { version: number }>(
  found: T | string | Promise<unknown>,
  version: number,
): found is T {
  return typeof found === 'object' && !(found instanceof Promise) && found.version > version;
}

/** A PUT answered with the newer version the name holds: nothing stored. */
function kept(held: { version: number }, receivedBytes: number): PutResult {
  return {
    version: held.version,
    stored: false,
    receivedBytes,
    dedup: false,
    storedSize: undefined,
  };
}

/** What a PUT claims about its body, for the blob store's stage (put's step 3). */
function stageOptions(req: PutRequest, write: boolean): StageOptions {
  return {
    gzip: req.gzip,
    write,
    expectedDigest: req.checksum,
    expectedLogicalSize: req.logicalSize,
    maxLogicalSize: req.maxLogicalSize,
    bodyLength: req.bodyLength,
  };
}
