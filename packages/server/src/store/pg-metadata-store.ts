import { AsyncLocalStorage } from 'node:async_hooks';
import pg from 'pg';
import {
  BackendUnavailableError,
  BadRequestError,
  ConflictError,
  joinName,
} from '@filetracker/shared-protocol';
import type { BlobStore } from './blob-store.js';
import type { DbErrorKind, EngineMetrics } from './engine-metrics.js';
import type {
  BlobRecord,
  CommitResult,
  MetadataEvents,
  MetadataStore,
  NameChange,
  NameLookup,
  NameRecord,
  SizedLookup,
} from './metadata-store.js';
import { LookupBatcher } from './pg-lookups.js';
import { migrate } from './pg-schema.js';

/** Limits the names table's btree can hold (an index entry is at most ~2.7 kB). */
const NAME_MAX = 255;
const WHOLE_NAME_MAX = 2000;
/** Rows per round trip of a listing (keyset paging, see {@link PgMetadataStore.list}). */
const PAGE_ROWS = 1000;

export interface PgMetadataOptions {
  /** postgres://USER@HOST:PORT/DB (credentials also from the standard PG* variables). */
  url: string;
  /** The blob store whose blobs the names point at. */
  blobs: BlobStore;
  /** Connections at most (a bounded pool: each waiting request costs no connection). */
  poolSize?: number | undefined;
  /** How long to wait for a connection, a row lock or a statement before a 503. */
  timeoutMs?: number | undefined;
  events?: MetadataEvents | undefined;
  /** Times each statement, counts the failures, watches the pool. */
  metrics?: EngineMetrics | undefined;
  /** Told of connection errors outside any request (a log line for the operator). */
  warn?: ((details: Record<string, unknown>, message: string) => void) | undefined;
}

/**
 * SQLSTATE classes and codes that mean "the database is not there (now)", not a bug; 25006:
 * it takes no writes (a standby, or `default_transaction_read_only` set by an operator).
 */
const UNAVAILABLE_STATES = /^(08|53|57P|58)|^(55P03|57014|40001|40P01|25006)$/;

/** The client's own timeouts: no answer in time (a hung server or network). */
const CLIENT_TIMEOUT =
  /Query read timeout|timeout exceeded when trying to connect|connection timeout/;

/**
 * Whether `err` says the connection itself failed (refused, lost, or silent past the
 * client's timeout): the connection is dropped, not asked for a ROLLBACK.
 */
function isConnectionFailure(err: unknown): boolean {
  if (typeof err !== 'object' || err === null || err instanceof pg.DatabaseError) return false;
  const e = err as { code?: string; message?: string };
  if (typeof e.code === 'string' && /^E[A-Z]+$/.test(e.code)) return true; // ECONNREFUSED...
  return /Connection terminated|Client has encountered a connection error|Query read timeout|timeout exceeded when trying to connect/.test(
    e.message ?? '',
  );
}

/**
 * What a log line says of a lost connection: pg hangs the whole client (its parameters,
 * sockets and queues) on the error, which would make one warning tens of kilobytes.
 */
export function connectionLoss(err: unknown): { message: string; code?: string } {
  const message = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? { message, code } : { message };
}

/** Whether `err` says the database is down, slow or refusing: a 503, not a 500. */
function isUnavailable(err: unknown): boolean {
  const e = err as { code?: string };
  if (typeof e.code === 'string' && UNAVAILABLE_STATES.test(e.code)) return true;
  return isConnectionFailure(err);
}

/** What kind of database failure `err` is, for the metrics; undefined when it is none. */
function failureKind(err: unknown): DbErrorKind | undefined {
  if (err instanceof pg.DatabaseError) {
    if (err.code === '57014' || err.code === '55P03') return 'timeout';
    if (err.code === '40001' || err.code === '40P01') return 'conflict';
    return UNAVAILABLE_STATES.test(err.code ?? '') ? 'unavailable' : 'query';
  }
  if (!isConnectionFailure(err)) return undefined;
  return CLIENT_TIMEOUT.test((err as Error).message ?? '') ? 'timeout' : 'unavailable';
}

