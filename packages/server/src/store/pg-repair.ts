import type pg from 'pg';
import type { BlobSizes } from './blob-store.js';

/*
 * ft-recover's statements on the PostgreSQL metadata store (pg-schema.ts), safe while
 * ft-server processes use the database: each change of a blob's record is made under that
 * record's row lock, the lock PgMetadataStore's commit, release and sweep take, so it
 * serializes with them (see each function).
 */

/** Rows per round trip of a walk (keyset paging, as PgMetadataStore's listings). */
const PAGE_ROWS = 1000;

/** A file name and the digest it points at. */
export interface NamedDigest {
  name: string;
  digest: string;
}

/** Every file name with its digest, in name order, a page per round trip. */
export async function* fileNames(pool: pg.Pool): AsyncGenerator<NamedDigest> {
  let after = '';
  for (;;) {
    const { rows } = await pool.query<NamedDigest>(
      `SELECT name, digest FROM names WHERE name > $1 AND kind = 'f' ORDER BY name LIMIT $2`,
      [after, PAGE_ROWS],
    );
    yield* rows;
    if (rows.length < PAGE_ROWS) return;
    after = rows[rows.length - 1]!.name;
  }
}

/** A record whose refcount is not its number of names, or a digest named without a record. */
export interface RefcountMismatch {
  digest: string;
  /** The recorded refcount; undefined when the digest has no record. */
  refs: number | undefined;
  /** Names pointing at the digest. */
  names: number;
}

/**
 * The records whose refcount is not the number of names pointing at them, the digests
 * names point at without a record, and the records at refcount 0 with no time to be swept
 * from (which no sweep would ever take). One statement, so one snapshot: ft-server changes
 * a name and the refcounts in one transaction, so what this finds is damage, never a write
 * in flight. The names are counted by one scan and hash aggregate (names has no index by
 * digest); only the mismatches come back.
 */
export async function refcountMismatches(pool: pg.Pool): Promise<RefcountMismatch[]> {
  const { rows } = await pool.query<{ digest: string; refs: string | null; names: string }>(
    `SELECT digest, b.refs, coalesce(n.names, 0) AS names
       FROM blobs b
       FULL JOIN (SELECT digest, count(*) AS names FROM names WHERE kind = 'f' GROUP BY digest) n
       USING (digest)
      WHERE b.refs IS DISTINCT FROM coalesce(n.names, 0)
         OR (b.refs = 0 AND b.zero_since IS NULL)
      ORDER BY digest`,
  );
  return rows.map((r) => ({
    digest: r.digest,
    refs: r.refs === null ? undefined : Number(r.refs),
    names: Number(r.names),
  }));
}

/** What {@link fixRefcount} did. */
export type RefcountFix = 'fixed' | 'added' | 'right' | 'no-blob';

/**
 * Sets a digest's refcount to its number of names, in one transaction under the record's
 * row lock; a digest named without a record gets one (`sizes` of its blob; `no-blob` and
 * nothing changed when the blob is not stored). At refcount 0 the sweeper's clock starts
 * (kept if running).
 *
 * Safe online: ft-server's commit locks the new digest's record before it points a name
 * at it, and changes the record of the digest a name leaves after the name; with the lock
 * held, the count sees every name change committed before, and a change still in flight
 * updates the record after this transaction, from the corrected count. An insert of a
 * missing record meets a concurrent first commit of that digest on the primary key: the
 * commit's insert then adds its reference to this one.
 */
export async function fixRefcount(
  pool: pg.Pool,
  digest: string,
  sizes: () => Promise<BlobSizes | undefined>,
): Promise<RefcountFix> {
  const client = await pool.connect();
  let broken: unknown;
  try {
    await client.query('BEGIN');
    let added = false;
    let [row] = (await lockRecord(client, digest)).rows;
    if (!row) {
      // The blob is read before anything is written: a missing one changes nothing.
      const found = await sizes();
      if (!found) {
        await client.query('ROLLBACK');
        return 'no-blob';
      }
      const inserted = await client.query(
        `INSERT INTO blobs (digest, refs, logical_size, stored_size, zero_since)
         VALUES ($1, 0, $2, $3, now()) ON CONFLICT (digest) DO NOTHING`,
        [digest, found.logicalSize, found.storedSize],
      );
      added = inserted.rowCount === 1;
      [row] = (await lockRecord(client, digest)).rows;
    }
    const { rows } = await client.query<{ names: string }>(
      `SELECT count(*) AS names FROM names WHERE digest = $1 AND kind = 'f'`,
      [digest],
    );
    const names = Number(rows[0]!.names);
    const wrong =
      row !== undefined &&
      (added || Number(row.refs) !== names || (names === 0 && row.zero_since === null));
    if (wrong) {
      await client.query(
        `UPDATE blobs SET refs = $2::bigint,
           zero_since = CASE WHEN $2::bigint = 0 THEN coalesce(zero_since, now()) ELSE NULL END
         WHERE digest = $1`,
        [digest, names],
      );
    }
    await client.query('COMMIT');
    return added ? 'added' : wrong ? 'fixed' : 'right';
  } catch (err) {
    await client.query('ROLLBACK').catch((rollbackErr: unknown) => (broken = rollbackErr));
    throw err;
  } finally {
    client.release(broken instanceof Error ? broken : undefined);
  }
}

