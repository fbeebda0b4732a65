import type { BlobSizes, StagedBlob } from './blob-store.js';

/** What a name holds: which blob, and its version (seconds since the epoch). */
export interface NameRecord {
  digest: string;
  version: number;
}

/**
 * A name looked up: its record, `absent` (no such name), or `directory` (other names lie
 * under it, so it cannot hold a file itself). There is no null: each case is said.
 */
export type NameLookup = NameRecord | 'absent' | 'directory';

/**
 * A name looked up with its blob's sizes, as a reader needs it: `sizes` undefined when the
 * blob has no record (the reader then reads them off the blob, or looks again).
 */
export type SizedLookup = (NameRecord & { sizes: BlobSizes | undefined }) | 'absent' | 'directory';

/** What the metadata store records per blob. */
export interface BlobRecord extends BlobSizes {
  /** Number of names pointing at the blob. */
  refs: number;
}

/** A record's sizes alone (what a reader answers with). */
export const sizesOf = (record: BlobRecord): BlobSizes => ({
  logicalSize: record.logicalSize,
  storedSize: record.storedSize,
});

/** A name's change to a new blob and version, made by {@link MetadataStore.commit}. */
export interface NameChange {
  components: readonly string[];
  /** The staged body; its `location` is undefined when it was only verified (pinned). */
  blob: StagedBlob;
  version: number;
  /** What the name held when the writer looked, under the name's lock. */
  previous: NameLookup;
  /** Clear the name's tombstone in the same change (migration mode's newer PUT). */
  clearTombstone: boolean;
}

export interface CommitResult {
  /** The blob was stored already: the staged copy was dropped, a reference added. */
  dedup: boolean;
  /**
   * The sizes of the blob the name now points at (a dedup hit keeps the first upload's
   * gzip, whose size is not this body's); undefined when the name kept its blob and that
   * blob has no record (the caller reads the sizes off the blob).
   */
  sizes: BlobSizes | undefined;
}

/** Told of changes a metrics exporter counts (see StoreMetrics). */
export interface MetadataEvents {
  /** A blob got its first reference (+1) or lost its last one and went (-1). */
  blobCountChanged(delta: 1 | -1, storedSize: number): void;
  tombstoneCountChanged(delta: 1 | -1): void;
}

/**
 * The metadata port: name -> (digest, version), reference counts per blob, tombstones, the
 * per-name write serialization, and listing. It drives the {@link BlobStore} it was made
 * with for the two blob steps that must be ordered with its own: a staged blob is committed
 * before any name points at it, and a blob goes only when no name does.
 *
 * Contract (test/contract/metadata-store.ts checks it for every implementation):
 * - **Readers** (`read`, `blob`, `list`, `isDirectory`) take no lock and never wait for a
 *   writer. A read sees each change whole: a name's old record or its new one, never
 *   neither (no `absent` while a name is replaced: DESIGN.md invariant 2).
 * - **withName** serializes writes per name: two `withName` of one name never overlap;
 *   different names run concurrently. Locally a keyed mutex; in a shared database, the
 *   name's row lock held by the transaction that makes the change.
 * - **commit** (under the name's lock) is one change: the blob staged is committed (unless
 *   stored already: a dedup, whose reference revives a blob about to go), the name points at
 *   it with the version, its reference is added and the previous blob's dropped, and the
 *   tombstone cleared when asked. Once it resolves the name and the added reference are
 *   durable (in a shared database: once the `withName` it runs in resolves, as its
 *   transaction commits; the caller answers only after that). A crash before leaves the old name, or the new one with its blob (never a name
 *   without its blob); it may leave a reference count too high or an unnamed blob, which
 *   repair (ft-recover) or a sweep fixes, never too low. A failure leaves the name as it was.
 *   A name in the way (a directory, or a parent that is a file) is a ConflictError (409).
 * - **remove** (under the name's lock) deletes a name and drops its reference; the blob goes
 *   with its last reference unless pinned (in a shared database, by a sweep a grace period
 *   later, which a dedup meanwhile cancels). Durable when it resolves.
 * - **pin** holds a stored blob (returns its record) until **unpin**, so that a body verified
 *   against it, rather than staged, can still be committed; undefined when not stored. (In
 *   a shared database a pin restarts the grace period, and unpin does nothing.)
 * - **Tombstones** (migration mode): `putTombstone` is durable when it resolves.
 * - **list** streams the names under a directory with a version `<= cutoff`, relative to it,
 *   one per line; never the whole listing in memory.
 */
export interface MetadataStore {
  /** Refuses (BadRequestError), before anything is written, a name the store cannot hold. */
  checkStorable(components: readonly string[]): void;
  read(components: readonly string[]): Promise<NameLookup>;
  blob(digest: string): Promise<BlobRecord | undefined>;
  /**
   * `read` and then the sizes of the blob found, for readers (a GET's look): in a shared
   * database one statement, batched with the other readers' looks (pg-metadata-store.ts).
   * Like `read`, it sees a change whole, and it sees every change committed before it was
   * called.
   */
  entry(components: readonly string[]): Promise<SizedLookup>;
  withName<T>(name: string, fn: () => Promise<T>): Promise<T>;
  pin(digest: string): Promise<BlobRecord | undefined>;
  unpin(digest: string): Promise<void>;
  commit(change: NameChange): Promise<CommitResult>;
  remove(components: readonly string[], previous: NameRecord): Promise<void>;
  tombstone(name: string): Promise<number | undefined>;
  putTombstone(name: string, version: number): Promise<void>;
  deleteTombstone(name: string): Promise<void>;
  tombstones(): AsyncIterable<[string, number]>;
  /** Every blob record (start-up totals, repair). */
  blobs(): AsyncIterable<[string, BlobRecord]>;
  isDirectory(components: readonly string[]): Promise<boolean>;
  list(components: readonly string[], cutoff: number): AsyncIterable<string>;
  /** Whether writes can be taken (the database is open); the reason when not. */
  readonly isOpen: boolean;
  /** Idempotent: every call returns the same promise. */
  close(): Promise<void>;
}
