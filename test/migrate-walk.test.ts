/*
 * ft-migrate's walk of the old tree, through the CLI as an operator runs it (issue 17,
 * items 4 and 6): --exclude, names that are not UTF-8, symlinks out of FILES.
 */
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { FiletrackerClient } from '@filetracker/shared-protocol';
import type { MigrationSummary } from '@filetracker/migrate';
import { makeFtRoot, runMigrate, type TreeFile } from './helpers/migrate-tree.js';
import { startProcess, tempDir } from './helpers/server.js';

type Report = MigrationSummary & { url: string };

const MTIME = 1_600_000_000.5;

function treeFile(name: string, content = `${name}\n`): TreeFile {
  return { name, content: Buffer.from(content), mtime: MTIME };
}

/** ft-server as a child process over a fresh store, and a client of it; both stopped after. */
async function serverProcess(t: TestContext): Promise<{ url: string; client: FiletrackerClient }> {
  const store = await tempDir('ft-migrate-walk-store-');
  const server = await startProcess('packages/server/bin/ft-server.mjs', ['-d', store, '-p', '0']);
  const client = new FiletrackerClient(server.url);
  t.after(async () => {
    client.close();
    await server.stop();
    await rm(store, { recursive: true, force: true });
  });
  return { url: server.url, client };
}

async function namesOn(client: FiletrackerClient): Promise<string[]> {
  const names: string[] = [];
  for await (const name of client.list('/', 4_000_000_000)) names.push(`/${name}`);
  return names.sort();
}

async function readReport(ftRoot: string): Promise<Report> {
  return JSON.parse(await readFile(path.join(ftRoot, 'report.json'), 'utf8')) as Report;
}

test('--exclude (repeatable, gitignore-style) leaves out files and whole directories, counted as skipped, not failed (issue 17)', async (t) => {
  const ftRoot = await makeFtRoot(t, [
    treeFile('keep.txt'),
    treeFile('a.tmp'),
    treeFile('sub/b.tmp'),
    treeFile('sub/keep.tmp'),
    treeFile('top.txt'),
    treeFile('sub/top.txt'),
    treeFile('build'),
    treeFile('cache/one'),
    treeFile('cache/deep/two'),
    treeFile('sub/cache/three'),
  ]);
  // Inside an excluded directory: were it entered, this name would be a NOT_UTF8 failure.
  writeFileSync(Buffer.from(path.join(ftRoot, 'files/cache/bad-\xe9'), 'latin1'), 'x');
  const { url, client } = await serverProcess(t);
  const excludes = ['--exclude', '*.tmp', '--exclude=!keep.tmp', '--exclude', '/top.txt'];
  const args = ['./files', url, ...excludes, '--exclude', 'build/', '--exclude', 'cache/'];

  const run = await runMigrate([...args, '--report', 'report.json'], { cwd: ftRoot });
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(await namesOn(client), [
    '/build', // `build/` matches directories only
    '/keep.txt',
    '/sub/keep.tmp', // brought back by !keep.tmp
    '/sub/top.txt', // `/top.txt` is anchored at the top of FILES
  ]);
  const report = await readReport(ftRoot);
  // a.tmp, sub/b.tmp, top.txt, and the two cache/ directories as one entry each: neither
  // was entered, so nothing under them was counted, read or failed.
  assert.equal(report.skipped.byReason.excluded, 5);
  assert.equal(report.failed.files, 0);
  assert.equal(report.uploaded.files, 4);
  assert.match(run.stdout, /5 excluded/);
  assert.equal(run.stderr, '', 'excluded entries are not reported one by one');

  // --verify with the same patterns checks only what was migrated: exit 0.
  const verify = await runMigrate([...args, '--verify'], { cwd: ftRoot });
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  assert.match(verify.stdout, /verified 9 files .*: 4 identical, 0 differ/);

  // Patterns that would silently match nothing are refused: a bad command line, exit 2.
  for (const bad of ['./cache/', '', '#x']) {
    const refused = await runMigrate(['./files', url, '--exclude', bad], { cwd: ftRoot });
    assert.equal(refused.code, 2, `--exclude '${bad}'`);
    assert.match(refused.stderr, /--exclude/);
  }
});

