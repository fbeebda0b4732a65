import type { PoolClient } from 'pg';

/**
 * The schema of the PostgreSQL metadata store, as numbered migrations: version N is reached
 * by running MIGRATIONS[N - 1] on version N - 1. A migration is only ever appended.
 *
 * Names sort in byte order (COLLATE "C"), so the names under a directory `/d` are the range
 * `['/d/', '/d0')` of the primary key: `/list` is an index range scan.
 */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE names (
     name text COLLATE "C" PRIMARY KEY,
     -- f: a file (digest and version set); d: a directory (a parent of some name, kept
     -- when emptied, as links/ keeps its directories); p: a writer's placeholder for a
     -- name that did not exist, never committed (see PgMetadataStore.withName)
     kind "char" NOT NULL CHECK (kind IN ('f', 'd', 'p')),
     digest text,
     version bigint,
     CHECK ((kind = 'f') = (digest IS NOT NULL AND version IS NOT NULL))
   );
   CREATE TABLE blobs (
     digest text PRIMARY KEY,
     refs bigint NOT NULL CHECK (refs >= 0),
     logical_size bigint NOT NULL,
     stored_size bigint NOT NULL,
     -- when refs last reached 0: the sweeper removes the blob a grace period later
     zero_since timestamptz
   );
   CREATE INDEX blobs_unreferenced ON blobs (zero_since) WHERE refs = 0;
   CREATE TABLE tombstones (
     name text COLLATE "C" PRIMARY KEY,
     version bigint NOT NULL
   );`,
  // The store's identity (store-id.ts has the local one): made once, with the schema, so
  // every ft-server process on this database answers the same id in /status.
  `CREATE TABLE ft_store (
     one boolean PRIMARY KEY DEFAULT true CHECK (one),
     id text NOT NULL
   );
   INSERT INTO ft_store (id) VALUES (gen_random_uuid()::text);`,
];

/** The schema version this code reads and writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * A fixed key for pg_advisory_xact_lock: the processes starting at once on one database
 * migrate one at a time ("ft" "sc" in ASCII).
 */
const MIGRATION_LOCK_KEY = 0x6674_7363;

/** The database holds a schema newer than this ft-server knows. */
export class SchemaTooNewError extends Error {
  constructor(found: number) {
    super(
      `the database's filetracker schema is version ${found}, newer than this ft-server's (${SCHEMA_VERSION}): upgrade ft-server`,
    );
    this.name = 'SchemaTooNewError';
  }
}

/**
 * Creates or migrates the schema, in one transaction, under the migration lock: a process
 * that waited for another one's migration finds the schema current and does nothing.
 * Returns the version found before.
 */
export async function migrate(client: PoolClient): Promise<number> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await client.query('CREATE TABLE IF NOT EXISTS ft_schema (version integer NOT NULL)');
    const { rows } = await client.query<{ version: number | null }>(
      'SELECT max(version) AS version FROM ft_schema',
    );
    const found = rows[0]?.version ?? 0;
    if (found > SCHEMA_VERSION) throw new SchemaTooNewError(found);
    for (let v = found; v < SCHEMA_VERSION; v++) await client.query(MIGRATIONS[v]!);
    if (found < SCHEMA_VERSION) {
      await client.query('DELETE FROM ft_schema');
      await client.query('INSERT INTO ft_schema (version) VALUES ($1)', [SCHEMA_VERSION]);
    }
    await client.query('COMMIT');
    return found;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}
