import { stat } from 'node:fs/promises';
import path from 'node:path';
import { createGunzip } from 'node:zlib';
import pg from 'pg';
import { readAhead, sha256OfStream } from '@filetracker/runtime';
import {
  openScaleOutStore,
  redactUrl,
  type BucketLocation,
  type ScaleOutStore,
} from '../store/open-scale-out.js';
import {
  countSweepable,
  dropRecordWithoutBlob,
  fileNames,
  fixRefcount,
  hasSchema,
  recordUnreferenced,
  refcountMismatches,
  setSizes,
  unrecorded,
} from '../store/pg-repair.js';
import { StoreOpenError } from '../store/store-api.js';
import { forEachBatched } from './batch.js';
import { DEFAULT_GRACE_SECONDS } from './grace.js';
import { countTombstones } from './phases.js';
import { DigestTally } from './digest-tally.js';
import { PhaseProgressReporter } from './progress.js';
import { type RecoverOptions } from './recover.js';
import { emptyReport, type RecoverReport } from './report.js';

/*
 * ft-recover on the scale-out store (issue 14): the database and the blob store made to
 * agree, while ft-server processes keep serving. There is no store lock to take, so every
 * change is one the servers' own code could make at that instant, under the row lock they
 * use (pg-repair.ts, PgMetadataStore.withName), and every "missing" seen in a listing is
 * asked again (a HEAD: listings may lag writes) before anything is changed.
 */

/** Object-store calls in flight at once (HEADs, small GETs): hides the round trip. */
const CALL_BATCH = 16;
/** Blobs re-hashed at once with --full: each is a stream of ranged GETs through zlib. */
const HASH_BATCH = 4;
/** Ranged GET size while re-hashing a blob. */
const HASH_CHUNK_BYTES = 1024 * 1024;
/** Digests asked about per query (which of them have no record). */
const RECORD_BATCH = 1000;

/** Where the scale-out store is (ft-recover --db, --blobs, --s3-endpoint, DIR). */
export interface ScaleOutTarget {
  db: string;
  /** The bucket; else the blobs are in `dir`/blobs/. */
  bucket?: BucketLocation | undefined;
  s3Endpoint?: string | undefined;
  dir?: string | undefined;
}

export interface ScaleOutRecoverOptions extends RecoverOptions {
  /** How long a blob stays at refcount 0 before it is removed (the sweeper's rule). */
  graceSeconds?: number;
}

interface Run {
  store: ScaleOutStore;
  /** The database, for messages (no password). */
  db: string;
  pool: pg.Pool;
  check: boolean;
  full: boolean;
  graceSeconds: number;
  purgeTombstones: boolean;
  signal: AbortSignal | undefined;
  report: RecoverReport;
  progress: PhaseProgressReporter;
  options: RecoverOptions;
}

/**
 * Brings a scale-out store to the state issue 14 asks of it: every name's blob stored,
 * every refcount the number of names, no blob without a record, none at refcount 0 past
 * the grace period; with `full`, every blob's content hashing to its key. With `check`,
 * changes nothing. Safe while ft-server processes run (see each phase).
 */
export async function recoverScaleOut(
  target: ScaleOutTarget,
  options: ScaleOutRecoverOptions = {},
): Promise<RecoverReport> {
  const store = await openTarget(target, (details, message) =>
    options.onNotice?.({
      level: 'warn',
      code: 'STORE_WARNING',
      message:
        typeof details.repeated === 'number' && details.repeated > 0
          ? `${message} (and ${details.repeated} more like it)`
          : message,
    }),
  );
  const run: Run = {
    store,
    db: redactUrl(target.db),
    pool: store.metadata.pool,
    check: options.check ?? false,
    full: options.full ?? false,
    graceSeconds: options.graceSeconds ?? DEFAULT_GRACE_SECONDS,
    purgeTombstones: options.purgeTombstones ?? false,
    signal: options.signal,
    report: { ...emptyReport(options.check ?? false, options.full ?? false), scaleOut: true },
    progress: new PhaseProgressReporter(options),
    options,
  };
  try {
    const tally = new DigestTally();
    await listBlobs(run, tally);
    await refuseStrangers(run, tally);
    await checkNames(run, tally);
    await fixRefcounts(run);
    await dropRecordsWithoutBlob(run, tally);
    await recordUnrecorded(run, tally);
    if (run.full) await rehash(run, tally);
    await sweepUnreferenced(run);
    await countTombstones(run, store.metadata);
  } finally {
    run.progress.stop();
    await store.close();
  }
  return run.report;
}

