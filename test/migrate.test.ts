import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { FiletrackerClient } from '@filetracker/shared-protocol';
import type { MigrationSummary } from '@filetracker/migrate';
import { startLegacy } from './helpers/legacy-static.js';
import { startFaultyProxy } from './helpers/migrate-proxy.js';
import {
  defaultStateFiles,
  legacyTreeFiles,
  runMigrate,
  smallTreeFiles,
  spawnMigrate,
  stateEntries,
  versionOf,
  waitFor,
  makeFtRoot,
  type TreeFile,
} from './helpers/migrate-tree.js';
import { startProcess, startServer, tempDir, type TestServer } from './helpers/server.js';

type Report = MigrationSummary & { url: string; statePath: string | null };

async function serverFor(t: TestContext): Promise<TestServer> {
  const server = await startServer();
  t.after(() => server.close());
  return server;
}

function clientFor(t: TestContext, url: string): FiletrackerClient {
  const client = new FiletrackerClient(url);
  t.after(() => client.close());
  return client;
}

async function listAll(client: FiletrackerClient): Promise<string[]> {
  const names: string[] = [];
  // A cutoff far ahead: versions are old mtimes, but be sure nothing is hidden.
  for await (const name of client.list('/', 4_000_000_000)) names.push(`/${name}`);
  return names.sort();
}

async function assertOnServer(client: FiletrackerClient, files: readonly TreeFile[], prefix = '/') {
  for (const file of files) {
    const name = `${prefix}${file.name}`;
    const { data, version } = await client.getBuffer(name);
    assert.equal(version, versionOf(file), `version of ${name}`);
    assert.ok(data.equals(file.content), `content of ${name}`);
  }
}

async function readReport(file: string): Promise<Report> {
  return JSON.parse(await readFile(file, 'utf8')) as Report;
}

test('migrates a 1.x tree into a running ft-server process: every file with its bytes and mtime as version', async (t) => {
  const files = legacyTreeFiles();
  const ftRoot = await makeFtRoot(t, files);
  const storeDir = await tempDir('ft-migrate-store-');
  const server = await startProcess('packages/server/bin/ft-server.mjs', [
    '-d',
    storeDir,
    '-p',
    '0',
  ]);
  t.after(async () => {
    await server.stop();
    await rm(storeDir, { recursive: true, force: true });
  });

  // The seed's procedure: inside ft_root, `ft-migrate ./files URL`.
  const run = await runMigrate(['./files', server.url, '--report', 'report.json'], { cwd: ftRoot });
  assert.equal(run.code, 0, run.stderr);

  const client = clientFor(t, server.url);
  assert.deepEqual(await listAll(client), files.map((f) => `/${f.name}`).sort());
  await assertOnServer(client, files);
  const report = await readReport(path.join(ftRoot, 'report.json'));
  assert.equal(report.uploaded.files, files.length);
  assert.equal(
    report.uploaded.bytes,
    files.reduce((sum, f) => sum + f.content.length, 0),
  );
  assert.equal(report.failed.files, 0);
  assert.equal(report.interrupted, false);
  assert.ok(report.throughput.filesPerSecond > 0);
  assert.ok(report.durationMs >= 0);

  // The same command again: everything is finished already, nothing is uploaded.
  const again = await runMigrate(['./files', server.url, '--report', 'report.json'], {
    cwd: ftRoot,
  });
  assert.equal(again.code, 0, again.stderr);
  const second = await readReport(path.join(ftRoot, 'report.json'));
  assert.equal(second.uploaded.files, 0);
  assert.equal(second.skipped.byReason['already-done'], files.length);
});

