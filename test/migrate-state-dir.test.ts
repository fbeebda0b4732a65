import assert from 'node:assert/strict';
import { readFile, readdir, realpath, rm } from 'node:fs/promises';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { legacyStatePath, type MigrationSummary } from '@filetracker/migrate';
import { makeFtRoot, runMigrate, smallTreeFiles } from './helpers/migrate-tree.js';
import { startServer, tempDir, type TestServer } from './helpers/server.js';

async function serverFor(t: TestContext): Promise<TestServer> {
  const server = await startServer();
  t.after(() => server.close());
  return server;
}

async function scratch(t: TestContext, prefix: string): Promise<string> {
  const dir = await tempDir(prefix);
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function report(file: string): Promise<MigrationSummary> {
  return JSON.parse(await readFile(file, 'utf8')) as MigrationSummary;
}

const DEFAULT_NAME = /^ft-migrate-files-to-127\.0\.0\.1_\d+-[0-9a-f]{12}\.state$/;

test('the default state file lives in $XDG_STATE_HOME/filetracker (else ~/.local/state/filetracker), is printed at start, and nothing is left in the working directory (issue 15)', async (t) => {
  const files = smallTreeFiles(20, 'xdg');
  const ftRoot = await makeFtRoot(t, files);
  const server = await serverFor(t);
  const xdg = await scratch(t, 'ft-migrate-xdg-');
  const home = await scratch(t, 'ft-migrate-home-');
  const reportFile = path.join(xdg, 'report.json');
  const args = ['./files', server.url, '--report', reportFile];

  const first = await runMigrate(args, { cwd: ftRoot, env: { XDG_STATE_HOME: xdg } });
  assert.equal(first.code, 0, first.stderr);
  const names = await readdir(path.join(xdg, 'filetracker'));
  assert.equal(names.length, 1, String(names));
  assert.match(names[0]!, DEFAULT_NAME);
  const statePath = path.join(xdg, 'filetracker', names[0]!);
  assert.ok(first.stdout.includes(statePath), first.stdout);
  assert.deepEqual(await readdir(ftRoot), ['files'], 'nothing left in the working directory');

  // The same command again finds it and skips everything.
  const again = await runMigrate(args, { cwd: ftRoot, env: { XDG_STATE_HOME: xdg } });
  assert.equal(again.code, 0, again.stderr);
  assert.equal((await report(reportFile)).skipped.byReason['already-done'], files.length);

  // No (or a relative) XDG_STATE_HOME: ~/.local/state/filetracker.
  const fromHome = await runMigrate(args, {
    cwd: ftRoot,
    env: { XDG_STATE_HOME: 'relative/dir', HOME: home },
  });
  assert.equal(fromHome.code, 0, fromHome.stderr);
  const inHome = await readdir(path.join(home, '.local', 'state', 'filetracker'));
  assert.equal(inHome.length, 1);
  assert.match(inHome[0]!, DEFAULT_NAME);
  assert.deepEqual(await readdir(ftRoot), ['files']);

  // --no-state keeps none anywhere.
  const xdg2 = await scratch(t, 'ft-migrate-xdg-');
  const none = await runMigrate([...args, '--no-state'], {
    cwd: ftRoot,
    env: { XDG_STATE_HOME: xdg2 },
  });
  assert.equal(none.code, 0, none.stderr);
  assert.deepEqual(await readdir(xdg2), []);
  assert.deepEqual(await readdir(ftRoot), ['files']);
});

test('a state file an earlier ft-migrate left in the working directory is still used, with a one-line notice (issue 15)', async (t) => {
  const files = smallTreeFiles(20, 'legacy');
  const ftRoot = await makeFtRoot(t, files);
  const server = await serverFor(t);
  const xdg = await scratch(t, 'ft-migrate-xdg-');
  const reportFile = path.join(xdg, 'report.json');
  // Where versions before issue 15 kept the default state of this command.
  const real = await realpath(ftRoot);
  const legacy = legacyStatePath(
    path.join(real, 'files'),
    { url: server.url.replace(/\/+$/, ''), root: path.join(real, 'files') },
    real,
  );
  const made = await runMigrate(['./files', server.url, '--state', legacy], { cwd: ftRoot });
  assert.equal(made.code, 0, made.stderr);

  const resumed = await runMigrate(['./files', server.url, '--report', reportFile, '-s'], {
    cwd: ftRoot,
    env: { XDG_STATE_HOME: xdg },
  });
  assert.equal(resumed.code, 0, resumed.stderr);
  const notice = resumed.stderr.split('\n').filter((line) => line.includes(legacy));
  assert.equal(notice.length, 1, resumed.stderr);
  const summary = await report(reportFile);
  assert.equal(summary.skipped.byReason['already-done'], files.length);
  assert.equal(summary.uploaded.files, 0);
  assert.ok(!(await readdir(xdg)).includes('filetracker'), 'no second state file');
});