/**
 * Opens the store as ft-server does (its warnings to `warn`), but refuses a database without a filetracker schema
 * and a bucket that does not exist (a typo must create nothing), and a DIR without blobs/.
 */
async function openTarget(
  target: ScaleOutTarget,
  warn: (details: Record<string, unknown>, message: string) => void,
): Promise<ScaleOutStore> {
  const db = redactUrl(target.db);
  const client = new pg.Client({ connectionString: target.db, connectionTimeoutMillis: 10_000 });
  client.on('error', () => {});
  try {
    await client.connect();
    if (!(await hasSchema(client))) {
      throw new StoreOpenError(
        'NOT_A_STORE',
        `the database ${db} holds no filetracker store (no ft_schema table); check --db`,
      );
    }
  } catch (err) {
    if (err instanceof StoreOpenError) throw err;
    throw new StoreOpenError('OPEN_FAILED', `cannot open the database ${db}: ${oneLine(err)}`, err);
  } finally {
    await client.end().catch(() => {});
  }
  if (target.bucket === undefined && target.dir !== undefined) {
    const blobs = path.join(target.dir, 'blobs');
    const found = await stat(blobs).then(
      (st) => st.isDirectory(),
      () => false,
    );
    if (!found) {
      throw new StoreOpenError('NOT_A_STORE', `${blobs} is not a directory; check DIR`);
    }
  }
  // A StoreOpenError from here is already the one line ft-recover says.
  return openScaleOutStore({
    db: target.db,
    bucket: target.bucket,
    s3Endpoint: target.s3Endpoint,
    dir: target.dir,
    createBucket: false,
    poolSize: 8,
    // The store's warnings, the object store client's own among them (sdk-logger.ts), as
    // ft-server logs them: without this they were dropped.
    warn,
  });
}

/**
 * Phase `blobs`: lists every blob of the blob store into `tally`.
 * Reads: the bucket's listing (or blobs/). Writes: nothing.
 */
async function listBlobs(run: Run, tally: DigestTally): Promise<void> {
  run.progress.start('blobs', 'blobs');
  for await (const digest of run.store.blobs.digests()) {
    run.signal?.throwIfAborted();
    run.progress.tick();
    tally.addBlob(digest);
  }
}

/**
 * Refuses to go on when the blob store holds none of the first records' blobs: a wrong
 * bucket, prefix or endpoint, which a repair would answer by removing every name.
 * Reads: a page of records, a HEAD of one. Writes: nothing.
 */
async function refuseStrangers(run: Run, tally: DigestTally): Promise<void> {
  const sample: string[] = [];
  for await (const [digest] of run.store.metadata.blobs()) {
    sample.push(digest);
    if (sample.length >= RECORD_BATCH) break;
  }
  if (sample.length === 0 || sample.some((d) => tally.count(d) !== undefined)) return;
  if (await run.store.blobs.has(sample[0]!)) return;
  throw new StoreOpenError(
    'STORES_DISAGREE',
    `the blob store ${run.store.blobsAt} holds none of the first ${sample.length} blobs the database ${run.db} records: check --blobs, its prefix and --s3-endpoint; nothing was changed`,
  );
}