/** The transaction of the {@link PgMetadataStore.withName} a call runs in. */
interface NameTransaction {
  client: pg.PoolClient;
  name: string;
  /**
   * This transaction's uncommitted placeholder row of `name` is still there (lockName
   * inserted it and no commit has made it a file): withName deletes it before the commit.
   */
  placeholder: boolean;
  /** Set once the transaction has ended: late calls from its context use the pool. */
  ended: boolean;
  /**
   * A statement on this connection failed because of the connection itself (lost, or
   * silent past the read timeout): it is dropped, not asked to roll back. Only its own
   * statements set this: a failure of the object store inside the transaction leaves a
   * healthy connection to roll back and keep.
   */
  lost: boolean;
}

type NameRow = { kind: 'f' | 'd' | 'p'; digest: string | null; version: string | null };
type BlobRow = { refs: string; logical_size: string; stored_size: string };
type EntryRow = NameRow & { name: string; logical_size: string | null; stored_size: string | null };

/**
 * The readers' look (see {@link LookupBatcher}): names with their blobs' sizes, one index
 * scan per name, in one statement prepared once per connection.
 */
const ENTRIES = {
  name: 'ft_entries',
  text: `SELECT n.name, n.kind, n.digest, n.version, b.logical_size, b.stored_size
         FROM names n LEFT JOIN blobs b ON b.digest = n.digest
         WHERE n.name = ANY($1::text[])`,
};

/**
 * A writer's directories (see PgMetadataStore.#makeParents): inserts the rows of the
 * ancestors `$1` (root first) that are missing, and returns those it inserted with the
 * others and `$2`'s own row, read FOR SHARE. One snapshot serves the whole statement, so a
 * row comes back once: from the insert or from the read, never both.
 */
const PARENTS = {
  name: 'ft_parents',
  text: `WITH made AS (
           INSERT INTO names (name, kind)
           SELECT dir, 'd' FROM unnest($1::text[]) WITH ORDINALITY AS wanted (dir, i) ORDER BY i
           ON CONFLICT (name) DO NOTHING
           RETURNING name, kind)
         SELECT name, kind FROM made
         UNION ALL
         SELECT name, kind FROM (
           SELECT name, kind FROM names WHERE name = ANY($1::text[] || $2::text) FOR SHARE
         ) AS held`,
};

function entryOf(row: EntryRow): SizedLookup {
  if (row.kind === 'p') return 'absent';
  if (row.kind === 'd') return 'directory';
  const sizes =
    row.logical_size === null || row.stored_size === null
      ? undefined
      : { logicalSize: Number(row.logical_size), storedSize: Number(row.stored_size) };
  return { digest: row.digest!, version: Number(row.version), sizes };
}

const toRecord = (row: BlobRow): BlobRecord => ({
  refs: Number(row.refs),
  logicalSize: Number(row.logical_size),
  storedSize: Number(row.stored_size),
});

const nameOf = (components: readonly string[]): string => joinName(components);

/** The ancestors of a name, outermost first: `/a/b/c` -> `/a`, `/a/b`. */
function ancestors(name: string): string[] {
  const out: string[] = [];
  for (let i = name.indexOf('/', 1); i > 0; i = name.indexOf('/', i + 1))
    out.push(name.slice(0, i));
  return out;
}

/** The key range of the names under a directory (its name, or '' for the root). */
function childRange(dir: string): [string, string] {
  // '0' follows '/' in byte order (the names' collation is "C").
  return [`${dir}/`, `${dir}0`];
}