test('--root (and its prefix --ro): names are relative to the root when FILES is a subdirectory; a single FILE is named relative to its directory', async (t) => {
  const files = legacyTreeFiles().filter((f) => f.content.length < 1024);
  const ftRoot = await makeFtRoot(t, files);
  const server = await serverFor(t);
  const client = clientFor(t, server.url);

  const run = await runMigrate(
    [path.join(ftRoot, 'files/problems'), server.url, '--ro', path.join(ftRoot, 'files'), '--sil'],
    { cwd: ftRoot },
  );
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout, '', '--silent prints nothing on success');
  const underProblems = files.filter((f) => f.name.startsWith('problems/'));
  assert.deepEqual(await listAll(client), underProblems.map((f) => `/${f.name}`).sort());
  await assertOnServer(client, underProblems);

  const single = files.find((f) => f.name === 'dir one/zażółć gęślą.txt')!;
  const one = await runMigrate(['files/dir one/zażółć gęślą.txt', server.url, '--no-state'], {
    cwd: ftRoot,
  });
  assert.equal(one.code, 0, one.stderr);
  const { data, version } = await client.getBuffer('/zażółć gęślą.txt');
  assert.ok(data.equals(single.content));
  assert.equal(version, versionOf(single));

  // FILES outside --root: a setup that cannot work (exit 1), found once the line is parsed.
  const outside = await runMigrate(['files', server.url, '--root', 'files/problems'], {
    cwd: ftRoot,
  });
  assert.equal(outside.code, 1);
});

test('resumes after kill -9: the rerun with the same --state skips what was finished and uploads the rest', async (t) => {
  const files = smallTreeFiles(2000);
  const ftRoot = await makeFtRoot(t, files);
  const server = await serverFor(t);
  const statePath = path.join(ftRoot, 'state');
  const args = ['./files', server.url, '--state', statePath, '-j', '4'];

  const first = spawnMigrate(args, { cwd: ftRoot });
  await waitFor(async () => (await stateEntries(statePath)).length >= 100, 30_000, 'uploads');
  first.child.kill('SIGKILL');
  const killed = await first.done;
  assert.equal(killed.signal, 'SIGKILL');
  const finished = await stateEntries(statePath);
  assert.ok(finished.length < files.length, 'killed mid-run');

  const rerun = await runMigrate([...args, '--report', 'report.json'], { cwd: ftRoot });
  assert.equal(rerun.code, 0, rerun.stderr);
  const report = await readReport(path.join(ftRoot, 'report.json'));
  assert.equal(report.skipped.byReason['already-done'], finished.length);
  assert.equal(report.uploaded.files, files.length - finished.length);
  assert.equal(report.skipped.files, finished.length);
  assert.equal(report.failed.files, 0);

  const client = clientFor(t, server.url);
  assert.equal((await listAll(client)).length, files.length);
  await assertOnServer(
    client,
    files.filter((_, i) => i % 97 === 0),
  );
});

test('Ctrl-C (SIGINT) stops cleanly: exit 130, a summary, the state saved; the same command finishes', async (t) => {
  const files = smallTreeFiles(1500);
  const ftRoot = await makeFtRoot(t, files);
  const server = await serverFor(t);
  const statePath = path.join(ftRoot, 'state');
  const args = ['./files', server.url, '--state', statePath, '-j', '4', '--report', 'report.json'];

  const first = spawnMigrate(args, { cwd: ftRoot });
  await waitFor(async () => (await stateEntries(statePath)).length >= 50, 30_000, 'uploads');
  first.child.kill('SIGINT');
  const stopped = await first.done;
  assert.equal(stopped.code, 130, stopped.stderr);
  assert.match(stopped.stdout, /^ft-migrate: uploaded \d+ files/m);
  assert.match(stopped.stderr, /stopped early/);
  const report = await readReport(path.join(ftRoot, 'report.json'));
  assert.equal(report.interrupted, true);
  const saved = await stateEntries(statePath);
  // Every upload the server acknowledged was recorded before exiting.
  assert.equal(saved.length, report.uploaded.files);

  const rerun = await runMigrate(args, { cwd: ftRoot });
  assert.equal(rerun.code, 0, rerun.stderr);
  const final = await readReport(path.join(ftRoot, 'report.json'));
  assert.equal(final.skipped.byReason['already-done'], saved.length);
  assert.equal(final.uploaded.files, files.length - saved.length);
});

