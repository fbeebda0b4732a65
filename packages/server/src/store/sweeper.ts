import pg from 'pg';
import type { BlobStore } from './blob-store.js';
import { connectionLoss, type PgMetadataStore } from './pg-metadata-store.js';

/*
 * The garbage collector of the scale-out store (issue 14: "a blob whose refcount reaches 0
 * is deleted only after a grace period by one sweeper at a time (elected through the
 * database) ... Orphans left by a crash are swept too").
 *
 * What it removes, each only once older than the grace period:
 * 1. Blobs at refcount 0 (PgMetadataStore.sweep): the record is selected FOR UPDATE SKIP
 *    LOCKED, the blob deleted, the record deleted, in one transaction. A commit of that
 *    digest locks the same row, so either it revived the blob first (refs > 0: not swept)
 *    or it waits, finds no record, and commits its own copy after the deletion. A pin (a
 *    PUT whose claimed digest is stored: only its body is verified) restarts the grace
 *    period, which is why the grace must exceed the longest upload.
 * 2. Orphan blobs, committed to the blob store with no record (a crash between an upload's
 *    blob commit and its transaction's commit; a sweep's deletion rolled back after the
 *    object went). Listed from the blob store, filtered by one query per page against the
 *    records, and each candidate removed by PgMetadataStore.sweepOrphan under the digest's
 *    key, which an upload's commit holds from before its blob reaches the blob store until
 *    its transaction ends. So no listing, however stale, can make the sweeper delete a blob
 *    a committed or committing record names. The grace is a second guard (and spares
 *    objects another tool is writing).
 * 3. Staging leftovers (S3 `staging/` keys, or `DIR/ft-tmp/` files): an upload that died
 *    between stage and commit. An upload still running holds its staged copy for at most
 *    the grace (again: longer uploads fail, with a 5xx, and are retried by the client).
 *
 * What is atomic: each removal of step 1 with its record (one transaction); each orphan
 * decision with its deletion (the digest's key held throughout). Nothing else: a crash of
 * the sweeper may leave a record at refcount 0 whose blob is gone (step 1 after the
 * deletion, before the commit: the next sweep finishes it; a dedup meanwhile finds no blob
 * through `pin` and uploads it again) or an orphan not yet deleted (the next sweep's). A
 * reader never sees a name whose blob is missing: only blobs no committed name uses are
 * removed. A reader of a large blob that was already opened reads it by ranged GETs, which
 * fail if the name is replaced and the old blob swept meanwhile: the grace bounds that too.
 *
 * The election: every scale-out process runs a Sweeper; the one holding a session-level
 * advisory lock (`pg_try_advisory_lock`) on a dedicated connection sweeps, the others try
 * to take the lock once per interval. PostgreSQL releases a session lock when the session
 * ends, so when the sweeping process dies (SIGKILL included: the kernel closes its socket)
 * another takes over at its next interval, with no lease to expire and no clock to trust.
 * A lease row would need a lease length (a dead sweeper's work waits that long), clocks
 * that agree, and a renewal that can fall behind under load. The sweeper checks its
 * connection before each sweep and stands down when it is lost (a database restart drops
 * the lock with the session). Safety does not rest on the election: every step above is
 * safe with two sweepers at once (SKIP LOCKED; the digest's key); it only spares the
 * database and the object store duplicate work.
 *
 * Cost: step 1 is an index scan of the records at refcount 0. Steps 2 and 3 list the
 * bucket (or blobs/), so they run at most once per grace period: an orphan goes between
 * one and two grace periods after it was left.
 */

/** "ft" "sw" in ASCII: the advisory lock of the elected sweeper (per database). */
const SWEEPER_LOCK_KEY = 0x6674_7377;

/** Digests checked against the records per round trip. */
const CANDIDATES_PER_QUERY = 1000;

/** What one sweep removed. */
export interface SweepCounts {
  /** Blobs at refcount 0 past the grace period, and their records. */
  blobs: number;
  /** Blobs in the blob store that no record named. */
  orphanBlobs: number;
  /** Staged uploads left by a crash. */
  orphanStaging: number;
}

