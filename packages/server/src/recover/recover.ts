import { lstat, mkdir, opendir, readlink, rename, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { walkTree } from '@filetracker/runtime';
import { describeFailure } from '../store/fs-failure.js';
import { blobPath, digestOfTarget, linkTarget, storeLayout } from '../store/layout.js';
import { stageLink } from '../store/link-tree.js';
import { MetaDb, isLevelLocked, type BlobRecord } from '../store/meta-db.js';
import { inUseMessage, lockHolder } from '../store/lock-holder.js';
import { forEachBatched } from './batch.js';
import { DigestTally, isDigest } from './digest-tally.js';
import { inflateBlob } from '../store/inflate.js';
import { readGzipFrame, trailerLogicalSize } from './gzip-size.js';
import { clearRenameMarkers, renameDoubleEncoded } from './rename-names.js';
import { emptyReport, type RecoverReport } from './report.js';

/**
 * While adopting, `meta/` is built here and renamed into place only when complete: until
 * then ft-server keeps refusing the store (no `meta/`), and this database's lock keeps a
 * second ft-recover out. A crashed adoption is resumed by the next run.
 */
const ADOPT_DB = 'meta-adopt';

/** readlink/lstat/stat calls in flight at once: enough to hide the thread-pool round trip. */
const FS_BATCH = 64;
/** Blobs decompressed at once: libuv runs zlib on its 4 pool threads. */
const INFLATE_BATCH = 4;

export type RecoverPhase =
  'ft-tmp' | 'names' | 'blobs' | 'links' | 'recount' | 'records' | 'meta' | 'tombstones';

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
  code: 'RENAME_CONFLICT' | 'CORRUPT_BLOB' | 'FOREIGN_LINK';
  message: string;
}

/** See {@link RecoverError}. */
export type RecoverErrorCode = 'NOT_A_STORE' | 'LOCKED' | 'PERMISSION' | 'OPEN_FAILED';

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
 * ft-recover cannot run on `dir`; `code` says why: NOT_A_STORE, LOCKED (in use), PERMISSION
 * (its files refuse us: owner, immutable flag, read-only mount), OPEN_FAILED (anything else
 * while opening it).
 */
