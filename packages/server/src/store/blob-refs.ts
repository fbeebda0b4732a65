import { LRUCache } from 'lru-cache';
import { StoreNotWritableError } from '@filetracker/shared-protocol/wire';
import type { BlobStore, StagedBlob } from './blob-store.js';
import { DigestFilter } from './digest-filter.js';
import { KeyedMutex } from './keyed-mutex.js';
import type { MetaDb } from './meta-db.js';
import type { BlobRecord, MetadataEvents } from './metadata-store.js';

/** A cached "the database has no record of this digest". */
const ABSENT = 'absent';

/**
 * Records (and absences) kept in memory, about 180 bytes each (2 MB). What saves a read
 * is an upload's own pin before its link (moments apart) and recent duplicates: a long
 * migration must not grow the server by a record per file it has seen.
 */
const CACHED_RECORDS = 10_000;

/**
 * Reference counting of content-addressed blobs. All changes to one digest's record and
 * file happen under that digest's lock; a name's lock is always taken before a digest's,
 * and no digest lock waits for anything else, so the two never deadlock.
 *
 * A pin keeps a blob alive between "this content is already stored, only verify the body"
 * and the moment the upload links it, so a concurrent delete cannot remove it in between.
 *
 * Records are read through a write-through cache. This class makes every change to blob
 * records and one process owns a store (DESIGN.md invariant 5), so what the cache holds is
 * what the database holds; a write that fails forgets the digest instead of guessing. A new
 * upload asked the database twice whether its digest was stored (to pin it, then under the
 * lock to link it), each a trip through the thread pool, in a write path of about fifteen.
 */
export class BlobRefs {
  readonly #blobs: BlobStore;
  readonly #meta: MetaDb;
  readonly #events: MetadataEvents | undefined;
  /** Called when a blob whose file was missing is stored again from an upload. */
  onBlobRestored: ((digest: string) => void) | undefined;
  readonly #locks = new KeyedMutex();
  readonly #pins = new Map<string, number>();
  readonly #records: LRUCache<string, BlobRecord | typeof ABSENT>;
  /** Digests the database may hold: a new upload's digest is seldom worth a read. */
  readonly stored: DigestFilter;

  /**
   * `blobs`: where the blob files are committed and removed; `events` is told when a blob
   * appears or goes. `cachedRecords`: how many records (and absences) stay in memory;
   * `filterCapacity`: the least number of digests {@link stored} is sized for.
   */
  constructor(
    blobs: BlobStore,
    meta: MetaDb,
    events: MetadataEvents | undefined,
    options: { cachedRecords?: number | undefined; filterCapacity?: number | undefined } = {},
  ) {
    this.#blobs = blobs;
    this.#meta = meta;
    this.#events = events;
    this.#records = new LRUCache({ max: options.cachedRecords ?? CACHED_RECORDS });
    this.stored = new DigestFilter(() => meta.blobDigests(), options.filterCapacity);
  }

  /** The record of `digest`, read without its lock (for a GET's sizes). */
  get(digest: string): Promise<BlobRecord | undefined> {
    return this.#read(digest, false);
  }