/** What to sweep, and how old a thing must be to go. */
export interface SweepOptions {
  /** Blobs at refcount 0 and orphan blobs go once this much older. */
  graceSeconds: number;
  /** Staging leftovers go once this much older; default `graceSeconds`. */
  stagingGraceSeconds?: number | undefined;
  /** Whether to list the blob store for orphans (blobs and staging); default true. */
  orphans?: boolean | undefined;
  /** Stops the sweep between two removals (a shutdown): it rejects with the abort reason. */
  signal?: AbortSignal | undefined;
}

/** One sweep of everything (see the comment at the top of this file). */
export async function sweepStore(
  metadata: PgMetadataStore,
  blobs: BlobStore,
  options: SweepOptions,
): Promise<SweepCounts> {
  const { signal } = options;
  const counts: SweepCounts = { blobs: 0, orphanBlobs: 0, orphanStaging: 0 };
  counts.blobs = await metadata.sweep(options.graceSeconds, undefined, signal);
  if (options.orphans === false) return counts;
  signal?.throwIfAborted();
  const now = Date.now();
  const stagingGrace = options.stagingGraceSeconds ?? options.graceSeconds;
  counts.orphanStaging = await blobs.removeStaleStaging(now - stagingGrace * 1000);
  let page: string[] = [];
  const flush = async (): Promise<void> => {
    const known = await metadata.recorded(page);
    for (const digest of page) {
      signal?.throwIfAborted();
      if (!known.has(digest) && (await metadata.sweepOrphan(digest))) counts.orphanBlobs++;
    }
    page = [];
  };
  for await (const digest of blobs.staleBlobs(now - options.graceSeconds * 1000)) {
    page.push(digest);
    if (page.length >= CANDIDATES_PER_QUERY) await flush();
  }
  if (page.length > 0) await flush();
  return counts;
}

/** The sweeper's progress, read by /metrics (http/sweeper-metrics.ts). */
export interface SweeperStats {
  /** This process holds the sweeper lock (it is the one that sweeps). */
  leader: boolean;
  sweeps: number;
  /** Sweeps (or elections) that failed; each is logged. */
  errors: number;
  blobsRemoved: number;
  orphanBlobsRemoved: number;
  orphanStagingRemoved: number;
  /** When the last sweep ended (epoch ms), or undefined before the first. */
  lastEndMs: number | undefined;
  lastDurationMs: number;
}

type Log = (details: Record<string, unknown>, message: string) => void;

export interface SweeperOptions {
  /** The database's URL: the sweeper holds its lock on a connection of its own. */
  url: string;
  metadata: PgMetadataStore;
  blobs: BlobStore;
  /** Time between two elections (and sweeps by the elected one). */
  intervalMs: number;
  /** See {@link SweepOptions.graceSeconds}. */
  graceSeconds: number;
  /** How long connecting may take; then the election fails and is tried again next time. */
  connectTimeoutMs?: number | undefined;
  info?: Log | undefined;
  warn?: Log | undefined;
}

/**
 * The periodic sweeper of one scale-out process: every interval, it takes the sweeper lock
 * if no other process holds it, and sweeps if it holds it (see the comment at the top of
 * this file). `start` begins; `close` stops, waits for a sweep in progress, and releases
 * the lock by ending its connection.
 */
export class Sweeper {
  readonly stats: SweeperStats = {
    leader: false,
    sweeps: 0,
    errors: 0,
    blobsRemoved: 0,
    orphanBlobsRemoved: 0,
    orphanStagingRemoved: 0,
    lastEndMs: undefined,
    lastDurationMs: 0,
  };
  readonly #options: SweeperOptions;
  readonly #info: Log;
  readonly #warn: Log;
  /** The dedicated connection; the lock is held by its session. */
  #client: pg.Client | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** Aborted by close: a sweep in progress stops between two removals. */
  readonly #stop = new AbortController();
  #tick: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  /** When the blob store was last listed for orphans (epoch ms). */
  #orphansAt = -Infinity;

  constructor(options: SweeperOptions) {
    this.#options = options;
    this.#info = options.info ?? (() => {});
    this.#warn = options.warn ?? (() => {});
  }