test('a flaky server: 503s are retried with backoff, a 400 is reported once and not retried, the run goes on and exits 1', async (t) => {
  const small = smallTreeFiles(30, 'flaky');
  const flaky = new Set(small.filter((_, i) => i % 3 === 0).map((f) => `/${f.name}`));
  const files = [
    ...small,
    { name: 'forbidden.txt', content: Buffer.from('no\n'), mtime: 1_600_000_000 },
  ];
  const ftRoot = await makeFtRoot(t, files);
  const server = await serverFor(t);
  const proxy = await startFaultyProxy(server.url, ({ method, name, attempt }) => {
    if (method !== 'PUT') return undefined;
    if (name === '/forbidden.txt') return 400;
    return flaky.has(name) && attempt === 1 ? 503 : undefined;
  });
  t.after(() => proxy.close());

  const run = await runMigrate(['./files', proxy.url, '--report', 'report.json', '-j', '4'], {
    cwd: ftRoot,
  });
  assert.equal(run.code, 1, run.stderr);
  assert.match(run.stderr, /FAILED .*forbidden\.txt/);
  const report = await readReport(path.join(ftRoot, 'report.json'));
  assert.equal(report.failed.files, 1);
  assert.equal(report.failures[0]!.name, '/forbidden.txt');
  assert.equal(report.failures[0]!.status, 400);
  assert.equal(report.retries, flaky.size);
  assert.equal(report.uploaded.files, files.length - 1);
  assert.equal(proxy.attempts.get('PUT /forbidden.txt'), 1, '4xx is not retried');
  for (const name of flaky) assert.equal(proxy.attempts.get(`PUT ${name}`), 2, name);

  const client = clientFor(t, server.url);
  await assertOnServer(
    client,
    files.filter((f) => f.name !== 'forbidden.txt'),
  );
  assert.equal(await client.stat('/forbidden.txt'), null);
});

test('--dry-run uploads nothing and lists what it would upload, with totals', async (t) => {
  const files = legacyTreeFiles().filter((f) => f.content.length < 1024);
  const ftRoot = await makeFtRoot(t, files);
  const server = await serverFor(t);

  const run = await runMigrate(['./files', server.url, '--dry-run', '--report', 'report.json'], {
    cwd: ftRoot,
  });
  assert.equal(run.code, 0, run.stderr);
  for (const file of files) {
    assert.ok(run.stdout.includes(`would upload /${file.name} (`), file.name);
  }
  assert.match(run.stdout, new RegExp(`dry run: would upload ${files.length} files`));
  const report = await readReport(path.join(ftRoot, 'report.json'));
  assert.equal(report.wouldUpload.files, files.length);
  assert.equal(report.uploaded.files, 0);
  const client = clientFor(t, server.url);
  assert.deepEqual(await listAll(client), []);
  // A dry run keeps no state either.
  assert.deepEqual(
    (await readdir(ftRoot)).filter((n) => n.startsWith('.ft-migrate-state')),
    [],
  );
  assert.deepEqual(await defaultStateFiles(ftRoot), []);
});

test('upload, --verify and --verify=digest over 150 files leave no abort listener behind (no MaxListenersExceededWarning, issue 18)', async (t) => {
  // Every request of a run shares one AbortSignal, allowed 4 × concurrency + 16 listeners
  // (80 at the default 16): a listener left per file warns well before 150 files.
  const files = smallTreeFiles(150, 'leak');
  const ftRoot = await makeFtRoot(t, files);
  const server = await serverFor(t);
  for (const args of [[], ['--verify'], ['--verify=digest']]) {
    const run = await runMigrate(['./files', server.url, ...args], { cwd: ftRoot });
    assert.equal(run.code, 0, `${args.join(' ')}: ${run.stdout}${run.stderr}`);
    assert.doesNotMatch(run.stderr, /MaxListenersExceededWarning/, args.join(' '));
    assert.doesNotMatch(run.stderr, /Warning/, args.join(' '));
  }
});

