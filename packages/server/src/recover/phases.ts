import { lstat, opendir, readlink, rename, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { walkTree, type WalkEntry } from '@filetracker/runtime';
import { inflateBlob } from '../store/inflate.js';
import {
  blobPath,
  digestOfBlobEntry,
  digestOfTarget,
  linkTarget,
  type StoreLayout,
} from '../store/layout.js';
import { replaceLink } from '../store/link-tree.js';
import type { BlobRecord, MetaDb } from '../store/meta-db.js';
import { forEachBatched } from './batch.js';
import type { DigestTally } from './digest-tally.js';
import { readGzipFrame, trailerLogicalSize } from './gzip-size.js';
import type { PhaseProgressReporter } from './progress.js';
import type { RecoverNotice } from './recover.js';
import { renameDoubleEncoded } from './rename-names.js';
import type { RecoverReport } from './report.js';

/*
 * The phases of one ft-recover run, in the order recoverStore runs them. Each says what it
 * reads, what it writes (never with `check`: then it only counts) and what a crash (or a
 * Ctrl-C, which stops between two items) in it leaves; every such state is one the next run
 * repairs, so a rerun finishes the job.
 */

/** readlink/lstat/stat calls in flight at once: enough to hide the thread-pool round trip. */
const FS_BATCH = 64;
/** Blobs decompressed at once: libuv runs zlib on its 4 pool threads. */
const INFLATE_BATCH = 4;

/** What every phase of a run shares: the store, held locked, and where results go. */
export interface RecoveryRun {
  layout: StoreLayout;
  /** Change nothing; only count. */
  check: boolean;
  full: boolean;
  purgeTombstones: boolean;
  signal: AbortSignal | undefined;
  /**
   * The database held for the run: `meta/`, an adoption's, or none (a check of a store
   * without either).
   */
  meta: MetaDb | undefined;
  /** While adopting a store without `meta/`: the database being built, in `ft-tmp/`. */
  adoptPath: string | undefined;
  report: RecoverReport;
  progress: PhaseProgressReporter;
  notice(notice: RecoverNotice): void;
}

/**
 * Phase `ft-tmp`: empties `ft-tmp/`, where only a crash leaves anything (uploads and links in
 * flight, probes), except the database of an adoption in progress.
 * Reads: `ft-tmp/`'s entries. Writes: removes them; counts them in `tmpLeftovers`.
 * A crash leaves the ones not removed yet.
 */
export async function clearTmp(run: RecoveryRun): Promise<void> {
  run.progress.start('ft-tmp', 'entries');
  const keep = run.adoptPath === undefined ? undefined : path.basename(run.adoptPath);
  let handle;
  try {
    handle = await opendir(run.layout.tmp);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  for await (const dirent of handle) {
    if (dirent.name === keep) continue;
    run.report.tmpLeftovers++;
    if (!run.check) {
      await rm(path.join(run.layout.tmp, dirent.name), { recursive: true, force: true });
    }
  }
}

/**
 * Phase `names` (adopting only): renames the names the Python 2.x server stored
 * double-encoded to their real UTF-8 names (see rename-names.ts).
 * Reads: every directory under `links/`, and the adoption database's rename marks.
 * Writes: a mark of each new path in the adoption database, then the rename.
 * A crash leaves some names renamed, each marked, so the next run does not decode it again.
 */
export async function renameNames(run: RecoveryRun): Promise<void> {
  const { layout } = run;
  run.progress.start('names', 'names');
  const renames = await renameDoubleEncoded(layout.links, {
    check: run.check,
    meta: run.check ? undefined : run.meta,
    tick: () => run.progress.tick(),
    signal: run.signal,
    onConflict: (from, to) =>
      run.notice({
        level: 'warn',
        code: 'RENAME_CONFLICT',
        message: `not renaming ${path.relative(layout.root, from)}: ${path.relative(layout.root, to)} exists; it stays under its double-encoded name`,
      }),
  });
  run.report.renamedNames = renames.renamed;
  run.report.renameConflicts = renames.conflicts;
}

/**
 * Phase `blobs`: finds every blob file, each where blobPath puts its digest, into `tally`.
 * Reads: every entry under `blobs/` (following no symlink). Writes: removes anything else
 * there (`strayFiles`; of a symlink, the link only, never its target).
 * A crash leaves strays not removed yet; no blob file is touched.
 */
export async function scanBlobs(run: RecoveryRun, tally: DigestTally): Promise<void> {
  run.progress.start('blobs', 'blobs');
  for await (const entry of walkTree(run.layout.blobs, run.signal)) {
    run.progress.tick();
    const [prefix, name, ...rest] = entry.relative.split('/');
    const digest =
      rest.length === 0 && name !== undefined && entry.dirent.isFile()
        ? digestOfBlobEntry(prefix!, name)
        : undefined;
    if (digest !== undefined) {
      tally.addBlob(digest);
      continue;
    }
    run.report.strayFiles++;
    if (entry.dirent.isSymbolicLink()) {
      const target = await readlink(entry.absolute).catch(() => '?');
      foreignLink(run, `blobs/${entry.relative}`, target, 'blobs behind it are not in the store');
    }
    // rm of a symlink removes the link, never what it points at.
    if (!run.check) await rm(entry.absolute, { force: true });
  }
}

/**
 * Phase `links`: counts every link to a blob found into `tally`, judging a link by the digest
 * its target names.
 * Reads: every entry under `links/` and each link's target. Writes: removes what is not a
 * link (`nonLinks`), links naming no blob of the store (`danglingLinks`, foreign ones with a
 * warning); points a link whose target is not the canonical relative one at it, keeping its
 * times (`retargetedLinks`, by the store's atomic link replace).
 * A crash leaves some links removed or retargeted, each whole (the old link or the new one),
 * and at most a staged link in `ft-tmp/`; blobs and records are untouched yet.
 */
export async function scanLinks(run: RecoveryRun, tally: DigestTally): Promise<void> {
  const { report, check } = run;
  run.progress.start('links', 'links');
  await forEachLink(run, async (entry, link) => {
    if (link === 'gone') return;
    if (link === 'non-link' || 'foreign' in link) {
      if (link === 'non-link') {
        report.nonLinks++;
      } else {
        report.danglingLinks++;
        const lost = 'names under it are not files of the store';
        foreignLink(run, `links/${entry.relative}`, link.foreign, lost);
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
      if (!check) await retarget(entry.absolute, link.canonical, run.layout.tmp);
    }
  });
}

/**
 * Phase `recount`, after links were retargeted: POSIX leaves it unspecified whether a listing
 * shows an entry added while it runs, and some file systems list a link replaced by rename
 * again, so the links are counted anew into `tally`.
 * Reads: every entry under `links/` and each link's target. Writes: nothing.
 */
export async function recountLinks(run: RecoveryRun, tally: DigestTally): Promise<void> {
  if (run.report.retargetedLinks === 0 || run.check) return;
  run.progress.start('recount', 'links');
  tally.clearLinks();
  run.report.links = 0;
  await forEachLink(run, (_, link) => {
    if (typeof link === 'object' && 'digest' in link && tally.addLink(link.digest)) {
      run.report.links++;
    }
  });
}

/**
 * Phase `records`: gives every blob found the record its links call for, and removes the
 * blobs no link uses.
 * Reads: each blob's record and file (its size and gzip frame; with `full`, its whole
 * content, hashed against its name). Writes: for an unlinked blob (`orphanBlobs`) its record
 * is dropped, then the file; a linked blob's record is added (`recordsAdded`) or its
 * refcount (`refcountsFixed`) or sizes (`sizesFixed`) set, one put each. A corrupt blob is
 * reported and keeps its links.
 * A crash leaves records partly fixed and at most one orphan without its record (the server
 * drops blobs in that order too): never a record of a missing file.
 */
export async function reconcileRecords(run: RecoveryRun, tally: DigestTally): Promise<void> {
  const { report, check, meta } = run;
  run.progress.start('records', 'blobs');
  await forEachBatched(
    tally.entries(),
    run.full ? INFLATE_BATCH : FS_BATCH,
    async ([digest, refs]) => {
      run.progress.tick();
      const file = blobPath(run.layout, digest);
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
      const wanted = await wantedRecord(file, digest, refs, record, run.full, run.signal, (why) => {
        report.corruptBlobs++;
        run.notice({
          level: 'error',
          code: 'CORRUPT_BLOB',
          message: `blob ${digest} is corrupt (${why}); left in place with its ${refs} link(s): restore the file from a backup or re-upload those names`,
        });
      });
      if (countFixes(report, record, wanted) && !check && meta) {
        await meta.putBlob(digest, wanted);
      }
    },
    run.signal,
  );
}

/** Counts in `report` what setting `record` to `wanted` fixes; whether it fixes anything. */
function countFixes(
  report: RecoverReport,
  record: BlobRecord | undefined,
  wanted: BlobRecord,
): boolean {
  if (!record) {
    report.recordsAdded++;
    return true;
  }
  const refs = record.refs !== wanted.refs;
  const sizes =
    record.storedSize !== wanted.storedSize || record.logicalSize !== wanted.logicalSize;
  if (refs) report.refcountsFixed++;
  if (sizes) report.sizesFixed++;
  return refs || sizes;
}

/**
 * Phase `meta`: drops the records of digests whose blob file is gone (`recordsDropped`).
 * Reads: every record key. Writes: deletes those records.
 * A crash leaves some of them, for the next run.
 */
export async function dropStaleRecords(
  run: RecoveryRun,
  meta: MetaDb,
  tally: DigestTally,
): Promise<void> {
  run.progress.start('meta', 'records');
  for await (const [digest] of meta.blobs()) {
    run.signal?.throwIfAborted();
    run.progress.tick();
    if (tally.count(digest) !== undefined) continue;
    run.report.recordsDropped++;
    if (!run.check) await meta.deleteBlob(digest);
  }
}

/**
 * Phase `tombstones`: counts the tombstones (`tombstones`) and, with `purgeTombstones`,
 * removes them (`tombstonesPurged`).
 * Reads: every tombstone. Writes: deletes each, when purging.
 * A crash leaves the ones not removed yet: a rerun with the flag removes them. Also run on
 * a scale-out store (its MetadataStore has the same two calls).
 */
export async function countTombstones(
  run: Pick<RecoveryRun, 'progress' | 'report' | 'check' | 'purgeTombstones'>,
  meta: Pick<MetaDb, 'tombstones' | 'deleteTombstone'>,
): Promise<void> {
  run.progress.start('tombstones', 'tombstones');
  for await (const [name] of meta.tombstones()) {
    run.progress.tick();
    run.report.tombstones++;
    if (run.purgeTombstones && !run.check) {
      await meta.deleteTombstone(name);
      run.report.tombstonesPurged++;
    }
  }
}

/**
 * A symlink that names no blob (issue 16 item 2): ft-server follows none, so what it
 * points at is not part of the store. Named, because it may be a directory the operator
 * meant to be in the store (moved to another disk and linked back): the remedy is to put
 * that directory in its place before a repair removes the link (only the link: the
 * directory it points at is never read or touched).
 */
function foreignLink(run: RecoveryRun, where: string, target: string, lost: string): void {
  run.notice({
    level: 'warn',
    code: 'FOREIGN_LINK',
    message: `${where} is a symlink to ${target}, which ft-server does not follow (${lost}): ${run.check ? 'a repair removes' : 'removed'} the link, never its target; to keep what it points at, move that into its place instead`,
  });
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
 * Runs `fn` on every entry under `links/` (following no symlink) with what it is, a batch of
 * {@link FS_BATCH} at a time, counting each for the progress line.
 */
async function forEachLink(
  run: RecoveryRun,
  fn: (entry: WalkEntry, link: JudgedLink) => Promise<void> | void,
): Promise<void> {
  await forEachBatched(
    walkTree(run.layout.links, run.signal),
    FS_BATCH,
    async (entry) => {
      run.progress.tick();
      await fn(
        entry,
        await judgeLink(entry.absolute, entry.relative, entry.dirent.isSymbolicLink()),
      );
    },
    run.signal,
  );
}

/**
 * What a `links/` entry is: gone meanwhile, not a symlink, a symlink whose target names no
 * digest (`foreign`: a directory elsewhere, say), or a link to `digest` (with `canonical`
 * set when its target is not the canonical relative one).
 */
type JudgedLink =
  'gone' | 'non-link' | { foreign: string } | { digest: string; canonical: string | undefined };

/** Judges a `links/` entry by the digest its target names (the basename, as ft-server reads it). */
async function judgeLink(
  absolute: string,
  relative: string,
  isSymlink: boolean,
): Promise<JudgedLink> {
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

/** Points a link at `target` by the store's atomic replace, keeping its times (the version). */
async function retarget(link: string, target: string, tmpDir: string): Promise<void> {
  const st = await lstat(link);
  await replaceLink(tmpDir, target, st, (staged) => rename(staged, link));
}

async function removeIfThere(p: string): Promise<void> {
  await unlink(p).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}