function lockRecord(
  client: pg.PoolClient,
  digest: string,
): Promise<pg.QueryResult<{ refs: string; zero_since: Date | null }>> {
  return client.query('SELECT refs, zero_since FROM blobs WHERE digest = $1 FOR UPDATE', [digest]);
}

/**
 * Drops the record of a digest whose blob is not stored, if no name uses it: under the
 * record's row lock, at refcount 0, and only when `stored` (asked with the lock held) says
 * the blob is still missing. A commit of the same content waits for the lock, then finds no
 * record and commits its own blob; one that went first has raised the refcount. Whether it
 * was dropped.
 */
export async function dropRecordWithoutBlob(
  pool: pg.Pool,
  digest: string,
  stored: () => Promise<boolean>,
): Promise<boolean> {
  const client = await pool.connect();
  let broken: unknown;
  try {
    await client.query('BEGIN');
    const [row] = (await lockRecord(client, digest)).rows;
    const drop = row !== undefined && Number(row.refs) === 0 && !(await stored());
    if (drop) await client.query('DELETE FROM blobs WHERE digest = $1', [digest]);
    await client.query('COMMIT');
    return drop;
  } catch (err) {
    await client.query('ROLLBACK').catch((rollbackErr: unknown) => (broken = rollbackErr));
    throw err;
  } finally {
    client.release(broken instanceof Error ? broken : undefined);
  }
}

/** Which of `digests` have no record. */
export async function unrecorded(pool: pg.Pool, digests: string[]): Promise<string[]> {
  const { rows } = await pool.query<{ digest: string }>(
    'SELECT digest FROM blobs WHERE digest = ANY($1)',
    [digests],
  );
  const recorded = new Set(rows.map((r) => r.digest));
  return digests.filter((d) => !recorded.has(d));
}

/**
 * Gives a stored blob that no record names a record at refcount 0 whose sweeper clock
 * starts now: the sweep removes it a grace period later, under the record's lock. Never
 * removed here: an upload's commit stores its blob before it inserts the record, so a blob
 * without one may be a commit in flight; that commit's insert then adds its reference to
 * this record (the primary key orders the two), and the grace period outlasts it. Whether
 * this inserted the record.
 */
export async function recordUnreferenced(
  pool: pg.Pool,
  digest: string,
  sizes: BlobSizes,
): Promise<boolean> {
  const { rowCount } = await pool.query(
    `INSERT INTO blobs (digest, refs, logical_size, stored_size, zero_since)
     VALUES ($1, 0, $2, $3, now()) ON CONFLICT (digest) DO NOTHING`,
    [digest, sizes.logicalSize, sizes.storedSize],
  );
  return rowCount === 1;
}

/** Records at refcount 0 for longer than the grace period (the sweep's next work). */
export async function countSweepable(pool: pg.Pool, graceSeconds: number): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(
    `SELECT count(*) AS n FROM blobs
      WHERE refs = 0 AND zero_since <= now() - make_interval(secs => $1)`,
    [graceSeconds],
  );
  return Number(rows[0]!.n);
}

/**
 * Corrects a record's sizes to what the blob's bytes say (ft-recover --full). Not under a
 * lock: a blob's content never changes, so neither do its true sizes.
 */
export async function setSizes(pool: pg.Pool, digest: string, sizes: BlobSizes): Promise<void> {
  await pool.query('UPDATE blobs SET logical_size = $2, stored_size = $3 WHERE digest = $1', [
    digest,
    sizes.logicalSize,
    sizes.storedSize,
  ]);
}

/** Whether the database holds a filetracker schema (an empty one is not a store). */
export async function hasSchema(client: pg.ClientBase): Promise<boolean> {
  const { rows } = await client.query<{ t: string | null }>(
    `SELECT to_regclass('ft_schema')::text AS t`,
  );
  return rows[0]?.t != null;
}