test('--verify finds a file changed on the server (exit 1); --verify=digest finds same-size content changes', async (t) => {
  const files = legacyTreeFiles().filter((f) => f.content.length < 1024);
  const ftRoot = await makeFtRoot(t, files);
  const server = await serverFor(t);
  const client = clientFor(t, server.url);
  assert.equal((await runMigrate(['./files', server.url], { cwd: ftRoot })).code, 0);

  const clean = await runMigrate(['./files', server.url, '--verify=digest'], { cwd: ftRoot });
  assert.equal(clean.code, 0, clean.stdout + clean.stderr);

  // Same version, same size, other bytes: only a digest check sees it.
  const plain = files.find((f) => f.name === 'plain.txt')!;
  const forged = Buffer.from(plain.content.toString().toUpperCase());
  assert.equal(forged.length, plain.content.length);
  await client.put('/plain.txt', forged, { version: versionOf(plain) });
  const byStat = await runMigrate(['./files', server.url, '--verify'], { cwd: ftRoot });
  assert.equal(byStat.code, 0, byStat.stdout);
  const byDigest = await runMigrate(
    ['./files', server.url, '--verify=digest', '--report', 'report.json'],
    { cwd: ftRoot },
  );
  assert.equal(byDigest.code, 1);
  assert.match(byDigest.stdout, /DIFFERS \/plain\.txt .*content differs/);
  const report = await readReport(path.join(ftRoot, 'report.json'));
  assert.deepEqual(
    report.differences.map((d) => [d.name, d.kind]),
    [['/plain.txt', 'content']],
  );

  // A newer version PUT directly: --verify reports it.
  const spaced = files.find((f) => f.name === 'sp ace.txt')!;
  await client.put('/sp ace.txt', Buffer.from('rewritten\n'), { version: versionOf(spaced) + 60 });
  const newer = await runMigrate(['./files', server.url, '--verify', '--report', 'report.json'], {
    cwd: ftRoot,
  });
  assert.equal(newer.code, 1);
  assert.match(newer.stdout, /DIFFERS \/sp ace\.txt .*version/);
  const second = await readReport(path.join(ftRoot, 'report.json'));
  assert.deepEqual(
    second.differences.map((d) => [d.name, d.kind]),
    [['/sp ace.txt', 'version']],
  );
  assert.equal(second.verified.files, files.length - 1);
});

test('a name a client deleted during an online migration is skipped as "deleted on the server", not failed: exit 0', async (t) => {
  // Issue 16, item 9: the server refuses the migrator's copy of a tombstoned name with 410
  // DELETED (it used to answer 200, and ft-migrate counted the file as uploaded).
  const files = smallTreeFiles(6, 'online');
  const ftRoot = await makeFtRoot(t, files);
  const legacy = await startLegacy(['--root', ftRoot, '--port', '0']);
  t.after(() => legacy.kill());
  const server = await startServer({ fallbackUrl: legacy.url });
  t.after(() => server.close());
  const client = clientFor(t, server.url);
  const gone = files[2]!;
  await client.delete(`/${gone.name}`);

  const run = await runMigrate(['./files', server.url, '--report', 'report.json'], {
    cwd: ftRoot,
  });
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /uploaded 5 files .*skipped 1 \(1 deleted on the server\); 0 failed/);
  assert.match(run.stderr, new RegExp(`skipped .*${gone.name}: deleted on the server`));
  const report = await readReport(path.join(ftRoot, 'report.json'));
  assert.equal(report.uploaded.files, files.length - 1);
  assert.equal(report.failed.files, 0);
  assert.equal(report.skipped.byReason['deleted-on-server'], 1);
  assert.deepEqual(
    report.skippedFiles.map((f) => [f.name, f.reason]),
    [[`/${gone.name}`, 'deleted-on-server']],
  );
  assert.equal(await client.stat(`/${gone.name}`), null);
  await assertOnServer(
    client,
    files.filter((f) => f !== gone),
  );

  // Finished: the same command again uploads nothing and fails nothing.
  const again = await runMigrate(['./files', server.url, '--report', 'report.json'], {
    cwd: ftRoot,
  });
  assert.equal(again.code, 0, again.stderr);
  assert.equal(
    (await readReport(path.join(ftRoot, 'report.json'))).skipped.byReason['already-done'],
    files.length,
  );
});

