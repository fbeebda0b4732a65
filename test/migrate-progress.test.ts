import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile, symlink } from 'node:fs/promises';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { FiletrackerClient } from '@filetracker/shared-protocol';
import type { MigrationSummary } from '@filetracker/migrate';
import {
  makeFtRoot,
  runMigrate,
  smallTreeFiles,
  spawnMigrate,
  stateEntries,
  waitFor,
  type TreeFile,
} from './helpers/migrate-tree.js';
import { startServer, type TestServer } from './helpers/server.js';

/** Issue 17, item 3: what ft-migrate's plain lines (no terminal) say, against the summary. */

async function serverFor(t: TestContext): Promise<TestServer> {
  const server = await startServer();
  t.after(() => server.close());
  return server;
}

test('after Ctrl-C the last progress line counts what the summary counts, at the summary rate', async (t) => {
  const files = smallTreeFiles(1500);
  const ftRoot = await makeFtRoot(t, files, 'ft-migrate-progress-');
  const server = await serverFor(t);
  const statePath = path.join(ftRoot, 'state');
  const args = ['./files', server.url, '--state', statePath, '-j', '8'];
  const run = spawnMigrate([...args, '--progress-interval', '0.05', '--report', 'report.json'], {
    cwd: ftRoot,
  });
  await waitFor(async () => (await stateEntries(statePath)).length >= 100, 30_000, 'uploads');
  run.child.kill('SIGINT');
  const { code, stdout, stderr } = await run.done;
  assert.equal(code, 130, stderr);
  const report = JSON.parse(
    await readFile(path.join(ftRoot, 'report.json'), 'utf8'),
  ) as MigrationSummary;
  assert.equal(report.interrupted, true);

  const lines = stdout.trimEnd().split('\n');
  const summary = lines.at(-1)!;
  const last = lines.at(-2)!;
  assert.match(summary, /^ft-migrate: uploaded \d+ files/);
  const cut = report.skipped.byReason.interrupted;
  const finished = report.processed.files - cut;
  assert.ok(finished < files.length, 'stopped mid-run');
  const pct = Math.floor((finished / files.length) * 100);
  // The walk may still be counting when Ctrl-C comes (a slow machine): then the total is
  // a lower bound ("/≥N"), never a made-up figure, and no percentage is claimed.
  const total = /^ft-migrate: interrupted \d+\/(\d+ \(\d+%\)|≥(\d+)) files, /.exec(last);
  assert.ok(total, last);
  const counted = total[2] === undefined ? `${files.length} (${pct}%)` : `≥${total[2]}`;
  if (total[2] !== undefined) assert.ok(Number(total[2]) <= files.length, last);
  assert.ok(
    last.startsWith(`ft-migrate: interrupted ${finished}/${counted} files, `),
    `${last}\nafter ${report.processed.files} processed, ${cut} interrupted`,
  );
  assert.match(last, cut > 0 ? new RegExp(`, ${cut} interrupted, `) : /failed, \d+s elapsed$/);
  if (cut > 0) assert.match(summary, new RegExp(`\\b${cut} interrupted\\b`));
  // The same rates as the summary: its own words, "(R files/s, M MiB/s)".
  const rates = /\((\S+ files\/s, \S+ MiB\/s)\)/.exec(summary)![1]!;
  assert.ok(last.includes(`, ${rates} on average, `), `${last}\n${summary}`);
  assert.match(last, / 0 in flight, /);

  // The same command finishes the rest: the interrupted ones were not done.
  const rerun = await runMigrate(args, { cwd: ftRoot });
  assert.equal(rerun.code, 0, rerun.stderr);
  assert.match(rerun.stdout, /^ft-migrate: done 1500\/1500 \(100%\) files, /m);
});

test('versions are dates and one of a thing is singular wherever a person reads them', async (t) => {
  const files: TreeFile[] = [
    // 1_500_000_000 s: 2017-07-14T02:40:00Z.
    { name: 'a.txt', content: Buffer.from('a\n'), mtime: 1_500_000_000.25 },
    { name: 'b.txt', content: Buffer.from('b\n'), mtime: 1_500_000_000.5 },
  ];
  const ftRoot = await makeFtRoot(t, files, 'ft-migrate-progress-');
  const dir = path.join(ftRoot, 'files');
  await symlink('a.txt', path.join(dir, 'link'));
  execFileSync('mkfifo', [path.join(dir, 'fifo')]);
  const server = await serverFor(t);
  const client = new FiletrackerClient(server.url);
  t.after(() => client.close());
  // b.txt is newer on the server (1_600_000_000 s: 2020-09-13T12:26:40Z).
  await client.put('/b.txt', Buffer.from('newer\n'), { version: 1_600_000_000 });

  const dry = await runMigrate(['./files', server.url, '--dry-run', '--no-state'], {
    cwd: ftRoot,
  });
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /^would upload \/a\.txt \(2 bytes, version 2017-07-14T02:40:00Z\)$/m);
  assert.match(
    dry.stderr,
    /skipped .*b\.txt: the server has the newer version 2020-09-13T12:26:40Z$/m,
  );
  assert.doesNotMatch(`${dry.stdout}${dry.stderr}`, /1[56]00000000/, 'no raw epoch seconds');
  assert.match(
    dry.stdout,
    /would upload 1 file \(2 B\); skipped 3 \(1 newer on the server, 1 symlink, 1 special file\)/,
  );
});
