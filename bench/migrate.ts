import { createHash } from 'node:crypto';
import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { runChild } from './children.js';
import { VERSION, type BenchContext } from './context.js';
import { writeLargeFile, writeSmallTree } from './data.js';
import { migrateNotReady, runMigrate, type MigrateRun } from './ft-migrate.js';
import { tempDir } from './lifecycle.js';
import { emptySection, type Section } from './report.js';
import { run } from './proc.js';
import { BINS, startFtServer } from './servers.js';
import { MiB, num, ratio } from './stats.js';

/** ft-migrate's -j when none is given: read from its --help (the source of truth). */
async function defaultJobs(): Promise<number | undefined> {
  const r = await run(process.execPath, [BINS.migrate, '--help']);
  const m = /-j, --concurrency <N>[\s\S]*?default:\s*(\d+)/.exec(r.stdout);
  return m ? Number(m[1]) : undefined;
}

/** ft-migrate's default gzip level, from its --help (6, the Python client's, if absent). */
async function defaultGzipLevel(): Promise<number> {
  const r = await run(process.execPath, [BINS.migrate, '--help']);
  const m = /--gzip-level <N>[\s\S]*?default:\s*(\d+)/.exec(r.stdout);
  return m ? Number(m[1]) : 6;
}

/**
 * Writes the files of `tree` as a pool for the bare store script (gzip -6 bodies); returns
 * its files and the tree's total size.
 */
async function poolOfTree(
  tree: string,
  names: string[],
  dir: string,
): Promise<{ index: string; bodies: string; logicalBytes: number }> {
  const index = path.join(dir, 'tree.idx');
  const bodies = path.join(dir, 'tree.bin');
  const out = await open(bodies, 'w');
  const lines: string[] = [];
  let offset = 0;
  let logicalBytes = 0;
  try {
    for (const name of names) {
      const data = await readFile(path.join(tree, name));
      logicalBytes += data.length;
      const gz = gzipSync(data, { level: 6 });
      await out.write(gz);
      const sha = createHash('sha256').update(data).digest('hex');
      lines.push(`/files/${name} ${sha} ${data.length} ${offset} ${gz.length}\n`);
      offset += gz.length;
    }
  } finally {
    await out.close();
  }
  await writeFile(index, lines.join(''));
  return { index, bodies, logicalBytes };
}

/** One ft-migrate run into a fresh ft-server whose store is in the temp dir (disk). */
async function migrateOnce(
  ctx: BenchContext,
  tree: string,
  work: string,
  tag: string,
  jobs: number | undefined,
): Promise<MigrateRun> {
  // The store is left to cleanup(), not removed here: see removeDir().
  const store = await tempDir('migrate-store');
  const ft = await startFtServer(store, path.join(work, `server-${tag}.log`));
  try {
    ctx.log(`migrate: ${tag}`);
    return await runMigrate(tree, ft.url, work, tag, jobs);
  } finally {
    await ft.stop();
  }
}

/**
 * ft-migrate on a tree of many small files and on a few large ones: files/s and MiB/s
 * against the limits of the same work (the bare store script; the gzip + SHA-256
 * pipeline), for several -j values and gzip levels, to choose the defaults.
 */