  /**
   * `locked`: the caller holds the digest's lock, so no write to this record can cross the
   * read and what it reads is kept. A read without the lock may cross one, and keeping what
   * it read could put back a value older than the one that write cached.
   */
  async #read(digest: string, locked = true): Promise<BlobRecord | undefined> {
    const cached = this.#records.get(digest);
    if (cached !== undefined) return cached === ABSENT ? undefined : cached;
    if (!this.stored.mayHold(digest)) {
      if (locked) this.#records.set(digest, ABSENT);
      return undefined;
    }
    const record = await this.#meta.getBlob(digest);
    if (locked) this.#records.set(digest, record ?? ABSENT);
    return record;
  }

  /**
   * Writes a record (or deletes it, for undefined) and the cache after it; `durable` for a
   * reference added (see MetaDb.putBlob).
   */
  async #write(digest: string, record: BlobRecord | undefined, durable = false): Promise<void> {
    try {
      if (record === undefined) await this.#meta.deleteBlob(digest);
      else await this.#meta.putBlob(digest, record, durable);
    } catch (err) {
      this.#records.delete(digest); // it may or may not have landed
      throw err;
    } finally {
      // Once the write has settled, whatever its outcome (see DigestFilter).
      if (record !== undefined) this.stored.add(digest);
    }
    this.#records.set(digest, record ?? ABSENT);
  }

  /**
   * Pins `digest` if it is stored, its file there too; returns its record, or undefined
   * (nothing pinned: the upload writes its body, which can replace a missing file).
   */
  pinIfStored(digest: string): Promise<BlobRecord | undefined> {
    return this.#locks.run(digest, async () => {
      const record = await this.#read(digest);
      if (!record || !(await this.#blobs.has(digest))) return undefined;
      this.#pins.set(digest, (this.#pins.get(digest) ?? 0) + 1);
      return record;
    });
  }

  /**
   * With the digest's lock held and `record` read: makes sure the blob file is there,
   * committing `blob` (this upload's verified gzip) into the place of a missing one, or
   * discarding it. A record outlives its file when `blobs/` is removed by hand while the
   * server runs (issue 18): a dedup must not trust the record alone, or an upload would be
   * answered 200 with a link to nothing. Returns the record to keep (the sizes of the file
   * now in place).
   */
  async #ensureFile(record: BlobRecord, blob: StagedBlob): Promise<BlobRecord> {
    const { digest } = blob;
    if (await this.#blobs.has(digest)) {
      if (blob.location !== undefined) await this.#blobs.discard(blob);
      return record;
    }
    if (blob.location === undefined) {
      // Pinned with its file there a moment ago: removed by hand since.
      throw new StoreNotWritableError(
        'A blob was removed from blobs/ while this upload ran: retry',
      );
    }
    await this.#blobs.commit(blob);
    const restored = { ...record, storedSize: blob.storedSize };
    await this.#write(digest, restored, true);
    this.#events?.blobCountChanged(-1, record.storedSize);
    this.#events?.blobCountChanged(1, restored.storedSize);
    this.onBlobRestored?.(digest);
    return restored;
  }

  /**
   * For an upload of the content a name already links to: makes sure the blob file is
   * there (see {@link acquire}) and returns its record; undefined when it has none.
   */
  keep(blob: StagedBlob): Promise<BlobRecord | undefined> {
    return this.#locks.run(blob.digest, async () => {
      const record = await this.#read(blob.digest);
      if (record) return this.#ensureFile(record, blob);
      if (blob.location !== undefined) await this.#blobs.discard(blob);
      return undefined;
    });
  }

  unpin(digest: string): Promise<void> {
    return this.#locks.run(digest, async () => {
      const pins = (this.#pins.get(digest) ?? 1) - 1;
      if (pins > 0) {
        this.#pins.set(digest, pins);
        return;
      }
      this.#pins.delete(digest);
      const record = await this.#read(digest);
      if (record && record.refs <= 0) await this.#drop(digest, record);
    });
  }

  /**
   * Adds one reference to `blob`'s digest, durably. If the blob is not stored yet, the staged
   * one is committed and its record written at once, each durable (a directory fsync, a
   * synced batch) while the other is made: the two flushes overlap instead of one waiting
   * for the other. Until both are done nothing links the blob (the caller links after this
   * resolves), and a crash in between can leave a record whose file never arrived, with no
   * name on it; a later upload of that content finds the file missing ({@link #ensureFile}:
   * every use of a record checks the file) and stores it, and ft-recover drops the record.
   * If only one of the two succeeds it is undone, so a failed upload leaves neither. If the
   * blob is stored, the staged copy is discarded (identical content is stored once), unless
   * the record's file is missing, which the staged copy then replaces.
   */
  acquire(blob: StagedBlob): Promise<{ dedup: boolean; record: BlobRecord }> {
    const { digest } = blob;
    return this.#locks.run(digest, async () => {
      const record = await this.#read(digest);
      if (record) {
        const kept = await this.#ensureFile(record, blob);
        const updated = { ...kept, refs: kept.refs + 1 };
        await this.#write(digest, updated, true);
        return { dedup: true, record: updated };
      }
      if (blob.location === undefined) {
        throw new Error(`blob ${digest} vanished while pinned`);
      }
      const created = { refs: 1, logicalSize: blob.logicalSize, storedSize: blob.storedSize };
      const [committed, written] = await Promise.allSettled([
        this.#blobs.commit(blob),
        this.#write(digest, created, true),
      ]);
      const failed = [committed, written].find((r) => r.status === 'rejected');
      if (failed !== undefined) {
        // Neither without the other: a full disk must leave no orphan and no record of a
        // file that is not there. (An undo that fails too leaves what ft-recover repairs.)
        if (written.status === 'fulfilled') await this.#write(digest, undefined).catch(() => {});
        if (committed.status === 'fulfilled') await this.#blobs.remove(digest).catch(() => {});
        throw failed.reason;
      }
      this.#events?.blobCountChanged(1, blob.storedSize);
      return { dedup: false, record: created };
    });
  }

  /** Drops one reference; the last one removes the blob unless it is pinned. */
  release(digest: string): Promise<void> {
    return this.#locks.run(digest, async () => {
      const record = await this.#read(digest);
      if (!record) return;
      const refs = record.refs - 1;
      if (refs <= 0 && !this.#pins.has(digest)) {
        await this.#drop(digest, record);
      } else {
        await this.#write(digest, { ...record, refs: Math.max(refs, 0) });
      }
    });
  }

  async #drop(digest: string, record: BlobRecord): Promise<void> {
    // The record goes first: a crash in between leaves an orphan file (ft-recover removes
    // it), never a record of a file that is gone.
    await this.#write(digest, undefined);
    await this.#blobs.remove(digest);
    this.#events?.blobCountChanged(-1, record.storedSize);
  }
}
