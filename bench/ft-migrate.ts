import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { CHILD_DIR } from './children.js';
import { run } from './proc.js';
import { BINS, shebangFlags } from './servers.js';

/**
 * Whether ft-migrate can be benchmarked: `ft-migrate --help` exits 0 (it is being
 * finished by a colleague). Returns undefined when ready, else the reason.
 */
export async function migrateNotReady(): Promise<string | undefined> {
  const r = await run(process.execPath, [BINS.migrate, '--help'], { timeoutMs: 30_000 });
  if (r.code === 0 && r.stdout.includes('Usage')) return undefined;
  const why = (r.stderr || r.stdout).trim().split('\n')[0] ?? '';
  return `ft-migrate is not ready (\`ft-migrate --help\` exited ${r.code}${why ? `: ${why}` : ''})`;
}

/** One ft-migrate run as measured from outside. */
export interface MigrateRun {
  ms: number;
  /** Peak RSS of the ft-migrate process (getrusage via child/rss-hook). */
  maxRssKiB: number;
  /** The JS heap (total) and Buffers (external) at the highest RSS sampled, MiB. */
  atPeak: { heapTotal: number; external: number } | undefined;
  uploadedFiles: number;
  uploadedBytes: number;
  failedFiles: number;
}

/**
 * `ft-migrate TREE URL -s -j N --state FILE --report FILE` (or with `{ into: DIR }`,
 * `ft-migrate TREE --into DIR ...`: no server) in its own process, with the node flags of
 * its `#!` line and a hook that records its peak RSS. Throws unless it exits 0.
 */
export async function runMigrate(
  tree: string,
  target: string | { into: string },
  workDir: string,
  tag: string,
  jobs?: number,
): Promise<MigrateRun> {
  const rssOut = path.join(workDir, `rss-${tag}.json`);
  const report = path.join(workDir, `report-${tag}.json`);
  const args = [
    ...shebangFlags(BINS.migrate),
    '--import',
    path.join(CHILD_DIR, 'rss-hook.js'),
    BINS.migrate,
    tree,
    ...(typeof target === 'string' ? [target] : ['--into', target.into]),
    '-s',
    '--state',
    path.join(workDir, `state-${tag}`),
    '--report',
    report,
    ...(jobs !== undefined ? ['-j', String(jobs)] : []),
  ];
  const r = await run(process.execPath, args, {
    cwd: workDir,
    env: { ...process.env, BENCH_RSS_OUT: rssOut, CI: '1' },
    timeoutMs: 1_800_000,
  });
  if (r.code !== 0) {
    throw new Error(`ft-migrate exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(-1000)}`);
  }
  const rss = JSON.parse(await readFile(rssOut, 'utf8')) as {
    maxRssKiB: number;
    atPeakMiB?: { heapTotal: number; external: number };
  };
  const rep = JSON.parse(await readFile(report, 'utf8')) as {
    uploaded?: { files?: number; bytes?: number };
    failed?: { files?: number };
  };
  return {
    ms: r.ms,
    maxRssKiB: rss.maxRssKiB,
    atPeak: rss.atPeakMiB,
    uploadedFiles: rep.uploaded?.files ?? NaN,
    uploadedBytes: rep.uploaded?.bytes ?? NaN,
    failedFiles: rep.failed?.files ?? NaN,
  };
}
