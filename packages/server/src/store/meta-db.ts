import { ClassicLevel } from 'classic-level';
import { GroupCommit } from './group-commit.js';
import { forgetHolder, lockHolder, recordHolder } from './lock-holder.js';
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
function isLevelLocked(err: unknown): boolean {
  const e = err as { code?: string; cause?: { code?: string } } | undefined;
  return (e?.cause?.code ?? e?.code) === 'LEVEL_LOCKED';
}

/**
 * One key space of the database: its keys are `<letter>:<key>`. `;` follows `:` in byte
 * order, which bounds the space's range whatever the key. (classic-level's `sublevel()`
 * would spell the prefix `!b!`: another on-disk layout.)
 */
class KeySpace {
  readonly #prefix: string;
  /** Every key of the space, as iterator options. */
  readonly range: { gte: string; lt: string };

  constructor(letter: string) {
    this.#prefix = `${letter}:`;
    this.range = { gte: `${letter}:`, lt: `${letter};` };
  }

  key(key: string): string {
    return this.#prefix + key;
  }

  unkey(stored: string): string {
    return stored.slice(this.#prefix.length);
  }
}

// Every key space of meta/, each written only through MetaDb's methods below.
/** digest -> its BlobRecord as JSON. */
const BLOB = new KeySpace('b');
/** name -> the legacy version it was deleted at (online migration), as a decimal string. */
const TOMBSTONE = new KeySpace('t');
/**
 * path under `links/` -> '1': the path is the result of ft-recover's rename of a
 * double-encoded name. Only in the database of an adoption in progress (see rename-names.ts),
 * cleared before it is put in place as `meta/`.
 */
const RENAMED = new KeySpace('a');

/**
 * The classic-level database under `meta/`: refcount and sizes per digest, and tombstones
 * (name -> legacy version) for online migration. Its LOCK file makes one process the
 * owner of a store (DESIGN.md invariant 5). Its key spaces are the three above, and only
 * these methods write them (`db` is there for tests to read it raw).
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
  /**
   * No tombstone in the database: found at open (one key read) and true until the first
   * is put. Every PUT that migration mode or `ft-migrate --into` admits asks for its name's
   * tombstone, a LevelDB read through the thread pool each (2.6% of `ft-migrate --into`'s
   * profile on small files, issue 15), and a store never in migration mode has none. Exact, as this process alone writes the database (invariant 5).
   */
  #noTombstones: boolean;

  private constructor(db: ClassicLevel<string, string>, location: string, noTombstones: boolean) {
    this.db = db;
    this.#location = location;
    this.#noTombstones = noTombstones;
  }

  /**
   * Opens (creating if new) the database at `location`: its LOCK file makes this process
   * the owner of the store (invariant 5), and this process's PID is written beside it
   * (lock-holder.ts), so that another process refused by the lock can name the holder.
   * When another process holds it, rejects with `whenLocked(err, pid)` (the holder's PID
   * when known) if given, else with LevelDB's error ({@link isLevelLocked}).
   */
  static async open(
    location: string,
    whenLocked?: (err: unknown, pid: number | undefined) => Error,
  ): Promise<MetaDb> {
    const db = new ClassicLevel<string, string>(location, { valueEncoding: 'utf8' });
    try {
      await db.open();
    } catch (err) {
      throw whenLocked && isLevelLocked(err) ? whenLocked(err, await lockHolder(location)) : err;
    }
    await recordHolder(location);
    const tombstone = await db.keys({ ...TOMBSTONE.range, limit: 1 }).all();
    return new MetaDb(db, location, tombstone.length === 0);
  }

  get isOpen(): boolean {
    return this.db.status === 'open';
  }

  async getBlob(digest: string): Promise<BlobRecord | undefined> {
    await this.#ensureOpen();
    const raw = await this.db.get(BLOB.key(digest));
    return raw === undefined ? undefined : (JSON.parse(raw) as BlobRecord);
  }

  /**
   * `durable`: the write is on the disk when this resolves (in a synced batch, see
   * #durable). A reference that a link is about to count on must
   * survive a power cut, or a later delete of another name could remove a blob that is
   * still linked; a reference dropped may be lost (an orphan for ft-recover, nothing more).
   */
  putBlob(digest: string, record: BlobRecord, durable = false): Promise<void> {
    const key = BLOB.key(digest);
    const value = JSON.stringify(record);
    if (durable) return this.#durable.submit(0, { type: 'put', key, value });
    return this.#write(() => this.db.put(key, value));
  }

  deleteBlob(digest: string): Promise<void> {
    return this.#write(() => this.db.del(BLOB.key(digest)));
  }

  async getTombstone(name: string): Promise<number | undefined> {
    if (this.#noTombstones) return undefined;
    await this.#ensureOpen();
    const raw = await this.db.get(TOMBSTONE.key(name));
    return raw === undefined ? undefined : Number(raw);
  }

  /** Durable when it resolves: a tombstone lost to a power cut lets the migrator resurrect a name. */
  putTombstone(name: string, version: number): Promise<void> {
    // Before the write: a read meanwhile asks the database, which has it or will.
    this.#noTombstones = false;
    return this.#durable.submit(0, {
      type: 'put',
      key: TOMBSTONE.key(name),
      value: String(version),
    });
  }

  deleteTombstone(name: string): Promise<void> {
    return this.#write(() => this.db.del(TOMBSTONE.key(name)));
  }

  /** Notes that `relative` (under `links/`) was renamed by an adoption (see {@link RENAMED}). */
  markRenamed(relative: string): Promise<void> {
    return this.#write(() => this.db.put(RENAMED.key(relative), '1'));
  }

  async wasRenamed(relative: string): Promise<boolean> {
    await this.#ensureOpen();
    return (await this.db.get(RENAMED.key(relative))) !== undefined;
  }

  /** Drops every rename mark: the adoption is complete. */
  clearRenameMarks(): Promise<void> {
    return this.#write(() => this.db.clear(RENAMED.range));
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
    for await (const [key, value] of this.db.iterator(BLOB.range)) {
      yield [BLOB.unkey(key), JSON.parse(value) as BlobRecord];
    }
  }

  /**
   * Every digest with a record, in order, from a snapshot taken when iteration starts (the
   * first `next()`).
   */
  async *blobDigests(): AsyncGenerator<string> {
    for await (const key of this.db.keys(BLOB.range)) yield BLOB.unkey(key);
  }

  /** Every tombstone, in name order. */
  async *tombstones(): AsyncGenerator<[string, number]> {
    for await (const [key, value] of this.db.iterator(TOMBSTONE.range)) {
      yield [TOMBSTONE.unkey(key), Number(value)];
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
