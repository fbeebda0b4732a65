import { joinName } from '@filetracker/shared-protocol/wire';
import { BlobRefs } from './blob-refs.js';
import type { BlobStore } from './blob-store.js';
import type { DigestFilter } from './digest-filter.js';
import type { DirSync } from './dir-sync.js';
import { KeyedMutex } from './keyed-mutex.js';
import type { StoreLayout } from './layout.js';
import { LinkTree } from './link-tree.js';
import { listLinks } from './list.js';
import type { MetaDb } from './meta-db.js';
import type {
  BlobRecord,
  CommitResult,
  SizedLookup,
  MetadataEvents,
  MetadataStore,
  NameChange,
  NameLookup,
  NameRecord,
} from './metadata-store.js';
import { sizesOf } from './metadata-store.js';

export interface LocalMetadataOptions {
  /** Blob records (refcount and sizes) that stay in memory. */
  cachedRecords?: number | undefined;
  /** The least number of digests the filter of stored digests is sized for. */
  filterCapacity?: number | undefined;
  events?: MetadataEvents | undefined;
  /** Told when a blob whose file was missing is stored again from an upload. */
  blobRestored?: ((digest: string) => void) | undefined;
  /** Told of bookkeeping that failed after a change was made (a log line for the operator). */
  warn?: ((details: Record<string, unknown>, message: string) => void) | undefined;
}

/**
 * The {@link MetadataStore} of one process on a local disk: names are the symlinks of
 * `links/` (their own mtime the version), records and tombstones are in the classic-level
 * database `meta/`, and writes of a name are serialized by a keyed mutex (the database's
 * LOCK file keeps other processes out: DESIGN.md invariant 5).
 *
 * A commit is ordered for durability rather than made in one transaction: the blob
 * committed (its directory fsynced) and its reference written (synced), while the new link
 * is made in `ft-tmp/`; then the link renamed into place (its directory fsynced) — from
 * that moment the change has happened — and only then the old blob's reference dropped and
 * the tombstone cleared. The first three run at once, as none is visible to a reader, nor
 * needed after a crash, without the rename that waits for them: a PUT's chain of durable
 * steps is its staged write, then the blob's and record's flushes side by side, then the
 * link's. A crash in between leaves a count too high, an orphan blob or a record of a blob
 * that never arrived, which ft-recover repairs (invariant 4); that bookkeeping failing (a
 * full disk) is logged, never turned into an error for a write that was applied.
 */
export class LocalMetadataStore implements MetadataStore {
  readonly db: MetaDb;
  readonly #links: LinkTree;
  readonly #refs: BlobRefs;
  readonly #names = new KeyedMutex();
  readonly #events: MetadataEvents | undefined;
  readonly #warn: (details: Record<string, unknown>, message: string) => void;

  constructor(
    layout: StoreLayout,
    db: MetaDb,
    dirs: DirSync,
    blobs: BlobStore,
    options: LocalMetadataOptions = {},
  ) {
    this.db = db;
    this.#links = new LinkTree(layout, dirs);
    this.#events = options.events;
    this.#refs = new BlobRefs(blobs, db, options.events, options);
    this.#refs.onBlobRestored = options.blobRestored;
    this.#warn = options.warn ?? (() => {});
  }

  /** Digests `meta/` may hold a record of (see DigestFilter); built after open. */
  get digestFilter(): DigestFilter {
    return this.#refs.stored;
  }

  get isOpen(): boolean {
    return this.db.isOpen;
  }

  checkStorable(components: readonly string[]): void {
    this.#links.checkStorable(components);
  }

  read(components: readonly string[]): Promise<NameLookup> {
    return this.#links.read(components);
  }

  blob(digest: string): Promise<BlobRecord | undefined> {
    return this.#refs.get(digest);
  }

  async entry(components: readonly string[]): Promise<SizedLookup> {
    const held = await this.read(components);
    if (typeof held !== 'object') return held;
    // meta/ unavailable (a full disk stopped its reopen): reads go on from links and blobs.
    const record = await this.blob(held.digest).catch(() => undefined);
    return { ...held, sizes: record && sizesOf(record) };
  }

  withName<T>(name: string, fn: () => Promise<T>): Promise<T> {
    return this.#names.run(name, fn);
  }

  pin(digest: string): Promise<BlobRecord | undefined> {
    return this.#refs.pinIfStored(digest);
  }

  unpin(digest: string): Promise<void> {
    return this.#refs.unpin(digest);
  }

  async commit(change: NameChange): Promise<CommitResult> {
    const { components, blob, previous } = change;
    const held = typeof previous === 'object' ? previous : undefined;
    const sameBlob = held?.digest === blob.digest;
    // The reference (and the blob, if new) made durable while the link is made beside it.
    const refs: Promise<CommitResult> = sameBlob
      ? // The blob is stored again from this body if it went missing.
        this.#refs.keep(blob).then((sizes) => ({ dedup: false, sizes }))
      : this.#refs.acquire(blob).then(({ dedup, record }) => ({ dedup, sizes: record }));
    refs.catch(() => {}); // thrown below, by replace or here
    try {
      await this.#links.replace(components, blob.digest, change.version, refs);
    } catch (err) {
      const acquired = await refs.then(
        () => true,
        () => false,
      );
      if (!sameBlob && acquired) await this.#refs.release(blob.digest);
      throw err;
    }
    const result = await refs;
    // The link is in place: the change has happened. What follows is bookkeeping whose
    // failure (a full disk) must not turn an applied write into an error answer; a
    // drifted refcount is what ft-recover repairs.
    try {
      if (change.clearTombstone) await this.deleteTombstone(joinName(components));
      if (held !== undefined && !sameBlob) await this.#refs.release(held.digest);
    } catch (err) {
      this.#warn(
        { name: joinName(components), err },
        'bookkeeping after a write failed; run ft-recover when convenient',
      );
    }
    return result;
  }

  async remove(components: readonly string[], previous: NameRecord): Promise<void> {
    await this.#links.remove(components);
    await this.#refs.release(previous.digest);
  }

  tombstone(name: string): Promise<number | undefined> {
    return this.db.getTombstone(name);
  }

  async putTombstone(name: string, version: number): Promise<void> {
    await this.db.putTombstone(name, version);
    this.#events?.tombstoneCountChanged(1);
  }

  async deleteTombstone(name: string): Promise<void> {
    await this.db.deleteTombstone(name);
    this.#events?.tombstoneCountChanged(-1);
  }

  tombstones(): AsyncIterable<[string, number]> {
    return this.db.tombstones();
  }

  blobs(): AsyncIterable<[string, BlobRecord]> {
    return this.db.blobs();
  }

  /** Forgets the directories found real, after `links/` was removed while we ran. */
  forgetDirs(): void {
    this.#links.forgetDirs();
  }

  isDirectory(components: readonly string[]): Promise<boolean> {
    return this.#links.isDirectory(components);
  }

  list(components: readonly string[], cutoff: number): AsyncIterable<string> {
    return listLinks(this.#links.path(components), cutoff);
  }

  close(): Promise<void> {
    return this.db.close();
  }
}