/**
 * The {@link MetadataStore} in PostgreSQL, shared by any number of ft-server processes.
 *
 * - **names**: one row per file (`f`: digest, version) and per directory (`d`: a parent of
 *   some name; kept when emptied, as `links/` keeps directories). A name whose row is a
 *   directory, or with an ancestor that is a file, is a ConflictError; a reader sees a
 *   name's committed row, so never `absent` while it is replaced (the row is updated in
 *   place by one transaction).
 * - **withName** is one transaction holding the name's row lock for the whole of `fn`;
 *   `read`, `commit`, `remove` and the tombstone calls made inside `fn` run in it (found
 *   through an AsyncLocalStorage), so the change is made under the lock and is durable when
 *   `withName` resolves (the transaction commits). For a name that exists the lock is
 *   `SELECT ... FOR UPDATE` on its row. For a name that does not, there is no row to lock:
 *   the transaction inserts a placeholder row (`p`). A second writer's insert of the same
 *   key waits on the first's uncommitted one (the primary key's uniqueness check), so the
 *   two serialize exactly as on an existing row; readers never see the placeholder (it is
 *   never committed: deleted before the commit, or gone with a rollback). When the waited-on
 *   transaction committed a row, the second finds it and locks it; when it deleted the row
 *   it had locked (a remove), the second inserts again. No polling, no advisory lock.
 * - **commit** runs the blob steps under the digest's row lock (`FOR UPDATE`): an existing
 *   record is a dedup whose reference revives a blob at refcount 0; a new one has its
 *   record inserted, then its staged blob committed to the BlobStore, in one transaction
 *   (the uncommitted record holds the digest against an orphan sweep, {@link sweepOrphan}). The previous
 *   blob's reference is dropped in the same transaction; a blob at refcount 0 stays until
 *   the sweeper removes it a grace period later ({@link sweep}), so a concurrent dedup
 *   (a pin) in any process can still take it.
 * - **pin** is, across processes, a refresh of the grace period of a blob at refcount 0:
 *   a body verified against it must be committed within the grace period.
 */