  /** Runs the first election now, then one per interval. */
  start(): void {
    if (this.#closing !== undefined || this.#timer !== undefined) return;
    this.#schedule(0);
  }

  #schedule(ms: number): void {
    this.#timer = setTimeout(() => {
      this.#tick = this.#run().finally(() => {
        this.#tick = undefined;
        if (this.#closing === undefined) this.#schedule(this.#options.intervalMs);
      });
    }, ms);
    // A process that is otherwise done need not wait for the next sweep.
    this.#timer.unref();
  }

  async #run(): Promise<void> {
    try {
      if (await this.#elected()) await this.#sweep();
    } catch (err) {
      if (this.#stop.signal.aborted) return;
      this.stats.errors++;
      this.#warn({ err }, 'sweep failed (tried again at the next interval)');
    }
  }

  /** Whether this process holds the sweeper lock now: kept, or just taken. */
  async #elected(): Promise<boolean> {
    try {
      const client = this.#client ?? (await this.#connect());
      if (this.stats.leader) {
        // The session still there means the lock still held (released only with it).
        await client.query('SELECT 1');
        return true;
      }
      const { rows } = await client.query<{ taken: boolean }>(
        'SELECT pg_try_advisory_lock($1) AS taken',
        [SWEEPER_LOCK_KEY],
      );
      if (rows[0]?.taken === true) {
        this.stats.leader = true;
        this.#info(
          { intervalMs: this.#options.intervalMs, graceSeconds: this.#options.graceSeconds },
          'this process is now the sweeper',
        );
      }
      return this.stats.leader;
    } catch (err) {
      this.#lost(err);
      throw err;
    }
  }

  async #connect(): Promise<pg.Client> {
    const client = new pg.Client({
      connectionString: this.#options.url,
      connectionTimeoutMillis: this.#options.connectTimeoutMs ?? 10_000,
      // A dead peer on either side is noticed, and the lock released by the server.
      keepAlive: true,
      application_name: 'ft-server sweeper',
    });
    // Errors of an idle connection (the server restarted) come here, not to a query.
    client.on('error', (err) => this.#lost(err));
    this.#client = client;
    try {
      await client.connect();
    } catch (err) {
      this.#client = undefined;
      await client.end().catch(() => {});
      throw err;
    }
    return client;
  }

  /** The dedicated connection failed: the lock went with its session. */
  #lost(err: unknown): void {
    const client = this.#client;
    this.#client = undefined;
    void client?.end().catch(() => {});
    if (this.stats.leader) {
      this.stats.leader = false;
      this.#warn(
        { err: connectionLoss(err) },
        'no longer the sweeper: its database connection was lost',
      );
    }
  }

  async #sweep(): Promise<void> {
    const started = Date.now();
    const { graceSeconds } = this.#options;
    const orphans = started - this.#orphansAt >= graceSeconds * 1000;
    const counts = await sweepStore(this.#options.metadata, this.#options.blobs, {
      graceSeconds,
      orphans,
      signal: this.#stop.signal,
    });
    if (orphans) this.#orphansAt = started;
    const { stats } = this;
    stats.sweeps++;
    stats.blobsRemoved += counts.blobs;
    stats.orphanBlobsRemoved += counts.orphanBlobs;
    stats.orphanStagingRemoved += counts.orphanStaging;
    stats.lastEndMs = Date.now();
    stats.lastDurationMs = stats.lastEndMs - started;
    if (counts.blobs + counts.orphanBlobs + counts.orphanStaging > 0) {
      this.#info({ ...counts, ms: stats.lastDurationMs }, 'sweep removed unused blobs');
    }
  }

  /** Stops sweeping and releases the lock. Idempotent: every call returns the same promise. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearTimeout(this.#timer);
      this.#stop.abort();
      await this.#tick;
      const client = this.#client;
      this.#client = undefined;
      this.stats.leader = false;
      // Ending the session releases the lock: another process takes over at its next try.
      await client?.end().catch(() => {});
    })();
    return this.#closing;
  }
}