/**
 * Phase `names`: every name whose blob is stored is counted; a name whose blob is missing
 * (asked again by a HEAD) is reported and, unless `check`, removed as ft-server deletes a
 * name: under its row lock, its reference dropped, after reading it again (a name
 * rewritten meanwhile is left alone), as the local recover removes a dangling link.
 * Reads: every file name, a HEAD per name whose blob the listing lacks. Writes: removes
 * those names, one transaction each.
 */
async function checkNames(run: Run, tally: DigestTally): Promise<void> {
  const { report, store } = run;
  run.progress.start('names', 'names');
  await forEachBatched(
    fileNames(run.pool),
    CALL_BATCH,
    async ({ name, digest }) => {
      run.progress.tick();
      if (tally.addLink(digest)) {
        report.links++;
        return;
      }
      // Committed after the listing, or a listing that lags: the blob store is asked.
      if (await store.blobs.has(digest)) {
        tally.addBlob(digest);
        tally.addLink(digest);
        report.links++;
        return;
      }
      const removed = run.check ? false : await removeName(run, name, digest);
      if (!run.check && !removed) return; // rewritten meanwhile: no longer ours to judge
      report.danglingLinks++;
      run.options.onNotice?.({
        level: 'warn',
        code: 'MISSING_BLOB',
        message: `${name} points at blob ${digest}, which ${store.blobsAt} lacks: ${run.check ? 'a repair removes the name' : 'removed the name'}; upload it again`,
      });
    },
    run.signal,
  );
}

/** Removes `name` if it still points at `digest` and that blob is still missing. */
async function removeName(run: Run, name: string, digest: string): Promise<boolean> {
  const { metadata, blobs } = run.store;
  const components = name.slice(1).split('/');
  return metadata.withName(name, async () => {
    const now = await metadata.read(components);
    if (typeof now !== 'object' || now.digest !== digest || (await blobs.has(digest))) {
      return false;
    }
    await metadata.remove(components, now);
    return true;
  });
}

/**
 * Phase `refcounts`: finds, in one snapshot, the records whose refcount is not their
 * number of names and the digests named without a record, and (unless `check`) sets each
 * under the record's row lock, counting the names again there (pg-repair.ts
 * fixRefcount); a missing record is made from the blob's own sizes.
 * Reads: the names and records (one statement), each mismatch's blob when it has no
 * record. Writes: one transaction per mismatch.
 */
async function fixRefcounts(run: Run): Promise<void> {
  const { report, store } = run;
  run.progress.start('refcounts', 'records');
  const mismatches = await refcountMismatches(run.pool);
  await forEachBatched(
    mismatches,
    CALL_BATCH,
    async ({ digest, refs }) => {
      run.progress.tick();
      if (run.check) {
        if (refs === undefined) report.recordsAdded++;
        else report.refcountsFixed++;
        return;
      }
      const fix = await fixRefcount(run.pool, digest, () => store.blobs.sizes(digest));
      if (fix === 'added') report.recordsAdded++;
      else if (fix === 'fixed') report.refcountsFixed++;
    },
    run.signal,
  );
}

/**
 * Phase `records`: a record whose blob is not stored (asked again by a HEAD) is reported
 * and, unless `check`, dropped when no name uses it (after phase `names`, none does), under
 * its row lock (pg-repair.ts dropRecordWithoutBlob).
 * Reads: every record, a HEAD per record the listing lacks. Writes: deletes those records.
 */
async function dropRecordsWithoutBlob(run: Run, tally: DigestTally): Promise<void> {
  const { report, store } = run;
  run.progress.start('records', 'records');
  await forEachBatched(
    store.metadata.blobs(),
    CALL_BATCH,
    async ([digest]) => {
      run.progress.tick();
      if (tally.count(digest) !== undefined || (await store.blobs.has(digest))) return;
      if (run.check) {
        report.recordsDropped++;
        return;
      }
      if (await dropRecordWithoutBlob(run.pool, digest, () => store.blobs.has(digest))) {
        report.recordsDropped++;
      }
    },
    run.signal,
  );
}