test('without a terminal the progress is plain lines every --progress-interval, with no escape codes', async (t) => {
  const files = smallTreeFiles(400);
  const ftRoot = await makeFtRoot(t, files);
  const server = await serverFor(t);

  const run = await runMigrate(['./files', server.url, '-j', '2', '--progress-interval', '0.05'], {
    cwd: ftRoot,
    env: { CI: '1' },
  });
  assert.equal(run.code, 0, run.stderr);
  assert.ok(!run.stdout.includes('\x1b['), 'no escape codes on stdout');
  assert.ok(!run.stderr.includes('\x1b['), 'no escape codes on stderr');
  const lines = run.stdout.trimEnd().split('\n');
  assert.ok(
    lines.some((l) => /^ft-migrate: uploading \d+\/\S+ .*files\/s/.test(l)),
    run.stdout,
  );
  for (const line of lines) assert.match(line, /^ft-migrate: /);
  assert.match(lines.at(-1)!, /^ft-migrate: uploaded 400 files/);
});

test('symlinks and a FIFO are reported and skipped without crashing; --follow-symlinks uploads link targets', async (t) => {
  const files = legacyTreeFiles().filter((f) => f.content.length < 1024);
  const ftRoot = await makeFtRoot(t, files);
  const dir = path.join(ftRoot, 'files');
  await symlink('plain.txt', path.join(dir, 'link-to-file'));
  await symlink('problems', path.join(dir, 'link-to-dir'));
  await symlink('nowhere', path.join(dir, 'dangling'));
  execFileSync('mkfifo', [path.join(dir, 'problems/a-fifo')]);
  const server = await serverFor(t);
  const client = clientFor(t, server.url);

  const run = await runMigrate(['./files', server.url, '--report', 'report.json'], { cwd: ftRoot });
  assert.equal(run.code, 0, run.stderr);
  for (const name of ['link-to-file', 'link-to-dir', 'dangling', 'a-fifo']) {
    assert.match(run.stderr, new RegExp(`skipped .*${name}: `), name);
  }
  const report = await readReport(path.join(ftRoot, 'report.json'));
  assert.equal(report.skipped.byReason.symlink, 3);
  assert.equal(report.skipped.byReason.special, 1);
  assert.deepEqual(report.skippedFiles.map((s) => s.name).sort(), [
    '/dangling',
    '/link-to-dir',
    '/link-to-file',
    '/problems/a-fifo',
  ]);
  assert.deepEqual(await listAll(client), files.map((f) => `/${f.name}`).sort());

  const follow = await runMigrate(
    ['./files', server.url, '--follow-symlinks', '--no-state', '--report', 'report.json'],
    { cwd: ftRoot },
  );
  assert.equal(follow.code, 1, 'the dangling symlink fails');
  const followed = await readReport(path.join(ftRoot, 'report.json'));
  assert.deepEqual(
    followed.failures.map((f) => [f.name, f.code]),
    [['/dangling', 'BROKEN_SYMLINK']],
  );
  assert.equal(followed.uploaded.files, 1);
  const plain = files.find((f) => f.name === 'plain.txt')!;
  const { data, version } = await client.getBuffer('/link-to-file');
  assert.ok(data.equals(plain.content));
  assert.equal(version, versionOf(plain));
  assert.equal(await client.stat('/link-to-dir'), null);
});