export class PgMetadataStore implements MetadataStore {
  readonly pool: pg.Pool;
  readonly #blobs: BlobStore;
  readonly #events: MetadataEvents | undefined;
  readonly #metrics: EngineMetrics | undefined;
  readonly #tx = new AsyncLocalStorage<NameTransaction>();
  #closing: Promise<void> | undefined;
  /** Readers' looks outside a transaction, batched into shared statements. */
  readonly #lookups = new LookupBatcher<SizedLookup>((names) => this.#entries(names), 'absent', {
    isOutage: (err) => err instanceof BackendUnavailableError,
  });
  /** The last failure to reach the database, until a query succeeds. */
  #down: string | undefined;

  private constructor(pool: pg.Pool, options: PgMetadataOptions) {
    this.pool = pool;
    this.#blobs = options.blobs;
    this.#events = options.events;
    this.#metrics = options.metrics;
  }

  /**
   * Connects, and creates or migrates the schema (one transaction, one process at a time).
   *
   * Every wait is bounded by `timeoutMs` (10 s): a connection (or a free one of the pool's
   * `poolSize`), a row lock and a statement (the server's timeouts), and, for a server or
   * network that has gone silent, the client's own read timeout 2 s later (the server's
   * cleaner error comes first when it can answer). A request meets a database that is down
   * or silent with a 503 after at most about 12 s, never a hang.
   */
  static async open(options: PgMetadataOptions): Promise<PgMetadataStore> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const metrics = options.metrics;
    const pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize ?? 16,
      connectionTimeoutMillis: timeoutMs,
      statement_timeout: timeoutMs,
      lock_timeout: timeoutMs,
      query_timeout: timeoutMs + 2_000,
      ...(metrics !== undefined && { Client: timedClient(metrics) }),
      // A writer that hangs inside withName must not hold its row lock forever.
      idle_in_transaction_session_timeout: 6 * timeoutMs,
      application_name: 'ft-server',
    });
    metrics?.watchDbPool(pool);
    const warn = options.warn ?? (() => {});
    // An idle connection dropped by the server (a restart) must not crash the process.
    pool.on('error', (err) =>
      warn({ err: connectionLoss(err) }, 'database connection lost (it is replaced on demand)'),
    );
    try {
      const client = await pool.connect();
      try {
        await migrate(client);
      } finally {
        client.release();
      }
    } catch (err) {
      await pool.end().catch(() => {});
      throw err;
    }
    return new PgMetadataStore(pool, options);
  }

  get isOpen(): boolean {
    return this.#closing === undefined && this.#down === undefined;
  }

  /** Why the database is taken as down (its last error), or undefined. */
  get downReason(): string | undefined {
    return this.#down;
  }

  /** The store's identity, made with the schema: the same for every process on the database. */
  async storeId(): Promise<string> {
    const [row] = await this.#query<{ id: string }>('SELECT id FROM ft_store');
    if (!row) throw new Error('the database has no store identity (ft_store is empty)');
    return row.id;
  }

  /**
   * One round trip to the database (for /healthz): resolves when it answers, else throws
   * the BackendUnavailableError saying why. A success clears {@link downReason}.
   */
  async ping(): Promise<void> {
    await this.#query('SELECT 1');
  }

  /**
   * A query on the transaction of the withName we run in, else on a pooled connection.
   * `text` with a name: a statement prepared once per connection.
   */
  async #query<R extends pg.QueryResultRow>(
    text: string | { name: string; text: string },
    values: unknown[] = [],
  ): Promise<R[]> {
    const tx = this.#tx.getStore();
    const query = typeof text === 'string' ? { text, values } : { ...text, values };
    const onTx = tx !== undefined && !tx.ended;
    try {
      const result = onTx ? await tx.client.query<R>(query) : await this.pool.query<R>(query);
      this.#down = undefined;
      return result.rows;
    } catch (err) {
      if (onTx && isConnectionFailure(err)) tx.lost = true;
      throw this.#failure(err);
    }
  }

  /** `err` as a 503 when the database is unreachable or refusing, else as it is. */
  #failure(err: unknown): unknown {
    const kind = failureKind(err);
    if (kind !== undefined) this.#metrics?.dbError(kind);
    if (!isUnavailable(err)) return err;
    const code = (err as { code?: string }).code ?? 'connection';
    this.#down = `database unavailable (${code})`;
    return new BackendUnavailableError(this.#down, err);
  }

  #transaction(what: string): NameTransaction {
    const tx = this.#tx.getStore();
    if (!tx || tx.ended) throw new TypeError(`${what} must run inside withName`);
    return tx;
  }

  checkStorable(components: readonly string[]): void {
    if (components.some((c) => Buffer.byteLength(c) > NAME_MAX)) {
      throw new BadRequestError('BAD_PATH', `A name component is longer than ${NAME_MAX} bytes`);
    }
    if (Buffer.byteLength(nameOf(components)) > WHOLE_NAME_MAX) {
      throw new BadRequestError('BAD_PATH', 'The name is too long');
    }
  }

  async read(components: readonly string[]): Promise<NameLookup> {
    const [row] = await this.#query<NameRow>(
      'SELECT kind, digest, version FROM names WHERE name = $1',
      [nameOf(components)],
    );
    if (!row || row.kind === 'p') return 'absent';
    if (row.kind === 'd') return 'directory';
    return { digest: row.digest!, version: Number(row.version) };
  }

  async blob(digest: string): Promise<BlobRecord | undefined> {
    const [row] = await this.#query<BlobRow>(
      'SELECT refs, logical_size, stored_size FROM blobs WHERE digest = $1',
      [digest],
    );
    return row && toRecord(row);
  }

  async entry(components: readonly string[]): Promise<SizedLookup> {
    const name = nameOf(components);
    const tx = this.#tx.getStore();
    // Inside a writer's transaction: on it (its own changes, under its locks).
    if (tx && !tx.ended) return (await this.#entries([name])).get(name) ?? 'absent';
    return this.#lookups.get(name);
  }

  async #entries(names: string[]): Promise<Map<string, SizedLookup>> {
    this.#metrics?.nameLookups(names.length);
    const rows = await this.#query<EntryRow>(ENTRIES, [names]);
    return new Map(rows.map((row) => [row.name, entryOf(row)]));
  }

  async withName<T>(name: string, fn: () => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw this.#failure(err);
    }
    const tx: NameTransaction = { client, name, placeholder: false, ended: false, lost: false };
    /** One of withName's own statements; a connection failure marks the connection lost. */
    const own = async <T>(statement: Promise<T>): Promise<T> => {
      try {
        return await statement;
      } catch (err) {
        if (isConnectionFailure(err)) tx.lost = true;
        throw err;
      }
    };
    let broken: unknown;
    try {
      await own(client.query('BEGIN'));
      tx.placeholder = await own(lockName(client, name));
      const result = await this.#tx.run(tx, fn);
      // A placeholder left by a writer that changed nothing is never committed.
      if (tx.placeholder) {
        await own(client.query(`DELETE FROM names WHERE name = $1 AND kind = 'p'`, [name]));
      }
      await own(client.query('COMMIT'));
      this.#down = undefined;
      return result;
    } catch (err) {
      // A lost or silent connection is dropped (the server rolls back), not asked again:
      // a ROLLBACK queued behind a hung statement would double the wait.
      if (tx.lost) broken = err;
      else await client.query('ROLLBACK').catch((rollbackErr: unknown) => (broken = rollbackErr));
      throw this.#failure(err);
    } finally {
      tx.ended = true;
      client.release(broken instanceof Error ? broken : undefined);
    }
  }

  async pin(digest: string): Promise<BlobRecord | undefined> {
    // Restarts the grace period of a blob at refcount 0: the sweeper leaves it that long.
    const [row] = await this.#query<BlobRow>(
      `UPDATE blobs SET zero_since = CASE WHEN refs = 0 THEN now() ELSE zero_since END
       WHERE digest = $1 RETURNING refs, logical_size, stored_size`,
      [digest],
    );
    if (!row || !(await this.#blobs.has(digest))) return undefined;
    return toRecord(row);
  }

  async unpin(): Promise<void> {
    // Nothing to release: a pin is a grace period, not a count (see the class comment).
  }

  async commit(change: NameChange): Promise<CommitResult> {
    const tx = this.#transaction('commit');
    const name = nameOf(change.components);
    if (name !== tx.name) throw new TypeError(`commit of ${name} inside withName(${tx.name})`);
    await this.#makeParents(name);
    const { blob } = change;
    const held = typeof change.previous === 'object' ? change.previous : undefined;
    const sameBlob = held?.digest === blob.digest;
    // Under the digest's row lock: a sweep of this digest has finished or not begun.
    const [existing] = await this.#query<BlobRow>(
      'SELECT refs, logical_size, stored_size FROM blobs WHERE digest = $1 FOR UPDATE',
      [blob.digest],
    );
    if (existing) {
      if (blob.location !== undefined) {
        // A record may outlive its blob (removed by hand): this body replaces it.
        if (await this.#blobs.has(blob.digest)) await this.#blobs.discard(blob);
        else await this.#blobs.commit(blob);
      }
    } else if (blob.location === undefined) {
      throw new BackendUnavailableError('a blob went while this upload ran: retry');
    }
    let sizes: BlobRecord;
    if (sameBlob && existing) {
      sizes = toRecord(existing);
    } else {
      const [row] = await this.#query<BlobRow>(
        `INSERT INTO blobs (digest, refs, logical_size, stored_size) VALUES ($1, 1, $2, $3)
         ON CONFLICT (digest) DO UPDATE SET refs = blobs.refs + 1, zero_since = NULL
         RETURNING refs, logical_size, stored_size`,
        [blob.digest, blob.logicalSize, blob.storedSize],
      );
      sizes = toRecord(row!);
    }
    if (!existing) {
      // The record first, then the blob: from its insert on, this transaction holds the
      // digest's key, so an orphan sweep of the digest (sweepOrphan) waits for it and then
      // finds the record. Committed the other way round, the sweeper could take the new
      // blob for an orphan between the copy and the insert, and delete it.
      await this.#blobs.commit(blob);
      this.#events?.blobCountChanged(1, blob.storedSize);
    }
    await this.#query(`UPDATE names SET kind = 'f', digest = $2, version = $3 WHERE name = $1`, [
      name,
      blob.digest,
      change.version,
    ]);
    tx.placeholder = false;
    if (held !== undefined && !sameBlob) await this.#release(held.digest);
    if (change.clearTombstone) await this.#query('DELETE FROM tombstones WHERE name = $1', [name]);
    return { dedup: existing !== undefined && !sameBlob, sizes };
  }

  /**
   * Makes the directory rows of `name`'s ancestors; a ConflictError when one is a file or
   * `name` itself is a directory. One statement (not two per ancestor, as a loop of
   * insert-then-lock would be) inserts the missing ones and reads the others FOR SHARE, so
   * a concurrent change of such a row (a file written or removed there) is waited for; an
   * insert waits for an uncommitted placeholder of the same name. `name`'s own row is locked
   * already (withName): it is only read. Rows the statement's snapshot cannot see (inserted
   * by a transaction that committed after it began) or that went while it waited (a file
   * removed) come back missing: the statement runs again, with a fresh snapshot, and an
   * ancestor's row inserted by an earlier run is this transaction's own and is seen then.
   */
  async #makeParents(name: string): Promise<void> {
    const dirs = ancestors(name);
    for (let attempt = 0; ; attempt++) {
      const rows = await this.#query<{ name: string; kind: NameRow['kind'] }>(PARENTS, [
        dirs,
        name,
      ]);
      const kinds = new Map(rows.map((row) => [row.name, row.kind]));
      if (kinds.get(name) === 'd') throw new ConflictError('This name is a directory');
      if (dirs.some((dir) => kinds.get(dir) === 'f')) {
        throw new ConflictError('A parent of this name is a file');
      }
      if (dirs.every((dir) => kinds.get(dir) === 'd')) return;
      // Removed, or committed, while the statement ran: again.
      if (attempt >= 10)
        throw new Error(`cannot make the directories of ${name}: they keep changing`);
    }
  }

  /** Drops a reference; at 0 the blob waits for the sweeper (see {@link sweep}). */
  async #release(digest: string): Promise<void> {
    await this.#query(
      `UPDATE blobs SET refs = greatest(refs - 1, 0),
         zero_since = CASE WHEN refs <= 1 THEN now() ELSE NULL END
       WHERE digest = $1`,
      [digest],
    );
  }

  async remove(components: readonly string[], previous: NameRecord): Promise<void> {
    this.#transaction('remove');
    await this.#query(`DELETE FROM names WHERE name = $1 AND kind = 'f'`, [nameOf(components)]);
    await this.#release(previous.digest);
  }

  async tombstone(name: string): Promise<number | undefined> {
    const [row] = await this.#query<{ version: string }>(
      'SELECT version FROM tombstones WHERE name = $1',
      [name],
    );
    return row ? Number(row.version) : undefined;
  }

  async putTombstone(name: string, version: number): Promise<void> {
    const rows = await this.#query<{ inserted: boolean }>(
      `INSERT INTO tombstones (name, version) VALUES ($1, $2)
       ON CONFLICT (name) DO UPDATE SET version = excluded.version
       RETURNING (xmax = 0) AS inserted`,
      [name, version],
    );
    if (rows[0]?.inserted) this.#events?.tombstoneCountChanged(1);
  }

  async deleteTombstone(name: string): Promise<void> {
    const rows = await this.#query('DELETE FROM tombstones WHERE name = $1 RETURNING name', [name]);
    if (rows.length > 0) this.#events?.tombstoneCountChanged(-1);
  }

  async *tombstones(): AsyncGenerator<[string, number]> {
    for await (const row of this.#pages<{ name: string; version: string }>(
      'SELECT name, version FROM tombstones WHERE name > $1 ORDER BY name LIMIT $2',
      (r) => r.name,
    )) {
      yield [row.name, Number(row.version)];
    }
  }

  async *blobs(): AsyncGenerator<[string, BlobRecord]> {
    for await (const row of this.#pages<BlobRow & { digest: string }>(
      `SELECT digest, refs, logical_size, stored_size FROM blobs
       WHERE digest > $1 ORDER BY digest LIMIT $2`,
      (r) => r.digest,
    )) {
      yield [row.digest, toRecord(row)];
    }
  }

  /**
   * Rows of an ordered query in pages of {@link PAGE_ROWS}, each from where the last ended
   * (`$1`: the last key, `$2`: the page size). Keyset paging rather than a server-side
   * cursor: a slow reader holds no connection and no snapshot between pages.
   */
  async *#pages<R extends pg.QueryResultRow>(
    text: string,
    keyOf: (row: R) => string,
    values: unknown[] = [],
  ): AsyncGenerator<R> {
    let after = '';
    for (;;) {
      const rows = await this.#query<R>(text, [after, PAGE_ROWS, ...values]);
      yield* rows;
      if (rows.length < PAGE_ROWS) return;
      after = keyOf(rows[rows.length - 1]!);
    }
  }

  async isDirectory(components: readonly string[]): Promise<boolean> {
    if (components.length === 0) return true;
    const [row] = await this.#query<NameRow>('SELECT kind FROM names WHERE name = $1', [
      nameOf(components),
    ]);
    return row?.kind === 'd';
  }

  /**
   * The files under a directory with a version `<= cutoff`: a range scan of the names'
   * primary key, in name order, a page per round trip, one line per name.
   */
  async *list(components: readonly string[], cutoff: number): AsyncGenerator<string> {
    const dir = components.length === 0 ? '' : nameOf(components);
    const [from, to] = childRange(dir);
    let after = from;
    for (;;) {
      const rows = await this.#query<{ name: string; kind: string; version: string | null }>(
        `SELECT name, kind, version FROM names WHERE name > $1 AND name < $2
         ORDER BY name LIMIT $3`,
        [after, to, PAGE_ROWS],
      );
      let out = '';
      for (const row of rows) {
        if (row.kind === 'f' && Number(row.version) <= cutoff) {
          out += row.name.slice(from.length) + '\n';
        }
      }
      if (out) yield out;
      if (rows.length < PAGE_ROWS) return;
      after = rows[rows.length - 1]!.name;
    }
  }

  /**
   * One sweep: removes the blobs at refcount 0 for at least `graceSeconds`, and their
   * records. Each blob is removed under its record's row lock, in the transaction that
   * deletes the record, so a commit of the same digest waits and then finds no record (and
   * commits its own copy after the removal). SKIP LOCKED: blobs a writer holds are left for
   * the next sweep. Returns how many went. A crash between a removal and the commit leaves
   * records without blobs at refcount 0, which the next sweep removes. `signal` stops it
   * between two batches. (The periodic
   * sweeper, elected through the database, is in sweeper.ts; this is its unit of work.)
   */
  async sweep(graceSeconds: number, batch = 100, signal?: AbortSignal): Promise<number> {
    let swept = 0;
    for (;;) {
      signal?.throwIfAborted();
      const client = await this.pool.connect().catch((err: unknown) => {
        throw this.#failure(err);
      });
      let done: number;
      try {
        await client.query('BEGIN');
        const { rows } = await client.query<{ digest: string; stored_size: string }>(
          `SELECT digest, stored_size FROM blobs
           WHERE refs = 0 AND zero_since <= now() - make_interval(secs => $1)
           ORDER BY zero_since LIMIT $2 FOR UPDATE SKIP LOCKED`,
          [graceSeconds, batch],
        );
        for (const row of rows) await this.#blobs.remove(row.digest);
        await client.query('DELETE FROM blobs WHERE digest = ANY($1)', [rows.map((r) => r.digest)]);
        await client.query('COMMIT');
        for (const row of rows) this.#events?.blobCountChanged(-1, Number(row.stored_size));
        done = rows.length;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw this.#failure(err);
      } finally {
        client.release();
      }
      swept += done;
      if (done < batch) return swept;
    }
  }

  /** Which of `digests` have a record: one round trip (the orphan sweep's first filter). */
  async recorded(digests: readonly string[]): Promise<Set<string>> {
    const rows = await this.#query<{ digest: string }>(
      'SELECT digest FROM blobs WHERE digest = ANY($1)',
      [digests],
    );
    return new Set(rows.map((r) => r.digest));
  }

  /**
   * Removes the blob of `digest` when no record names it (an orphan: a crash between an
   * upload's blob commit and its transaction's, or a sweep's removal undone). Decided under
   * the digest's key, as a commit takes it: a record is inserted in a transaction that is
   * never committed, so an upload inserting the same digest waits until the blob is gone
   * (and then commits its own copy), and an upload that inserted first makes this wait and
   * find its committed record (nothing removed) or its rollback (the blob is an orphan).
   * Returns whether the blob was removed.
   */
  async sweepOrphan(digest: string): Promise<boolean> {
    const client = await this.pool.connect().catch((err: unknown) => {
      throw this.#failure(err);
    });
    let broken: unknown;
    try {
      await client.query('BEGIN');
      const held = await client.query(
        `INSERT INTO blobs (digest, refs, logical_size, stored_size) VALUES ($1, 0, 0, 0)
         ON CONFLICT (digest) DO NOTHING`,
        [digest],
      );
      if (held.rowCount === 1) await this.#blobs.remove(digest);
      return held.rowCount === 1;
    } catch (err) {
      throw this.#failure(err);
    } finally {
      // Never committed: the record only held the digest's key while the blob went.
      await client.query('ROLLBACK').catch((err: unknown) => (broken = err));
      client.release(broken instanceof Error ? broken : undefined);
    }
  }

  /** Idempotent: every call returns the same promise. */
  close(): Promise<void> {
    this.#closing ??= this.pool.end();
    return this.#closing;
  }
}

