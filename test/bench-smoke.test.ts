import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { REPO_ROOT } from './helpers/server.js';

const SECTIONS = [
  'Small-file GET',
  'Small-file PUT',
  'Large files',
  'ft-migrate',
  'Memory',
  'Scale-out (PostgreSQL + S3)',
];

/** The text of `## title` up to the next `## ` heading, or undefined. */
function sectionText(report: string, title: string): string | undefined {
  const start = report.indexOf(`\n## ${title}\n`);
  if (start < 0) return undefined;
  const next = report.indexOf('\n## ', start + 4);
  return report.slice(start, next < 0 ? undefined : next);
}

/** Whether a section has a table row holding a number (header separators aside). */
function hasNumberRow(text: string): boolean {
  return /^\|[^\n]*\d[^\n]*\|$/m.test(text.replace(/^\| --- .*$/gm, ''));
}

/** Processes whose command line mentions `dir` (what the bench started there). */
async function processesUsing(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes(dir)) found.push(`${pid}: ${cmd.replace(/\0/g, ' ')}`);
  }
  return found;
}

/**
 * Runs `node bench/dist/run.js --short --out FILE ...args` as a child process with TMPDIR
 * set to a fresh dir (every temp dir of the bench lands there, so leftovers are visible).
 */
async function runBench(
  t: TestContext,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stderr: string; report: string; tmp: string }> {
  const tmp = await mkdtemp(path.join(tmpdir(), 'ft-bench-smoke-'));
  t.after(() => rm(tmp, { recursive: true, force: true }));
  // The scale-out section's PostgreSQL runs as the postgres user, which must reach its data
  // dir in here: mkdtemp's 0700 would keep it out (as /tmp's 1777 does not).
  await chmod(tmp, 0o755);
  const out = path.join(tmp, 'BENCHMARKS.md');
  const child = spawn(
    process.execPath,
    [path.join(REPO_ROOT, 'bench/dist/run.js'), '--short', '--out', out, ...args],
    {
      cwd: REPO_ROOT,
      env: { ...process.env, ...env, TMPDIR: tmp },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.resume();
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  const report = await readFile(out, 'utf8').catch(() => '');
  return { code, stderr, report, tmp };
}

test(
  'bench --short writes every section with numbers (or a reason to skip it), and leaves no process or temp dir behind',
  { timeout: 600_000 },
  async (t) => {
    const { code, stderr, report, tmp } = await runBench(t, []);
    assert.equal(code, 0, `bench exited ${code}:\n${stderr.slice(-4000)}`);
    for (const title of SECTIONS) {
      const text = sectionText(report, title);
      assert.ok(text, `no "## ${title}" section`);
      const skippedWhole = /^- Skipped: the whole section: .+/m.test(text);
      assert.ok(
        skippedWhole || hasNumberRow(text),
        `section "${title}" has neither a table with numbers nor a reason to skip:\n${text}`,
      );
    }
    assert.match(report, /\| CPUs \(nproc\) \| \d+ \|/);
    assert.match(report, /\| node \| v\d+/);
    assert.match(report, /node bench\/dist\/run\.js --short/);
    assert.deepEqual(await readdir(tmp), ['BENCHMARKS.md'], 'temp files left behind');
    assert.deepEqual(await processesUsing(tmp), [], 'processes left running');
  },
);

test(
  'bench --short without lighttpd, wrk and curl says why it skips those comparisons and exits 0',
  { timeout: 300_000 },
  async (t) => {
    const { code, stderr, report, tmp } = await runBench(t, ['--only', 'get,put,large'], {
      BENCH_WITHOUT: 'lighttpd,wrk,curl',
    });
    assert.equal(code, 0, `bench exited ${code}:\n${stderr.slice(-4000)}`);
    for (const title of ['Small-file GET', 'Small-file PUT']) {
      assert.match(sectionText(report, title) ?? '', /- Skipped: the whole section: wrk /);
    }
    const large = sectionText(report, 'Large files') ?? '';
    assert.match(large, /- Skipped: .*lighttpd/);
    assert.ok(hasNumberRow(large), 'the upload figures need neither lighttpd nor curl');
    assert.match(stderr, /wrk is not installed/);
    assert.deepEqual(await readdir(tmp), ['BENCHMARKS.md'], 'temp files left behind');
    assert.deepEqual(await processesUsing(tmp), [], 'processes left running');
  },
);

test("the bench's peak-RSS hook reports the process's own peak, not the larger parent's it was forked from", async (t) => {
  const tmp = await mkdtemp(path.join(tmpdir(), 'ft-rss-hook-'));
  t.after(() => rm(tmp, { recursive: true, force: true }));
  const out = path.join(tmp, 'rss.json');
  // A parent far bigger than the child: Linux keeps the parent's high-water mark in the
  // child's ru_maxrss across the exec.
  const ballastMiB = 200;
  const parent = `
    const ballast = Buffer.alloc(${ballastMiB} * 1024 * 1024, 1);
    const r = require('node:child_process').spawnSync(process.execPath,
      ['--import', ${JSON.stringify(path.join(REPO_ROOT, 'bench/dist/child/rss-hook.js'))}, '-e', '0'],
      { env: { ...process.env, BENCH_RSS_OUT: ${JSON.stringify(out)} }, stdio: 'inherit' });
    if (r.status !== 0 || ballast[0] !== 1) process.exit(1);
  `;
  const code = await new Promise<number | null>((resolve) => {
    spawn(process.execPath, ['-e', parent], { stdio: 'inherit' }).once('close', resolve);
  });
  assert.equal(code, 0);
  const { maxRssKiB } = JSON.parse(await readFile(out, 'utf8')) as { maxRssKiB: number };
  assert.ok(maxRssKiB > 10 * 1024, `a node process uses more than 10 MiB (${maxRssKiB} KiB)`);
  assert.ok(
    maxRssKiB < ballastMiB * 1024,
    `the child's peak (${maxRssKiB} KiB) includes the parent's ${ballastMiB} MiB`,
  );
});
