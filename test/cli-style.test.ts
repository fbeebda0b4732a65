import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { startLegacy } from './helpers/legacy-static.js';
import { REPO_ROOT, tempDir } from './helpers/server.js';
import { exitWithin, spawnBin, waitFor } from './helpers/store-traffic.js';

/** The four tools (issue 17, item 7): bin, package and README heading. */
const TOOLS = [
  { name: 'ft-server', bin: 'packages/server/bin/ft-server.mjs', pkg: 'packages/server' },
  { name: 'ft-recover', bin: 'packages/server/bin/ft-recover.mjs', pkg: 'packages/server' },
  { name: 'ft-migrate', bin: 'packages/migrate/bin/ft-migrate.mjs', pkg: 'packages/migrate' },
  {
    name: 'ft-legacy-static',
    bin: 'packages/legacy-static/bin/ft-legacy-static.mjs',
    pkg: 'packages/legacy-static',
  },
];

async function runTool(
  bin: string,
  args: string[],
): Promise<{ code: number | null; out: string; err: string }> {
  const p = spawnBin(bin, args);
  const { code } = await exitWithin(p, 15_000);
  return { code, out: p.stdoutLines.join('\n'), err: p.stderr() };
}

async function packageVersion(pkg: string): Promise<string> {
  return (
    JSON.parse(await readFile(path.join(REPO_ROOT, pkg, 'package.json'), 'utf8')) as {
      version: string;
    }
  ).version;
}

test('every tool prints "NAME VERSION" (its package.json version) for --version and -V and exits 0, even without its required arguments', async () => {
  // In parallel: each start of node takes seconds on a loaded machine.
  await Promise.all(
    TOOLS.map(async (tool) => {
      const expected = `${tool.name} ${await packageVersion(tool.pkg)}`;
      for (const flag of ['--version', '-V']) {
        const { code, out, err } = await runTool(tool.bin, [flag]);
        assert.equal(code, 0, `${tool.name} ${flag}: ${err}`);
        assert.equal(out.trim(), expected, `${tool.name} ${flag}`);
      }
    }),
  );
});

test('every tool ends --help with the same footer: the one exit-status rule, then the README section and docs/ of this clone, which exist', async () => {
  const readme = await readFile(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const helps = await Promise.all(TOOLS.map((tool) => runTool(tool.bin, ['--help'])));
  for (const [i, tool] of TOOLS.entries()) {
    const { code, out } = helps[i]!;
    assert.equal(code, 0, tool.name);
    assert.match(out, /^ {2}-V, --version +print the version and exit$/m, tool.name);
    assert.match(out, /^ {2}-h, --help +print this help and exit$/m, tool.name);
    assert.match(
      out,
      /^Exit status: 0 done, 1 the work failed \(stderr says why\), 2 a bad command line\.$/m,
      tool.name,
    );
    const docs = `Documentation: README.md ("${tool.name}") and docs/ in ${REPO_ROOT}`;
    assert.equal(out.trimEnd().split('\n').at(-1), docs, tool.name);
    assert.match(
      readme,
      new RegExp(`^### ${tool.name}\\b`, 'm'),
      `README has no ${tool.name} section`,
    );
  }
});

test('every tool exits 2 on an unknown option, with the usage hint on stderr', async () => {
  const runs = await Promise.all(TOOLS.map((tool) => runTool(tool.bin, ['--no-such-option'])));
  for (const [i, tool] of TOOLS.entries()) {
    const { code, err } = runs[i]!;
    assert.equal(code, 2, `${tool.name}: ${err}`);
    assert.match(err, new RegExp(`\\(run ${tool.name} --help for usage\\)`), tool.name);
  }
});

/** Where the `listening` line of a server logging to `file` shows that it runs. */
async function listeningIn(file: string): Promise<void> {
  await waitFor(
    `the listening line in ${file}`,
    async () => (await readFile(file, 'utf8').catch(() => '')).includes('"msg":"listening"'),
    15_000,
  );
}

test('ft-server logs to FILE with -L FILE, --log FILE, --log-file FILE and the prefix --log-f FILE', async (t) => {
  const dir = await tempDir('ft-cli-style-');
  t.after(() => rm(dir, { recursive: true, force: true }));
  for (const [i, spelling] of [['-L'], ['--log'], ['--log-file'], ['--log-f']].entries()) {
    const log = path.join(dir, `server-${i}.log`);
    const p = spawnBin('packages/server/bin/ft-server.mjs', [
      '-d',
      path.join(dir, 'store'),
      '-p',
      '0',
      ...spelling,
      log,
    ]);
    t.after(() => p.kill());
    await listeningIn(log);
    p.child.kill('SIGTERM');
    assert.equal((await exitWithin(p, 10_000)).code, 0, `${spelling[0]}: ${p.stderr()}`);
    assert.deepEqual(p.stdoutLines, [], `${spelling[0]} logged to stdout`);
  }
});

test("ft-legacy-static logs to FILE with -L FILE, --log-file FILE and --log FILE (ft-server's spelling)", async (t) => {
  const dir = await tempDir('ft-cli-style-');
  t.after(() => rm(dir, { recursive: true, force: true }));
  for (const [i, spelling] of ['-L', '--log-file', '--log'].entries()) {
    const log = path.join(dir, `legacy-${i}.log`);
    const p = await startLegacy(['--root', dir, '--port', '0', '-w', '1', spelling, log], log);
    t.after(() => p.kill());
    assert.deepEqual(p.lines, [], `${spelling} logged to stdout`);
    p.child.kill('SIGTERM');
    assert.equal(await p.exited, 0, `${spelling}: ${p.stderr()}`);
  }
});

test('every tool ends quietly with 0 when the reader of its --help or --version closes early (`ft-server --help | head -1`)', async () => {
  await Promise.all(
    TOOLS.map(async (tool) => {
      for (const flag of ['--help', '--version']) {
        const p = spawnBin(tool.bin, [flag]);
        // The reader is gone before the tool writes a byte: every write meets EPIPE.
        p.child.stdout!.destroy();
        const { code } = await exitWithin(p, 15_000);
        assert.equal(p.stderr(), '', `${tool.name} ${flag}: nothing on stderr`);
        assert.equal(code, 0, `${tool.name} ${flag}`);
      }
    }),
  );
});

test("ft-server's --help names the operator page a browser gets at /", async () => {
  const { code, out } = await runTool(TOOLS[0]!.bin, ['--help']);
  assert.equal(code, 0);
  assert.match(out.replace(/\s+/g, ' '), /http:\/\/HOST:PORT\/ in a browser for the operator page/);
});