export class RecoverError extends Error {
  readonly code: RecoverErrorCode;
  constructor(code: RecoverErrorCode, message: string, cause?: unknown) {
    super(message, { cause });
    this.name = 'RecoverError';
    this.code = code;
  }
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
 */
export async function recoverStore(
  dir: string,
  options: RecoverOptions = {},
): Promise<RecoverReport> {
  const check = options.check ?? false;
  const full = options.full ?? false;
  const { signal } = options;
  const layout = storeLayout(dir);
  const report = emptyReport(check, full);
  const notice = (n: RecoverNotice): void => options.onNotice?.(n);

  const rootStat = await stat(layout.root).catch(() => null);
  if (!rootStat?.isDirectory()) {
    throw new RecoverError('NOT_A_STORE', `${layout.root} is not a directory; check the path`);
  }
  const [hasLinks, hasBlobs, hasMeta] = await Promise.all(
    [layout.links, layout.blobs, layout.meta].map(isDirectory),
  );
  if (!hasLinks && !hasBlobs && !hasMeta) {
    throw new RecoverError(
      'NOT_A_STORE',
      `${layout.root} holds no filetracker store (no links/, blobs/ or meta/); check the path`,
    );
  }
  const adopting = !hasMeta;
  report.metaMissing = adopting;
  const adoptPath = path.join(layout.tmp, ADOPT_DB);

  let meta: MetaDb | undefined;
  try {
    if (!check) {
      await Promise.all(
        [layout.tmp, layout.links, layout.blobs].map((d) => mkdir(d, { recursive: true })),
      );
      meta = await openLocked(adopting ? adoptPath : layout.meta, layout.root);
    } else if (hasMeta) {
      meta = await openLocked(layout.meta, layout.root);
    } else if (await isDirectory(adoptPath)) {
      // Only to hold the lock: an adoption may be running.
      meta = await openLocked(adoptPath, layout.root);
    }
  } catch (err) {
    if (err instanceof RecoverError) throw err;
    const { code, reason } = describeFailure(err, layout.root);
    throw new RecoverError(code, `cannot open store ${layout.root}: ${reason}`, err);
  }

  /**
   * A symlink that names no blob (issue 16 item 2): ft-server follows none, so what it
   * points at is not part of the store. Named, because it may be a directory the operator
   * meant to be in the store (moved to another disk and linked back): the remedy is to put
   * that directory in its place before a repair removes the link (only the link: the
   * directory it points at is never read or touched).
   */
  const foreignLink = (where: string, target: string, lost: string): void => {
    notice({
      level: 'warn',
      code: 'FOREIGN_LINK',
      message: `${where} is a symlink to ${target}, which ft-server does not follow (${lost}): ${check ? 'a repair removes' : 'removed'} the link, never its target; to keep what it points at, move that into its place instead`,
    });
  };

  const progress = new PhaseProgressReporter(options);
  try {
    progress.start('ft-tmp', 'entries');
    report.tmpLeftovers = await clearTmp(layout.tmp, adopting ? ADOPT_DB : undefined, check);

    if (adopting) {
      progress.start('names', 'names');
      const renames = await renameDoubleEncoded(layout.links, {
        check,
        meta: check ? undefined : meta,
        tick: () => progress.tick(),
        signal,
        onConflict: (from, to) =>
          notice({
            level: 'warn',
            code: 'RENAME_CONFLICT',
            message: `not renaming ${path.relative(layout.root, from)}: ${path.relative(layout.root, to)} exists; it stays under its double-encoded name`,
          }),
      });
      report.renamedNames = renames.renamed;
      report.renameConflicts = renames.conflicts;
    }

    const tally = new DigestTally();
    progress.start('blobs', 'blobs');
    for await (const entry of walkTree(layout.blobs, signal)) {
      progress.tick();
      const [prefix, digest, ...rest] = entry.relative.split('/');
      if (
        rest.length === 0 &&
        digest !== undefined &&
        isDigest(digest) &&
        prefix === digest.slice(0, 2) &&
        entry.dirent.isFile()
      ) {
        tally.addBlob(digest);
      } else {
        report.strayFiles++;
        if (entry.dirent.isSymbolicLink()) {
          const target = await readlink(entry.absolute).catch(() => '?');
          foreignLink(`blobs/${entry.relative}`, target, 'blobs behind it are not in the store');
        }
        // rm of a symlink removes the link, never what it points at.
        if (!check) await rm(entry.absolute, { force: true });
      }
    }

    progress.start('links', 'links');
    await forEachBatched(
      walkTree(layout.links, signal),
      FS_BATCH,
      async (entry) => {
        progress.tick();
        const link = await judgeLink(entry.absolute, entry.relative, entry.dirent.isSymbolicLink());
        if (link === 'gone') return;
        if (link === 'non-link' || 'foreign' in link) {
          if (link === 'non-link') {
            report.nonLinks++;
          } else {
            report.danglingLinks++;
            foreignLink(
              `links/${entry.relative}`,
              link.foreign,
              'names under it are not files of the store',
            );
          }
          if (!check) await removeIfThere(entry.absolute);
          return;
        }
        if (!tally.addLink(link.digest)) {
          report.danglingLinks++;
          if (!check) await removeIfThere(entry.absolute);
          return;
        }
        report.links++;
        if (link.canonical !== undefined) {
          report.retargetedLinks++;
          if (!check) await retarget(entry.absolute, link.canonical, layout.tmp);
        }
      },
      signal,
    );
    if (report.retargetedLinks > 0 && !check) {
      // POSIX leaves it unspecified whether a listing shows an entry added while it runs, and
      // some file systems list a link replaced by rename again: count anew, changing nothing.
      progress.start('recount', 'links');
      tally.clearLinks();
      report.links = 0;
      await forEachBatched(
        walkTree(layout.links, signal),
        FS_BATCH,
        async (entry) => {
          progress.tick();
          const link = await judgeLink(
            entry.absolute,
            entry.relative,
            entry.dirent.isSymbolicLink(),
          );
          if (typeof link === 'object' && 'digest' in link && tally.addLink(link.digest)) {
            report.links++;
          }
        },
        signal,
      );
    }

    progress.start('records', 'blobs');
    await forEachBatched(
      tally.entries(),
      full ? INFLATE_BATCH : FS_BATCH,
      async ([digest, refs]) => {
        progress.tick();
        const file = blobPath(layout, digest);
        if (refs === 0) {
          report.orphanBlobs++;
          if (!check) {
            // Record first, as the server drops blobs: a crash leaves an orphan, not a record
            // of a missing file.
            if (meta && (await meta.getBlob(digest))) await meta.deleteBlob(digest);
            await rm(file, { force: true });
          }
          return;
        }
        report.blobs++;
        const record = await meta?.getBlob(digest);
        const wanted = await wantedRecord(file, digest, refs, record, full, signal, (why) => {
          report.corruptBlobs++;
          notice({
            level: 'error',
            code: 'CORRUPT_BLOB',
            message: `blob ${digest} is corrupt (${why}); left in place with its ${refs} link(s): restore the file from a backup or re-upload those names`,
          });
        });
        let changed = false;
        if (!record) {
          report.recordsAdded++;
          changed = true;
        } else {
          if (record.refs !== wanted.refs) {
            report.refcountsFixed++;
            changed = true;
          }
          if (
            record.storedSize !== wanted.storedSize ||
            record.logicalSize !== wanted.logicalSize
          ) {
            report.sizesFixed++;
            changed = true;
          }
        }
        if (changed && !check && meta) await meta.putBlob(digest, wanted);
      },
      signal,
    );

    if (meta) {
      progress.start('meta', 'records');
      for await (const [digest] of meta.blobs()) {
        signal?.throwIfAborted();
        progress.tick();
        if (tally.count(digest) !== undefined) continue;
        report.recordsDropped++;
        if (!check) await meta.deleteBlob(digest);
      }

      progress.start('tombstones', 'tombstones');
      for await (const [name] of meta.tombstones()) {
        progress.tick();
        report.tombstones++;
        if (options.purgeTombstones && !check) {
          await meta.deleteTombstone(name);
          report.tombstonesPurged++;
        }
      }
      if (adopting && !check) await clearRenameMarkers(meta);
    }
  } finally {
    progress.stop();
    await meta?.close();
  }
  if (adopting && !check) await rename(adoptPath, layout.meta);
  return report;
}

/**
 * The record a linked blob should have. Sizes: the file's size; the logical size from an
 * existing record, else from the gzip trailer when that is exact (see
 * {@link trailerLogicalSize}), else by decompressing; with `full`, always by decompressing,
 * and the content is hashed against the name.
 */
async function wantedRecord(
  file: string,
  digest: string,
  refs: number,
  record: BlobRecord | undefined,
  full: boolean,
  signal: AbortSignal | undefined,
  onCorrupt: (why: string) => void,
): Promise<BlobRecord> {
  if (record && !full) {
    const { size } = await stat(file);
    return { refs, logicalSize: record.logicalSize, storedSize: size };
  }
  const frame = await readGzipFrame(file);
  const fallback = record?.logicalSize ?? frame.isize ?? 0;
  if (!frame.isGzip) {
    onCorrupt('not gzip');
    return { refs, logicalSize: fallback, storedSize: frame.storedSize };
  }
  let logicalSize = full ? undefined : trailerLogicalSize(frame);
  if (logicalSize === undefined) {
    try {
      const inflated = await inflateBlob(file, {
        hash: full,
        storedSize: frame.storedSize,
        signal,
      });
      if (full && inflated.digest !== digest) {
        onCorrupt(`its content hashes to ${inflated.digest}`);
        return { refs, logicalSize: fallback, storedSize: frame.storedSize };
      }
      logicalSize = inflated.logicalSize;
    } catch (err) {
      signal?.throwIfAborted();
      onCorrupt(`cannot be decompressed: ${(err as Error).message}`);
      return { refs, logicalSize: fallback, storedSize: frame.storedSize };
    }
  }
  return { refs, logicalSize, storedSize: frame.storedSize };
}

/**
 * What a `links/` entry is: gone meanwhile, not a symlink, a symlink whose target names no
 * digest (`foreign`: a directory elsewhere, say), or a link to `digest` (with `canonical`
 * set when its target is not the canonical relative one).
 */
async function judgeLink(
  absolute: string,
  relative: string,
  isSymlink: boolean,
): Promise<
  'gone' | 'non-link' | { foreign: string } | { digest: string; canonical: string | undefined }
> {
  if (!isSymlink) return 'non-link';
  let target: string;
  try {
    target = await readlink(absolute);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw err;
  }
  const digest = digestOfTarget(target);
  if (digest === undefined) return { foreign: target };
  const canonical = linkTarget(relative.split('/'), digest);
  return { digest, canonical: target === canonical ? undefined : canonical };
}

async function openLocked(location: string, root: string): Promise<MetaDb> {
  try {
    return await MetaDb.open(location);
  } catch (err) {
    if (isLevelLocked(err)) {
      throw new RecoverError('LOCKED', inUseMessage(root, await lockHolder(location)), err);
    }
    throw err;
  }
}

/** Counts (and unless `check`, removes) what `ft-tmp/` holds, except `keep`. */
async function clearTmp(tmp: string, keep: string | undefined, check: boolean): Promise<number> {
  let handle;
  try {
    handle = await opendir(tmp);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  let n = 0;
  for await (const dirent of handle) {
    if (dirent.name === keep) continue;
    n++;
    if (!check) await rm(path.join(tmp, dirent.name), { recursive: true, force: true });
  }
  return n;
}

/**
 * Points a link at `target` atomically, keeping its mtime (the version): a new symlink is
 * made in `ft-tmp/`, given the old one's times, and renamed over it.
 */
async function retarget(link: string, target: string, tmpDir: string): Promise<void> {
  const st = await lstat(link);
  const tmp = await stageLink(tmpDir, target, st.mtime, st.atime);
  try {
    await rename(tmp, link);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
}

async function removeIfThere(p: string): Promise<void> {
  await unlink(p).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

async function isDirectory(p: string): Promise<boolean> {
  return stat(p).then(
    (st) => st.isDirectory(),
    () => false,
  );
}

/** Counts work per phase and reports it on a timer (not per item: millions of items). */
class PhaseProgressReporter {
  readonly #onProgress: ((p: RecoverProgress) => void) | undefined;
  readonly #timer: NodeJS.Timeout | undefined;
  #phase: RecoverPhase = 'ft-tmp';
  #unit = 'entries';
  #done = 0;
  #startedAt = Date.now();

  constructor(options: RecoverOptions) {
    this.#onProgress = options.onProgress;
    if (this.#onProgress) {
      this.#timer = setInterval(() => this.#report(), options.progressIntervalMs ?? 2000);
      this.#timer.unref();
    }
  }

  start(phase: RecoverPhase, unit: string): void {
    this.#phase = phase;
    this.#unit = unit;
    this.#done = 0;
    this.#startedAt = Date.now();
  }

  tick(): void {
    this.#done++;
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
  }

  #report(): void {
    const elapsedMs = Date.now() - this.#startedAt;
    this.#onProgress?.({
      phase: this.#phase,
      unit: this.#unit,
      done: this.#done,
      elapsedMs,
      ratePerSecond: elapsedMs > 0 ? Math.round((this.#done * 1000) / elapsedMs) : 0,
    });
  }
}