test('a setup that cannot work says what failed on one line and exits 1; a bad command line exits 2; --help explains every option', async (t) => {
  const ftRoot = await makeFtRoot(t, smallTreeFiles(3));
  const server = await serverFor(t);

  const unreachable = await runMigrate(['./files', 'http://127.0.0.1:1'], { cwd: ftRoot });
  assert.equal(unreachable.code, 1);
  assert.match(unreachable.stderr, /^ft-migrate: Cannot reach the filetracker server at .*\n$/);

  const missing = await runMigrate(['./nothing-here', server.url], { cwd: ftRoot });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^ft-migrate: FILES \.\/nothing-here does not exist: .*\n$/);

  assert.equal((await runMigrate(['./files'], { cwd: ftRoot })).code, 2);
  assert.equal((await runMigrate(['./files', server.url, '-j', 'x'], { cwd: ftRoot })).code, 2);
  assert.equal((await runMigrate(['./files', 'ftp://x'], { cwd: ftRoot })).code, 2);

  // A state file of another migration is refused rather than trusted.
  const statePath = path.join(ftRoot, 'state');
  await writeFile(
    statePath,
    `${JSON.stringify({ ftMigrateState: 1, url: 'http://elsewhere', root: '/x' })}\n`,
  );
  const mismatch = await runMigrate(['./files', server.url, '--state', statePath], { cwd: ftRoot });
  assert.equal(mismatch.code, 1);
  assert.match(mismatch.stderr, /belongs to a migration/);

  const help = await runMigrate(['--help']);
  assert.equal(help.code, 0);
  for (const option of [
    '--root',
    '--silent',
    '--concurrency',
    '--retries',
    '--state',
    '--no-state',
    '--dry-run',
    '--verify',
    '--report',
    '--follow-symlinks',
    '--progress-interval',
  ]) {
    assert.ok(help.stdout.includes(option), option);
  }
});

/** ft-server as a process on `port` (0: any) over `dir`, stopped after the test. */
async function serverProcess(
  t: TestContext,
  dir: string,
  port: number,
  extra: string[] = [],
): Promise<{ url: string; port: number; stop(): Promise<number | null> }> {
  const server = await startProcess('packages/server/bin/ft-server.mjs', [
    '-d',
    dir,
    '-p',
    String(port),
    ...extra,
  ]);
  t.after(() => server.stop());
  return { url: server.url, port: Number(new URL(server.url).port), stop: () => server.stop() };
}

test('a rehearsal state file does not skip files of another store: the real migration to the same URL uploads everything (issue 18)', async (t) => {
  const files = smallTreeFiles(60, 'rehearsal');
  const ftRoot = await makeFtRoot(t, files);
  const rehearsalStore = await tempDir('ft-migrate-rehearsal-');
  const realStore = await tempDir('ft-migrate-real-');
  t.after(() =>
    Promise.all([rehearsalStore, realStore].map((d) => rm(d, { recursive: true, force: true }))),
  );

  // The rehearsal: migrate into ft_root_v2, then stop that server.
  const rehearsal = await serverProcess(t, rehearsalStore, 0);
  const first = await runMigrate(['./files', rehearsal.url], { cwd: ftRoot });
  assert.equal(first.code, 0, first.stderr);
  assert.equal(await rehearsal.stop(), 0);

  // The guide verbatim: another store on the same port, the same command, so the same
  // default state file.
  const real = await serverProcess(t, realStore, rehearsal.port);
  assert.equal(real.url, rehearsal.url);
  const run = await runMigrate(['./files', real.url, '--report', 'report.json'], { cwd: ftRoot });
  assert.equal(run.code, 0, run.stderr);
  const report = await readReport(path.join(ftRoot, 'report.json'));
  assert.equal(report.uploaded.files, files.length, 'every file uploaded');
  const warning = run.stderr.split('\n').filter((l) => /was made against store/.test(l));
  assert.equal(warning.length, 1, `one line says why: ${run.stderr}`);
  assert.equal(report.skipped.files, 0);
  assert.equal((report as Report & { resume: { decision: string } }).resume.decision, 'check-all');
  const client = clientFor(t, real.url);
  assert.deepEqual(await listAll(client), files.map((f) => `/${f.name}`).sort());
  await assertOnServer(client, files);

  // The state file is now the real store's: the next run trusts it, and says so first.
  const again = await runMigrate(['./files', real.url, '--report', 'report.json'], {
    cwd: ftRoot,
  });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout.split('\n')[0]!, /resuming from .*60 files .* skipped/);
  const second = await readReport(path.join(ftRoot, 'report.json'));
  assert.equal(second.uploaded.files, 0);
  assert.equal(second.skipped.byReason['already-done'], files.length);
});

