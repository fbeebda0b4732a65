import { mkdir, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import { storeOpenError } from '../store/fs-failure.js';
import { storeLayout, type StoreLayout } from '../store/layout.js';
import { inUseMessage } from '../store/lock-holder.js';
import { MetaDb } from '../store/meta-db.js';
import { StoreOpenError } from '../store/store-api.js';
import { DigestTally } from './digest-tally.js';
import {
  clearTmp,
  countTombstones,
  dropStaleRecords,
  reconcileRecords,
  recountLinks,
  renameNames,
  scanBlobs,
  scanLinks,
  type RecoveryRun,
} from './phases.js';
import { PhaseProgressReporter } from './progress.js';
import { emptyReport, type RecoverReport } from './report.js';

/**
 * While adopting, `meta/` is built here and renamed into place only when complete: until
 * then ft-server keeps refusing the store (no `meta/`), and this database's lock keeps a
 * second ft-recover out. A crashed adoption is resumed by the next run.
 */
const ADOPT_DB = 'meta-adopt';

export type RecoverPhase =
  | 'ft-tmp'
  | 'names'
  | 'blobs'
  | 'links'
  | 'recount'
  | 'records'
  | 'meta'
  | 'tombstones'
  | 'refcounts'
  | 'unrecorded'
  | 'content'
  | 'sweep';

/** Where a run is, for a progress line. */
export interface RecoverProgress {
  phase: RecoverPhase;
  /** What `done` counts: entries, names, blobs, links, records, tombstones. */
  unit: string;
  done: number;
  elapsedMs: number;
  ratePerSecond: number;
}

/**
 * Something an operator should read: a skipped rename or a foreign link (warn), a corrupt
 * blob (error).
 */
export interface RecoverNotice {
  level: 'warn' | 'error';
  code: 'RENAME_CONFLICT' | 'CORRUPT_BLOB' | 'FOREIGN_LINK' | 'MISSING_BLOB' | 'STORE_WARNING';
  message: string;
}

export interface RecoverOptions {
  /** Change nothing; only count what would be fixed. */
  check?: boolean;
  /** Decompress every linked blob: re-hash it against its name, recompute its logical size. */
  full?: boolean;
  /** Also remove every tombstone (after an online migration). Ignored with `check`. */
  purgeTombstones?: boolean;
  /** Called every `progressIntervalMs` while running. */
  onProgress?: (progress: RecoverProgress) => void;
  progressIntervalMs?: number;
  onNotice?: (notice: RecoverNotice) => void;
  /** Stops the run between two items; a rerun finishes the job. */
  signal?: AbortSignal;
}

/**
 * Brings the store in `dir` to the state DESIGN.md invariant 4 describes: every link points
 * at a stored blob by the canonical relative path, every linked blob has a record whose
 * refcount is its number of links, no record or blob is unlinked, `ft-tmp/` is empty. A store
 * made by the Python 2.x server (no `meta/`) is adopted: `meta/` is built, double-encoded
 * names are renamed, `db/` and `locks/` are left alone. Holds the store's lock throughout, so
 * it refuses a store a server is using. With `check`, changes nothing.
 *
 * A link is judged by the digest its target names (the basename, as the server reads it), so
 * an absolute target from another location of this store is kept and rewritten, while one
 * naming a blob this store lacks is dangling wherever it points.
 *
 * The phases (phases.ts) run in this order; each leaves, if the run stops in it, a state the
 * next run repairs.
 */
export async function recoverStore(
  dir: string,
  options: RecoverOptions = {},
): Promise<RecoverReport> {
  const check = options.check ?? false;
  const full = options.full ?? false;
  const opened = await openStore(dir, check);
  const run: RecoveryRun = {
    ...opened,
    check,
    full,
    purgeTombstones: options.purgeTombstones ?? false,
    signal: options.signal,
    report: { ...emptyReport(check, full), metaMissing: opened.adoptPath !== undefined },
    progress: new PhaseProgressReporter(options),
    notice: (n) => options.onNotice?.(n),
  };
  try {
    await clearTmp(run);
    if (run.adoptPath !== undefined) await renameNames(run);
    const tally = new DigestTally();
    await scanBlobs(run, tally);
    await scanLinks(run, tally);
    await recountLinks(run, tally);
    await reconcileRecords(run, tally);
    if (run.meta) {
      await dropStaleRecords(run, run.meta, tally);
      await countTombstones(run, run.meta);
    }
    await installAdoptedMeta(run);
  } finally {
    run.progress.stop();
    await run.meta?.close();
  }
  return run.report;
}

/**
 * Opening: finds the store in `dir` and takes its lock (the database's) for the whole run;
 * refuses a directory that holds no store, and a store in use.
 * Reads: whether `dir` and its `links/`, `blobs/` and `meta/` are directories.
 * Writes (not with `check`): `ft-tmp/`, `links/` and `blobs/` where missing, and the
 * database it opens: `meta/`, or, adopting a store without one, `ft-tmp/meta-adopt` (made
 * if new, resumed if there). With `check` it opens only a database that is there, to hold
 * the lock.
 * A crash leaves at most those directories and an empty adoption database, which the next
 * run resumes.
 */
async function openStore(
  dir: string,
  check: boolean,
): Promise<{ layout: StoreLayout; meta: MetaDb | undefined; adoptPath: string | undefined }> {
  const layout = storeLayout(dir);
  const rootStat = await stat(layout.root).catch(() => null);
  if (!rootStat?.isDirectory()) {
    throw new StoreOpenError('NOT_A_STORE', `${layout.root} is not a directory; check the path`);
  }
  const [hasLinks, hasBlobs, hasMeta] = await Promise.all(
    [layout.links, layout.blobs, layout.meta].map(isDirectory),
  );
  if (!hasLinks && !hasBlobs && !hasMeta) {
    throw new StoreOpenError(
      'NOT_A_STORE',
      `${layout.root} holds no filetracker store (no links/, blobs/ or meta/); check the path`,
    );
  }
  const adoptPath = hasMeta ? undefined : path.join(layout.tmp, ADOPT_DB);
  const locked = (err: unknown, pid: number | undefined): StoreOpenError =>
    new StoreOpenError('LOCKED', inUseMessage(layout.root, pid), err);
  let meta: MetaDb | undefined;
  try {
    if (!check) {
      await Promise.all(
        [layout.tmp, layout.links, layout.blobs].map((d) => mkdir(d, { recursive: true })),
      );
      meta = await MetaDb.open(adoptPath ?? layout.meta, locked);
    } else if (adoptPath === undefined) {
      meta = await MetaDb.open(layout.meta, locked);
    } else if (await isDirectory(adoptPath)) {
      // Only to hold the lock: an adoption may be running.
      meta = await MetaDb.open(adoptPath, locked);
    }
  } catch (err) {
    throw storeOpenError(err, layout.root);
  }
  return { layout, meta, adoptPath };
}

/**
 * The end of an adoption (not with `check`): the database built in `ft-tmp/` becomes
 * `meta/`, from which on ft-server accepts the store.
 * Writes: drops the rename marks, closes the database, renames it to `meta/`.
 * A crash before the rename leaves the whole database in `ft-tmp/`, which the next run
 * resumes; the rename itself is atomic.
 */
async function installAdoptedMeta(run: RecoveryRun): Promise<void> {
  if (run.adoptPath === undefined || run.check || !run.meta) return;
  await run.meta.clearRenameMarks();
  await run.meta.close();
  await rename(run.adoptPath, run.layout.meta);
}

async function isDirectory(p: string): Promise<boolean> {
  return stat(p).then(
    (st) => st.isDirectory(),
    () => false,
  );
}
