import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { legacyTreeFiles, versionOf, writeTree } from './helpers/migrate-tree.js';
import { REPO_ROOT, tempDir } from './helpers/server.js';
import { freePort, getFile, waitFor } from './helpers/store-traffic.js';

const INSTALLER = path.join(REPO_ROOT, 'scripts/install-tools.mjs');

/** Each installed command, the tool it runs and that tool's package (issue 17, item 1). */
const COMMANDS = [
  ['ft-server', 'ft-server', 'server'],
  ['filetracker-server', 'ft-server', 'server'],
  ['ft-recover', 'ft-recover', 'server'],
  ['filetracker-recover', 'ft-recover', 'server'],
  ['ft-migrate', 'ft-migrate', 'migrate'],
  ['filetracker-migrate', 'ft-migrate', 'migrate'],
  ['ft-legacy-static', 'ft-legacy-static', 'legacy-static'],
] as const;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `script` with sh in `cwd`, as an operator's shell would: PATH holds PREFIX/bin and
 * the system directories only (not this clone's node_modules/.bin, which `pnpm test` puts
 * on PATH), and any npm or npx that ran would be offline with an unreachable registry.
 */
function sh(script: string, cwd: string, binDir: string, timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', script], { cwd, env: shellEnv(binDir), stdio: 'pipe' });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${script} did not end in ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function shellEnv(binDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: [binDir, '/usr/bin', '/bin'].join(path.delimiter),
    npm_config_offline: 'true',
    npm_config_registry: 'http://127.0.0.1:9/',
  };
  delete env.PREFIX;
  delete env.FILETRACKER_DIR;
  return env;
}

