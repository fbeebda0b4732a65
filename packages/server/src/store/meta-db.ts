import { ClassicLevel } from 'classic-level';
import { GroupCommit } from './group-commit.js';
import { forgetHolder, recordHolder } from './lock-holder.js';
import type { BlobRecord } from './metadata-store.js';

export type { BlobRecord };

interface PutOp {
  type: 'put';
  key: string;
  value: string;
}

/**
 * Whether opening a database failed because another process holds its LOCK file (invariant
 * 5); classic-level wraps LevelDB's error, so the code may be on the cause.
 */
export function isLevelLocked(err: unknown): boolean {
  const e = err as { code?: string; cause?: { code?: string } } | undefined;
  return (e?.cause?.code ?? e?.code) === 'LEVEL_LOCKED';
}

// Key prefixes; `;` follows `:` in byte order, which bounds each range whatever the name.
const BLOB = 'b:';
const TOMBSTONE = 't:';

/**
 * The classic-level database under `meta/`: refcount and sizes per digest, and tombstones
 * (name -> legacy version) for online migration. Its LOCK file makes one process the
 * owner of a store (DESIGN.md invariant 5).
 */
export class MetaDb {
  readonly db: ClassicLevel<string, string>;
  #closing: Promise<void> | undefined;
  #reopening: Promise<void> | undefined;
  /**
   * Durable writes, gathered into one synced batch (one fdatasync of LevelDB's log, one
   * thread-pool job) for every write waiting while the last one is written.
   */
  readonly #durable = new GroupCommit<0, PutOp>((_, ops) =>
    this.#write(() => this.db.batch(ops, { sync: true })),
  );

  readonly #location: string;

  private constructor(db: ClassicLevel<string, string>, location: string) {
    this.db = db;
    this.#location = location;
  }

  /**
   * Opens the database, taking its lock, and writes this process's PID beside the lock
   * (lock-holder.ts), so that another process refused by the lock can name the holder.
   */
  static async open(location: string): Promise<MetaDb> {
    const db = new ClassicLevel<string, string>(location, { valueEncoding: 'utf8' });
    await db.open();
    await recordHolder(location);
    return new MetaDb(db, location);
  }

  get isOpen(): boolean {
    return this.db.status === 'open';
  }

  async getBlob(digest: string): Promise<BlobRecord | undefined> {
    await this.#ensureOpen();
    const raw = await this.db.get(BLOB + digest);
    return raw === undefined ? undefined : (JSON.parse(raw) as BlobRecord);
  }

  /**
   * `durable`: the write is on the disk when this resolves (in a synced batch, see
   * #durable). A reference that a link is about to count on must
   * survive a power cut, or a later delete of another name could remove a blob that is
   * still linked; a reference dropped may be lost (an orphan for ft-recover, nothing more).
   */
  putBlob(digest: string, record: BlobRecord, durable = false): Promise<void> {
    const key = BLOB + digest;
    const value = JSON.stringify(record);
    if (durable) return this.#durable.submit(0, { type: 'put', key, value });
    return this.#write(() => this.db.put(key, value));
  }

  deleteBlob(digest: string): Promise<void> {
    return this.#write(() => this.db.del(BLOB + digest));
  }

  async getTombstone(name: string): Promise<number | undefined> {
    await this.#ensureOpen();
    const raw = await this.db.get(TOMBSTONE + name);
    return raw === undefined ? undefined : Number(raw);
  }

  /** Durable when it resolves: a tombstone lost to a power cut lets the migrator resurrect a name. */
  putTombstone(name: string, version: number): Promise<void> {
    return this.#durable.submit(0, { type: 'put', key: TOMBSTONE + name, value: String(version) });
  }

  deleteTombstone(name: string): Promise<void> {
    return this.#write(() => this.db.del(TOMBSTONE + name));
  }

  /**
   * A write that fails (a full disk) may leave a torn record at the end of LevelDB's log,
   * and LevelDB would then drop the records appended after it when the store is next
   * opened: acknowledged uploads would lose their records. So after a failed write the
   * database is reopened at once, which recovers the log and starts a fresh one. Writes
   * wait for a reopen in progress; if it fails (the disk is still full) the next write
   * tries again.
   */
  async #write(op: () => Promise<void>): Promise<void> {
    await this.#ensureOpen();
    try {
      await op();
    } catch (err) {
      if (this.#closing === undefined) await this.#reopen().catch(() => {});
      throw err;
    }
  }

  /** Waits for a reopen in progress; retries one that failed (its error if it fails again). */
  async #ensureOpen(): Promise<void> {
    await this.#reopening?.catch(() => {});
    if (this.#closing === undefined && this.db.status === 'closed') await this.#reopen();
  }

  #reopen(): Promise<void> {
    this.#reopening ??= (async () => {
      try {
        if (this.db.status === 'open') await this.db.close();
        await this.db.open();
      } finally {
        this.#reopening = undefined;
      }
    })();
    return this.#reopening;
  }

  /** Every blob record, in digest order (for ft-recover and tests). */
  async *blobs(): AsyncGenerator<[string, BlobRecord]> {
    for await (const [key, value] of this.db.iterator({ gte: BLOB, lt: 'b;' })) {
      yield [key.slice(BLOB.length), JSON.parse(value) as BlobRecord];
    }
  }

  /**
   * Every digest with a record, in order, from a snapshot taken when iteration starts (the
   * first `next()`).
   */
  async *blobDigests(): AsyncGenerator<string> {
    for await (const key of this.db.keys({ gte: BLOB, lt: 'b;' })) yield key.slice(BLOB.length);
  }

  /** Every tombstone, in name order. */
  async *tombstones(): AsyncGenerator<[string, number]> {
    for await (const [key, value] of this.db.iterator({ gte: TOMBSTONE, lt: 't;' })) {
      yield [key.slice(TOMBSTONE.length), Number(value)];
    }
  }

  /** Idempotent: every call returns the same promise. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#reopening?.catch(() => {});
      await forgetHolder(this.#location); // while the lock is still ours
      await this.db.close();
    })();
    return this.#closing;
  }
}