/**
 * pg's Client, timing each statement for the metrics. Statements are sent with a callback
 * (by the pool) or for a promise (by us); a submittable (a cursor) passes untimed.
 */
function timedClient(metrics: EngineMetrics): typeof pg.Client {
  return class TimedClient extends pg.Client {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- pg's overloads
    override query(...args: any[]): any {
      const start = performance.now();
      const done = (): void => metrics.dbStatement((performance.now() - start) / 1000);
      const last = args.length - 1;
      if (typeof args[last] === 'function') {
        const callback = args[last] as (...results: unknown[]) => void;
        args[last] = (...results: unknown[]) => {
          done();
          callback(...results);
        };
      }
      const result = (super.query as (...a: unknown[]) => unknown)(...args);
      if (result instanceof Promise) void result.then(done, done);
      return result;
    }
  };
}

/**
 * Takes `name`'s row lock in the transaction of `client`: the existing row FOR UPDATE, or a
 * placeholder row inserted for a name that has none (see the class comment); true for a
 * placeholder.
 */
async function lockName(client: pg.PoolClient, name: string): Promise<boolean> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const inserted = await client.query(
      `INSERT INTO names (name, kind) VALUES ($1, 'p') ON CONFLICT (name) DO NOTHING`,
      [name],
    );
    if (inserted.rowCount === 1) return true;
    const locked = await client.query('SELECT 1 FROM names WHERE name = $1 FOR UPDATE', [name]);
    if (locked.rowCount === 1) return false;
    // The row we waited for was deleted (a remove committed): insert again.
  }
  throw new Error(`cannot lock name ${name}: its row keeps changing`);
}