test('a name that is not UTF-8 is reported by its bytes, fails without retry advice, and --exclude lets the run exit 0 (issue 17)', async (t) => {
  const ftRoot = await makeFtRoot(
    t,
    [treeFile('plain.txt'), treeFile('sub/ok.txt')],
    'ft-migrate-walk-',
  );
  const files = path.join(ftRoot, 'files');
  const badFile = Buffer.from(path.join(files, 'sub/latin1-\xe9.txt'), 'latin1');
  const badDir = Buffer.from(path.join(files, 'caf\xe9'), 'latin1');
  writeFileSync(badFile, 'latin-1 named\n');
  await mkdir(badDir);
  writeFileSync(Buffer.concat([badDir, Buffer.from('/inner.txt')]), 'under a latin-1 directory\n');
  const { url, client } = await serverProcess(t);

  const run = await runMigrate(['./files', url, '--report', 'report.json'], { cwd: ftRoot });
  assert.equal(run.code, 1, 'not migrated: a failure, so a cron job notices');
  assert.deepEqual(await namesOn(client), ['/plain.txt', '/sub/ok.txt']);
  // By its bytes, in the form bash reads back: ls $'.../latin1-\xe9.txt'.
  assert.ok(run.stderr.includes(`${path.join(files, 'sub/latin1-\\xe9.txt')}:`), run.stderr);
  assert.ok(run.stderr.includes(`${path.join(files, 'caf\\xe9')}:`), run.stderr);
  assert.match(run.stderr, /\[NOT_UTF8\]/);
  assert.ok(!run.stderr.includes('\uFFFD'), 'no lossy U+FFFD in place of the bytes');
  assert.ok(!/run the same command again/.test(run.stderr), run.stderr);
  assert.match(run.stderr, /2 names are not valid UTF-8 .*--exclude/);

  const report = await readReport(ftRoot);
  assert.equal(report.failed.files, 2);
  assert.equal(report.notUtf8, 2);
  const failures = report.failures.map((f) => [f.code, f.path, f.pathHex]).sort();
  assert.deepEqual(failures, [
    ['NOT_UTF8', path.join(files, 'caf\\xe9'), badDir.toString('hex')],
    ['NOT_UTF8', path.join(files, 'sub/latin1-\\xe9.txt'), badFile.toString('hex')],
  ]);
  // The report's bytes name the very files on disk.
  for (const failure of report.failures)
    assert.ok(existsSync(Buffer.from(failure.pathHex!, 'hex')));

  // --verify says the same, with no retry advice either.
  const verify = await runMigrate(['./files', url, '--verify'], { cwd: ftRoot });
  assert.equal(verify.code, 1);
  assert.match(verify.stderr, /NOT_UTF8/);
  assert.ok(!/run the same command again/.test(verify.stderr), verify.stderr);

  // Left out on purpose (a byte that is not UTF-8 matches ? or *): the cron job exits 0.
  const excludes = ['--exclude', 'latin1-*.txt', '--exclude', 'caf?/'];
  const excluded = await runMigrate(['./files', url, ...excludes, '--report', 'report.json'], {
    cwd: ftRoot,
  });
  assert.equal(excluded.code, 0, excluded.stderr);
  assert.equal(excluded.stderr, '');
  const second = await readReport(ftRoot);
  assert.equal(second.skipped.byReason.excluded, 2);
  assert.equal(second.failed.files, 0);
  const verified = await runMigrate(['./files', url, '--verify', ...excludes], { cwd: ftRoot });
  assert.equal(verified.code, 0, verified.stderr);
});

test('--follow-symlinks follows only links whose target stays inside FILES and reports the others; --follow-symlinks-outside follows them too (issue 17)', async (t) => {
  const ftRoot = await makeFtRoot(
    t,
    [treeFile('plain.txt'), treeFile('a/b/deep.txt')],
    'ft-migrate-walk-',
  );
  const files = path.join(ftRoot, 'files');
  // Outside FILES: a temp file elsewhere (by absolute path), and ft_root itself (by ../).
  const elsewhere = await tempDir('ft-migrate-walk-outside-');
  t.after(() => rm(elsewhere, { recursive: true, force: true }));
  const secret = path.join(elsewhere, 'secret.txt');
  await writeFile(secret, 'not part of the tree\n');
  await writeFile(path.join(ftRoot, 'beside-files.txt'), 'in ft_root, not in files/\n');
  await symlink('plain.txt', path.join(files, 'inside-link'));
  await symlink('../../plain.txt', path.join(files, 'a/b/up-link')); // up, still inside
  await symlink(secret, path.join(files, 'a/secret-link'));
  await symlink('../beside-files.txt', path.join(files, 'parent-link'));
  // A link inside FILES to a link out of it: judged by where the chain ends.
  await symlink('a/secret-link', path.join(files, 'chained-link'));
  const { url, client } = await serverProcess(t);

  const run = await runMigrate(
    ['./files', url, '--follow-symlinks', '--no-state', '--report', 'report.json'],
    { cwd: ftRoot },
  );
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(await namesOn(client), [
    '/a/b/deep.txt',
    '/a/b/up-link',
    '/inside-link',
    '/plain.txt',
  ]);
  assert.equal((await client.getBuffer('/inside-link')).data.toString(), 'plain.txt\n');
  assert.equal((await client.getBuffer('/a/b/up-link')).data.toString(), 'plain.txt\n');
  for (const name of ['a/secret-link', 'parent-link', 'chained-link']) {
    assert.match(run.stderr, new RegExp(`skipped .*${name}: a symlink to .*outside FILES`), name);
  }
  assert.ok(run.stderr.includes(secret), 'the target is named');
  const report = await readReport(ftRoot);
  assert.equal(report.skipped.byReason['symlink-outside'], 3);
  assert.deepEqual(report.skippedFiles.map((s) => [s.name, s.reason]).sort(), [
    ['/a/secret-link', 'symlink-outside'],
    ['/chained-link', 'symlink-outside'],
    ['/parent-link', 'symlink-outside'],
  ]);

  // The second flag (which implies the first) follows them out of FILES.
  const outside = await runMigrate(['./files', url, '--follow-symlinks-outside', '--no-state'], {
    cwd: ftRoot,
  });
  assert.equal(outside.code, 0, outside.stderr);
  assert.equal(
    (await client.getBuffer('/a/secret-link')).data.toString(),
    'not part of the tree\n',
  );
  assert.equal((await client.getBuffer('/chained-link')).data.toString(), 'not part of the tree\n');
  assert.equal(
    (await client.getBuffer('/parent-link')).data.toString(),
    'in ft_root, not in files/\n',
  );

  const help = await runMigrate(['--help']);
  for (const option of ['--exclude <PATTERN>', '--follow-symlinks-outside', 'inside FILES']) {
    assert.ok(help.stdout.includes(option), option);
  }
});