/** The installer run with node, its output collected. */
function installer(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [INSTALLER, ...args], {
      cwd: REPO_ROOT,
      env: { ...shellEnv('/nonexistent'), ...env },
      stdio: 'pipe',
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function scratch(t: TestContext): Promise<string> {
  const dir = await tempDir('ft-install-');
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function versionOfPackage(pkg: string): Promise<string> {
  const text = await readFile(path.join(REPO_ROOT, 'packages', pkg, 'package.json'), 'utf8');
  return (JSON.parse(text) as { version: string }).version;
}

test('install-tools puts every command in PREFIX/bin; outside the clone each answers --version and --help, and the guide runs verbatim inside ft_root', async (t) => {
  const prefix = await scratch(t);
  const binDir = path.join(prefix, 'bin');
  const installed = await installer(['--prefix', prefix]);
  assert.equal(installed.code, 0, installed.stderr);
  assert.deepEqual((await readdir(binDir)).sort(), COMMANDS.map(([command]) => command).sort());

  // A working directory with nothing of the clone in it.
  const home = await scratch(t);
  await Promise.all(
    COMMANDS.map(async ([command, tool, pkg]) => {
      const which = await sh(`command -v ${command}`, home, binDir);
      assert.equal(which.stdout.trim(), path.join(binDir, command));
      const version = await sh(`${command} --version`, home, binDir);
      assert.equal(version.code, 0, `${command} --version: ${version.stderr}`);
      assert.equal(version.stdout.trim(), `${tool} ${await versionOfPackage(pkg)}`);
      const help = await sh(`${command} --help`, home, binDir);
      assert.equal(help.code, 0, `${command} --help: ${help.stderr}`);
      assert.match(help.stdout, new RegExp(`^Usage: ${tool} `, 'm'), command);
    }),
  );

  // README, "Moving a 1.x store": the server from the directory holding ft_root, then the
  // migrator inside ft_root (with a free port for 9998), by the Python names.
  const files = legacyTreeFiles();
  await writeTree(path.join(home, 'ft_root', 'files'), files);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const server = spawn(
    'sh',
    ['-c', `exec filetracker-server -L /dev/null -d ft_root_v2 -p ${port} -D`],
    { cwd: home, env: shellEnv(binDir), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let serverStderr = '';
  server.stderr.on('data', (d: Buffer) => (serverStderr += d.toString()));
  const serverExit = new Promise<number | null>((resolve) => server.once('exit', resolve));
  t.after(() => {
    if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
    return serverExit;
  });
  await waitFor(
    `ft-server on ${url}`,
    async () => (await fetch(`${url}/version`).catch(() => undefined))?.ok,
    20_000,
  );

  const migrate = await sh(`cd ft_root && filetracker-migrate ./files ${url}`, home, binDir);
  assert.equal(migrate.code, 0, migrate.stderr);
  for (const file of files) {
    const got = await getFile(url, `/${file.name}`);
    assert.equal(got.status, 200, file.name);
    assert.equal(got.version, versionOf(file), file.name);
    assert.ok(got.body.equals(file.content), file.name);
  }
  const verify = await sh(`cd ft_root && ft-migrate ./files ${url} --verify`, home, binDir);
  assert.equal(verify.code, 0, verify.stderr);

  // Online: the installed ft-legacy-static serves the old tree from PATH too.
  const legacyPort = await freePort();
  const legacy = spawn(
    'sh',
    ['-c', `exec ft-legacy-static --root ft_root --port ${legacyPort} --workers 1`],
    { cwd: home, env: shellEnv(binDir), stdio: 'ignore' },
  );
  const legacyExit = new Promise<number | null>((resolve) => legacy.once('exit', resolve));
  t.after(() => {
    if (legacy.exitCode === null && legacy.signalCode === null) legacy.kill('SIGKILL');
    return legacyExit;
  });
  const served = await waitFor(
    'ft-legacy-static',
    async () =>
      (await fetch(`http://127.0.0.1:${legacyPort}/files/plain.txt`).catch(() => undefined))?.ok,
    20_000,
  );
  assert.ok(served);
  legacy.kill('SIGTERM');
  assert.equal(await legacyExit, 0);

  server.kill('SIGTERM');
  assert.equal(await serverExit, 0, serverStderr);
  const check = await sh('ft-recover ft_root_v2 --check', home, binDir);
  assert.equal(check.code, 0, check.stderr);
});

test('install-tools refuses (exit 1) a PREFIX/bin with a command it did not write and installs nothing; uninstall removes only what it wrote', async (t) => {
  const prefix = await scratch(t);
  const binDir = path.join(prefix, 'bin');
  await mkdir(binDir);
  const foreign = '#!/bin/sh\necho another ft-recover\n';
  await writeFile(path.join(binDir, 'ft-recover'), foreign, { mode: 0o755 });

  const refused = await installer(['--prefix', prefix]);
  assert.equal(refused.code, 1);
  assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr);
  assert.match(refused.stderr, /ft-recover/);
  assert.deepEqual(await readdir(binDir), ['ft-recover']);
  assert.equal(await readFile(path.join(binDir, 'ft-recover'), 'utf8'), foreign);

  // Once it is moved away the install goes through (PREFIX in the environment, as make's).
  await rm(path.join(binDir, 'ft-recover'));
  const installed = await installer([], { PREFIX: prefix });
  assert.equal(installed.code, 0, installed.stderr);
  // Installing again over our own commands is fine (a moved clone, a new Node).
  const again = await installer(['--prefix', prefix]);
  assert.equal(again.code, 0, again.stderr);

  // Someone else's command takes one name after the install; uninstall leaves it alone.
  await writeFile(path.join(binDir, 'filetracker-recover'), foreign, { mode: 0o755 });
  await writeFile(path.join(binDir, 'unrelated'), 'keep me\n');
  const removed = await installer(['--prefix', prefix, '--uninstall']);
  assert.equal(removed.code, 0, removed.stderr);
  assert.deepEqual((await readdir(binDir)).sort(), ['filetracker-recover', 'unrelated']);
  assert.equal(await readFile(path.join(binDir, 'filetracker-recover'), 'utf8'), foreign);
  assert.match(removed.stdout, /filetracker-recover.*not installed by install-tools/);

  const usage = await installer(['--prefix', prefix, '--bogus']);
  assert.equal(usage.code, 2);
});

test('docs/filetracker.service runs the ft-server that install-tools installs by default', async () => {
  const unit = await readFile(path.join(REPO_ROOT, 'docs/filetracker.service'), 'utf8');
  const execStart = /^ExecStart=(\S+)/m.exec(unit)?.[1];
  const dryRun = await installer(['--dry-run']);
  assert.equal(dryRun.code, 0, dryRun.stderr);
  const target = /^would install (\S+\/ft-server) -> /m.exec(dryRun.stdout)?.[1];
  assert.ok(target, dryRun.stdout);
  assert.equal(execStart, target);
});