test('a state file of this store is checked on a sample first: a finished file deleted behind its back makes the run check every finished file and upload it again (issue 18)', async (t) => {
  // At most 16 finished files: the sample is all of them, so the deleted one is in it.
  const files = smallTreeFiles(12, 'sampled');
  const ftRoot = await makeFtRoot(t, files);
  const server = await serverFor(t);
  const client = clientFor(t, server.url);
  const first = await runMigrate(['./files', server.url], { cwd: ftRoot });
  assert.equal(first.code, 0, first.stderr);

  const gone = files[5]!;
  await client.delete(`/${gone.name}`);
  const run = await runMigrate(['./files', server.url, '--report', 'report.json'], {
    cwd: ftRoot,
  });
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /1 of 12 of them, picked at random, are not on the server/);
  const report = await readReport(path.join(ftRoot, 'report.json'));
  assert.equal(report.uploaded.files, 1);
  assert.equal(report.skipped.byReason['already-there'], files.length - 1);
  await assertOnServer(client, files);

  // A state file from before store identities (no "store") is sample-checked too.
  const [statePath] = await defaultStateFiles(ftRoot);
  const lines = (await readFile(statePath!, 'utf8')).split('\n');
  const header = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.equal(header.store, server.store.storeId, 'the rebuilt state names this store');
  delete header.store;
  await writeFile(statePath!, [JSON.stringify(header), ...lines.slice(1)].join('\n'));
  await client.delete(`/${files[7]!.name}`);
  const old = await runMigrate(['./files', server.url, '--report', 'report.json'], {
    cwd: ftRoot,
  });
  assert.equal(old.code, 0, old.stderr);
  assert.equal((await readReport(path.join(ftRoot, 'report.json'))).uploaded.files, 1);
  await assertOnServer(client, files);
});

test('online: a rehearsal state file against a store in migration mode is not fooled by the redirects to the old tree (issue 18)', async (t) => {
  const files = smallTreeFiles(20, 'online-rehearsal');
  const ftRoot = await makeFtRoot(t, files);
  const legacy = await startLegacy(['--root', ftRoot, '--port', '0']);
  t.after(() => legacy.kill());
  const rehearsalStore = await tempDir('ft-migrate-rehearsal-');
  const realStore = await tempDir('ft-migrate-real-');
  t.after(() =>
    Promise.all([rehearsalStore, realStore].map((d) => rm(d, { recursive: true, force: true }))),
  );
  const fallback = ['--fallback-url', legacy.url];

  const rehearsal = await serverProcess(t, rehearsalStore, 0, fallback);
  const first = await runMigrate(['./files', rehearsal.url], { cwd: ftRoot });
  assert.equal(first.code, 0, first.stderr);
  assert.equal(await rehearsal.stop(), 0);

  // Every name the new store lacks is a 307 to the old tree, which has every file.
  const real = await serverProcess(t, realStore, rehearsal.port, fallback);
  const run = await runMigrate(['./files', real.url, '--report', 'report.json'], { cwd: ftRoot });
  assert.equal(run.code, 0, run.stderr);
  const report = await readReport(path.join(ftRoot, 'report.json'));
  assert.equal(report.uploaded.files, files.length, 'every file uploaded to the new store');

  // The switch-over: without the fallback, the new store alone serves every file.
  assert.equal(await real.stop(), 0);
  const alone = await serverProcess(t, realStore, 0);
  await assertOnServer(clientFor(t, alone.url), files);

  // --verify asks the store, not the old tree behind it.
  const empty = await startServer({ fallbackUrl: legacy.url });
  t.after(() => empty.close());
  const verify = await runMigrate(['./files', empty.url, '--verify'], { cwd: ftRoot });
  assert.equal(verify.code, 1, 'an empty store differs from the tree');
  const gone = files[3]!;
  assert.match(verify.stdout, new RegExp(`DIFFERS /${gone.name} .*not on the server`));
});