export async function benchMigrate(ctx: BenchContext): Promise<Section> {
  const { config } = ctx;
  const cfg = config.migrate;
  const section = emptySection('ft-migrate');
  const largeSize = `${cfg.largeBytes / MiB} MiB`;
  section.method.push(
    `Trees in the temp dir (disk): ${cfg.smallFiles} files of 1-10 KiB of contest-like ` +
      `text (100 per directory), and ${cfg.largeFiles} files of ${largeSize}. Each run: ` +
      '`ft-migrate TREE URL -s -j N --state FILE --report FILE` into a fresh ft-server ' +
      '(store in the temp dir); time from process start to exit, so startup and the walk ' +
      'count.',
    'Limits, measured in the same run: files/s of the bare write/fsync/rename script ' +
      `(see Small-file PUT; ${config.put.durationS} s) on the small tree\u2019s own gzip ` +
      'bodies at the same -j; MiB/s of ' +
      'the pipeline (one process reads, SHA-256s and gzips each file in turn, at the level ' +
      'shown).',
  );
  const notReady = await migrateNotReady();
  if (notReady) {
    section.skipped.push(`the whole section: ${notReady}`);
    return section;
  }
  // `work` (the trees) is left to cleanup(), like the stores: see removeDir().
  const work = await tempDir('migrate');
  const defJobs = await defaultJobs();
  const defLevel = await defaultGzipLevel();
  const levels = [...new Set([...cfg.gzipLevels, defLevel])].sort((a, b) => a - b);
  const jobs = [...new Set([...cfg.jobs, ...(defJobs !== undefined ? [defJobs] : [])])].sort(
    (a, b) => a - b,
  );

  // Small files.
  const small = path.join(work, 'small');
  ctx.log(`migrate: writing ${cfg.smallFiles} small files`);
  const names = await writeSmallTree(small, cfg.smallFiles, 1024, 10 * 1024, VERSION);
  const { logicalBytes: smallBytes, ...pool } = await poolOfTree(small, names, work);
  const rows: string[][] = [];
  const levelRows: string[][] = [];
  /** MiB/s of the pipeline at each level over `files`, with a row per level. */
  const pipelines = async (
    what: string,
    files: { listFile: string } | { files: string[] },
    count: number,
  ): Promise<Map<number, number>> => {
    const mibs = new Map<number, number>();
    for (const level of levels) {
      const p = await runChild<{ bytes: number; gzipBytes: number; ms: number }>('pipeline', {
        ...files,
        level,
      });
      mibs.set(level, p.bytes / MiB / (p.ms / 1000));
      levelRows.push([
        `${what}, level ${level}`,
        num(p.bytes / MiB / (p.ms / 1000)),
        num(count / (p.ms / 1000)),
        (p.bytes / p.gzipBytes).toFixed(2),
      ]);
    }
    return mibs;
  };
  const smallList = path.join(work, 'small.list');
  await writeFile(smallList, names.map((n) => `${path.join(small, n)}\n`).join(''));
  const smallPipe = await pipelines('small tree', { listFile: smallList }, names.length);
  for (const j of jobs) {
    const limit = await runChild<{ files: number; ms: number }>('put-limit', {
      dir: await tempDir('migrate-limit'),
      ...pool,
      concurrency: j,
      count: names.length,
      durationS: config.put.durationS,
      version: VERSION,
    });
    const limitFps = limit.files / (limit.ms / 1000);
    const r = await migrateOnce(ctx, small, work, `small-j${j}`, j);
    const fps = names.length / (r.ms / 1000);
    const mibs = smallBytes / MiB / (r.ms / 1000);
    const pipe = smallPipe.get(defLevel) ?? NaN;
    rows.push([
      `${cfg.smallFiles} small, -j ${j}${j === defJobs ? ' (default)' : ''}`,
      num(fps),
      num(limitFps),
      ratio(fps / limitFps),
      num(mibs),
      ratio(mibs / pipe),
      num(r.maxRssKiB / 1024),
      `${r.uploadedFiles}/${r.failedFiles}`,
    ]);
  }

  // Large files.
  const large = path.join(work, 'large');
  ctx.log(`migrate: writing ${cfg.largeFiles} files of ${largeSize}`);
  await mkdir(large);
  const largeFiles = Array.from({ length: cfg.largeFiles }, (_, i) =>
    path.join(large, `big${i}.bin`),
  );
  for (const f of largeFiles) await writeLargeFile(f, cfg.largeBytes);
  const largeBytes = cfg.largeFiles * cfg.largeBytes;
  const largePipe = await pipelines('large files', { files: largeFiles }, largeFiles.length);
  for (const j of cfg.largeJobs) {
    const r = await migrateOnce(ctx, large, work, `large-j${j}`, j);
    const mibs = largeBytes / MiB / (r.ms / 1000);
    const pipe = largePipe.get(defLevel) ?? NaN;
    rows.push([
      `${cfg.largeFiles} x ${largeSize}, -j ${j}`,
      num(cfg.largeFiles / (r.ms / 1000)),
      '',
      '',
      num(mibs),
      ratio(mibs / pipe),
      num(r.maxRssKiB / 1024),
      `${r.uploadedFiles}/${r.failedFiles}`,
    ]);
  }
  section.tables.push({
    caption: 'ft-migrate runs (one each)',
    head: [
      'tree, -j',
      'files/s',
      'bare store files/s (same -j)',
      'vs bare',
      'MiB/s',
      `vs pipeline (level ${defLevel}, ft-migrate's default)`,
      'peak RSS MiB',
      'uploaded/failed',
    ],
    rows,
  });
  section.tables.push({
    caption: 'Pipeline limit by gzip level (one process, files in turn)',
    head: ['tree, gzip level', 'MiB/s', 'files/s', 'compression ratio'],
    rows: levelRows,
  });
  return section;
}