/**
 * Phase `unrecorded`: counts the blobs some name uses (`blobs`) and finds the stored blobs
 * without a record (a crash between an upload's commit to the bucket and its
 * transaction); unless `check`, each gets a record at refcount 0, so the sweep removes it
 * after the grace period (pg-repair.ts recordUnreferenced: never removed at once, it may
 * be a commit in flight).
 * Reads: a query per {@link RECORD_BATCH} blobs, each such blob whole (its sizes).
 * Writes: one insert per such blob.
 */
async function recordUnrecorded(run: Run, tally: DigestTally): Promise<void> {
  const { report, store } = run;
  run.progress.start('unrecorded', 'blobs');
  let batch: string[] = [];
  const flush = async (): Promise<void> => {
    const found = await unrecorded(run.pool, batch);
    batch = [];
    await forEachBatched(
      found,
      CALL_BATCH,
      async (digest) => {
        if (run.check) {
          report.unrecordedBlobs++;
          return;
        }
        const sizes = await store.blobs.sizes(digest);
        if (sizes && (await recordUnreferenced(run.pool, digest, sizes))) {
          report.unrecordedBlobs++;
        }
      },
      run.signal,
    );
  };
  for (const [digest, names] of tally.entries()) {
    run.signal?.throwIfAborted();
    run.progress.tick();
    if (names > 0) report.blobs++;
    batch.push(digest);
    if (batch.length >= RECORD_BATCH) await flush();
  }
  if (batch.length > 0) await flush();
}

/**
 * Phase `content` (`full`): streams every stored blob through gunzip and sha256 and
 * compares it with its key; a corrupt one is reported (an error) and left in place with
 * its names, as the local recover does. A record whose sizes are not the blob's is fixed
 * (`sizesFixed`).
 * Reads: every blob, by ranged GETs. Writes: the sizes of those records.
 */
async function rehash(run: Run, tally: DigestTally): Promise<void> {
  const { report, store } = run;
  run.progress.start('content', 'blobs');
  await forEachBatched(
    tally.entries(),
    HASH_BATCH,
    async ([digest, names]) => {
      run.progress.tick();
      const handle = await store.blobs.open(digest);
      if (handle === null) return; // removed since the listing (a sweep)
      const stream = readAhead(handle, HASH_CHUNK_BYTES);
      let content: { digest: string; size: number };
      try {
        content = await sha256OfStream([stream, createGunzip()], run.signal);
      } catch (err) {
        run.signal?.throwIfAborted();
        corrupt(run, digest, names, `cannot be decompressed: ${oneLine(err)}`);
        return;
      }
      if (content.digest !== digest) {
        corrupt(run, digest, names, `its content hashes to ${content.digest}`);
        return;
      }
      const record = await store.metadata.blob(digest);
      const sizes = { logicalSize: content.size, storedSize: stream.bytesRead };
      if (
        record &&
        (record.logicalSize !== sizes.logicalSize || record.storedSize !== sizes.storedSize)
      ) {
        report.sizesFixed++;
        if (!run.check) await setSizes(run.pool, digest, sizes);
      }
    },
    run.signal,
  );
}

function corrupt(run: Run, digest: string, names: number, why: string): void {
  run.report.corruptBlobs++;
  run.options.onNotice?.({
    level: 'error',
    code: 'CORRUPT_BLOB',
    message: `blob ${digest} is corrupt (${why}); left in place with its ${names} name(s): restore the object from a backup (bucket versioning) or upload those names again`,
  });
}

/**
 * Phase `sweep`: the blobs at refcount 0 for longer than the grace period are counted
 * (`orphanBlobs`) and, unless `check`, removed with their records by the sweeper's own
 * unit of work (PgMetadataStore.sweep: under each record's row lock, skipping locked ones).
 */
async function sweepUnreferenced(run: Run): Promise<void> {
  run.progress.start('sweep', 'blobs');
  run.report.orphanBlobs += run.check
    ? await countSweepable(run.pool, run.graceSeconds)
    : await run.store.metadata.sweep(run.graceSeconds);
}

function oneLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0]!;
}
