import { ClassicLevel } from 'classic-level';

/** What `meta/` records per blob. */
export interface BlobRecord {
  /** Number of links pointing at the blob. */
  refs: number;
  /** Uncompressed size in bytes. */
  logicalSize: number;
  /** Size of the gzip file in `blobs/`. */
  storedSize: number;
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

  private constructor(db: ClassicLevel<string, string>) {
    this.db = db;
  }

  static async open(location: string): Promise<MetaDb> {
    const db = new ClassicLevel<string, string>(location, { valueEncoding: 'utf8' });
    await db.open();
    return new MetaDb(db);
  }

  get isOpen(): boolean {
    return this.db.status === 'open';
  }

  async getBlob(digest: string): Promise<BlobRecord | undefined> {
    const raw = await this.db.get(BLOB + digest);
    return raw === undefined ? undefined : (JSON.parse(raw) as BlobRecord);
  }

  async putBlob(digest: string, record: BlobRecord): Promise<void> {
    await this.db.put(BLOB + digest, JSON.stringify(record));
  }

  async deleteBlob(digest: string): Promise<void> {
    await this.db.del(BLOB + digest);
  }

  async getTombstone(name: string): Promise<number | undefined> {
    const raw = await this.db.get(TOMBSTONE + name);
    return raw === undefined ? undefined : Number(raw);
  }

  async putTombstone(name: string, version: number): Promise<void> {
    await this.db.put(TOMBSTONE + name, String(version));
  }

  async deleteTombstone(name: string): Promise<void> {
    await this.db.del(TOMBSTONE + name);
  }

  /** Every blob record, in digest order (for ft-recover and tests). */
  async *blobs(): AsyncGenerator<[string, BlobRecord]> {
    for await (const [key, value] of this.db.iterator({ gte: BLOB, lt: 'b;' })) {
      yield [key.slice(BLOB.length), JSON.parse(value) as BlobRecord];
    }
  }

  /** Every tombstone, in name order. */
  async *tombstones(): AsyncGenerator<[string, number]> {
    for await (const [key, value] of this.db.iterator({ gte: TOMBSTONE, lt: 't;' })) {
      yield [key.slice(TOMBSTONE.length), Number(value)];
    }
  }

  /** Idempotent: every call returns the same promise. */
  close(): Promise<void> {
    this.#closing ??= this.db.close();
    return this.#closing;
  }
}
