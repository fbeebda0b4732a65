import type { Registry } from 'prom-client';
import type {
  BackendUnavailableError,
  StoreNotWritableError,
} from '@filetracker/shared-protocol/wire';
import type { BlobHandle, StageBody } from './blob-store.js';
import type { NameLookup, NameRecord } from './metadata-store.js';
import type { FileEntry } from './read-caches.js';
import type { StoreStats } from './store-metrics.js';

export type { FileEntry, NameLookup, NameRecord, StoreStats };

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
  /** Streamed, or whole in memory (see {@link StageBody}). */
  body: StageBody;
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
  /** The content was stored already (a dedup hit): no new blob was kept. */
  dedup: boolean;
  /**
   * The stored (gzip) size of the blob the name now points at, when `stored`: on a dedup
   * hit, the first upload's blob, from its record.
   */
  storedSize: number | undefined;
}

/** What a delete did: `found` is false when the name holds no file (absent, or a directory). */
export interface DeleteResult {
  deleted: boolean;
  found: boolean;
}

/**
 * Whether the store takes writes; when it does not, the 503 that says why (its code and
 * one-line reason, answered by /healthz as a write would meet it).
 */
export type StoreHealth =
  { ok: true } | { ok: false; error: StoreNotWritableError | BackendUnavailableError };

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

/** A writer's view of a name, under its lock (see {@link Store.withName}). */
export interface LockedName {
  /** What the name holds now. */
  existing: NameLookup;
  /** Deletes the name (it holds `held`); durable when it resolves, readers see it at once. */
  remove(held: NameRecord): Promise<void>;
  /** Records the name's tombstone at `version` (migration mode); durable when it resolves. */
  putTombstone(version: number): Promise<void>;
}

/**
 * The store as the HTTP layer sees it (DESIGN.md "Backends"): files under names, each name
 * at one version. It knows nothing of HTTP; errors it throws carry their status (a
 * FiletrackerError: 400, 409, 410, 413, 503, 507). Implemented over the two ports by
 * PortStore (store.ts); MeteredStore (store-metrics.ts) wraps it to count uploads, and in
 * migration mode MigrationMode (migration.ts) to keep tombstones.
 *
 * Contract:
 * - **Atomic per name.** A put or delete is one change of the name: a reader (`stat`,
 *   `openFile`, `peek`, `list`) sees the old file or the new one, whole, never a 404 in
 *   between and never a mix of two versions (invariant 2). Readers take no lock and never
 *   wait for a writer; writes of one name are serialized, writes of different names are not.
 * - **Versions.** A stored version newer than a request's wins: the put answers it (without
 *   reading the body when the newer version is known first; a small body may be read, and
 *   is then thrown away whatever it held), the delete keeps the name. An equal or older one
 *   is replaced.
 * - **Durable when answered.** Once `put` or `delete` resolves, the change survives a crash
 *   or power cut. A crash before may leave the old name or the new one (never a name
 *   without its content), and leftovers (an unnamed blob, a reference count too high) that
 *   the store clears at open or ft-recover repairs; never a count too low.
 * - **Verified.** Content is checked against the client's claims (checksum, logical size,
 *   `maxLogicalSize`) while it is read; a mismatch is a 4xx and nothing is stored
 *   (invariant 3). A failed put leaves the name as it was.
 * - **Refusing writes.** A store that cannot take writes (files that refuse us, directories
 *   removed, a full disk) throws the 503/507 at once; `health` says why.
 */
export interface Store {
  /** The store's identity (see store-id.ts): `/status` and `X-Filetracker-Store-Id`. */
  readonly storeId: string;
  /** Counters for `/status` and `/metrics`, read at scrape time (see store-metrics.ts). */
  readonly stats: StoreStats;
  /** The current entry of a name, or null when it holds no file (absent, or a directory). */
  stat(components: readonly string[]): Promise<FileEntry | null>;
  /**
   * The entry and whole gzip of a name when both are in memory, else undefined: the
   * synchronous read path for the small files judges fetch by the thousand.
   */
  peek(name: string): { entry: FileEntry; buffer: Buffer } | undefined;
  /**
   * False when names are not kept in memory (scale-out: any process may change any name),
   * so `peek` never answers; {@link peekLooked} then looks the name up first.
   */
  readonly namesInMemory: boolean;
  /**
   * The entry of a name, looked up as `stat` does, with its gzip when that is in memory;
   * else undefined: `peek` for a store that keeps no names in memory.
   */
  peekLooked(
    components: readonly string[],
  ): Promise<{ entry: FileEntry; buffer: Buffer } | undefined>;
  /** Opens a name's content for reading; null when it holds no file. */
  openFile(components: readonly string[]): Promise<OpenedFile | null>;
  /**
   * Stores a version of a name (DESIGN.md's write sequence). `admit`: migration mode's say,
   * asked under the name's lock (see {@link PutAdmission}).
   */
  put(req: PutRequest, admit?: PutAdmission): Promise<PutResult>;
  /** Deletes a name unless its stored version is newer. Empty directories stay (compat). */
  delete(components: readonly string[], version: number): Promise<DeleteResult>;
  /**
   * Runs `fn` under the name's write lock with what the name holds (a delete with a policy
   * of its own: migration mode's). A store that refuses writes throws its 503.
   */
  withName<T>(components: readonly string[], fn: (locked: LockedName) => Promise<T>): Promise<T>;
  /** The version a name was deleted at during an online migration, if it was. */
  tombstone(name: string): Promise<number | undefined>;
  /**
   * Every file under a directory with a version `<= cutoff`, relative to it, streamed (never
   * the whole listing in memory). A name that is not a directory is a 400 NOT_A_DIRECTORY.
   */
  list(components: readonly string[], cutoff: number): Promise<AsyncIterable<string>>;
  /** Whether the store can take writes now (for /healthz). */
  health(): Promise<StoreHealth>;
  /** Adds the store's own metrics, if it has any (the services it uses), to `/metrics`. */
  registerMetrics?(registry: Registry): void;
  /** Idempotent: every call returns the same promise. */
  close(): Promise<void>;
}

/**
 * Why a store cannot be opened: NEEDS_RECOVER (a Python store: ft-server), NOT_A_STORE (no
 * store there: ft-recover), LOCKED (in use), PERMISSION (its files refuse us: owner,
 * immutable flag, read-only mount), STORES_DISAGREE (a scale-out database and blob store
 * that are not one store's: ft-recover), OPEN_FAILED (anything else).
 */
export type StoreOpenErrorCode =
  'NEEDS_RECOVER' | 'NOT_A_STORE' | 'LOCKED' | 'PERMISSION' | 'STORES_DISAGREE' | 'OPEN_FAILED';

/**
 * The store cannot be opened, by ft-server, ft-recover or ft-migrate --into; `code` says
 * why, the one-line message what to do. The tools pass both on as their `CliError`.
 */
export class StoreOpenError extends Error {
  readonly code: StoreOpenErrorCode;
  constructor(code: StoreOpenErrorCode, message: string, cause?: unknown) {
    super(message, { cause });
    this.name = 'StoreOpenError';
    this.code = code;
  }
}
