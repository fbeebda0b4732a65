/**
 * The seed's online procedure end to end, through real processes (issue: online migration):
 * a 1.x tree served by ft-legacy-static, ft-server in front of it with --fallback-url, a
 * migration running while clients read, write and delete, then the switch-over.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { walkTree } from '@filetracker/runtime';
import { FiletrackerClient, nowVersion } from '@filetracker/shared-protocol';
import { describeEachBackend, type Backend } from './helpers/backends.js';
import { processStore, serveLegacy, serverProcess, writeLegacyTree } from './helpers/fallback.js';
import { REPO_ROOT, tempDir } from './helpers/server.js';
import { prng } from './helpers/fault-prng.js';

const MIGRATE_BIN = 'packages/migrate/bin/ft-migrate.mjs';

interface LegacyFile {
  name: string;
  content: Buffer;
  mtime: number;
}

function legacyFiles(): LegacyFile[] {
  const rand = prng(20261125);
  const files: LegacyFile[] = [];
  const add = (name: string, content: Buffer): void => {
    files.push({ name, content, mtime: 1_400_000_000 + Math.floor(rand() * 200_000_000) });
  };
  for (let i = 0; i < 260; i++) {
    const depth = 1 + (i % 4);
    const dirs = Array.from({ length: depth }, (_, d) => `d${d}-${i % (3 + d)}`);
    add(`/${dirs.join('/')}/test${i}.in`, Buffer.from(`input ${i}\n`.repeat(1 + (i % 50))));
  }
  for (let i = 0; i < 8; i++) add(`/empty/e${i}.out`, Buffer.alloc(0));
  const big = Buffer.alloc(5 * 1024 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = Math.floor(rand() * 256) & 0x3f;
  add('/big/package.zip', big);
  add('/dots/.hidden', Buffer.from('dotfile'));
  add('/dots/.config/rc', Buffer.from('dot dir'));
  add('/pkg/foo.in', Buffer.from('plain foo\n'));
  add('/pkg/foo.in.gz', gzipSync(Buffer.from('gzipped foo\n')));
  add('/odd/with space.txt', Buffer.from('space'));
  add('/odd/hash#tag.txt', Buffer.from('hash'));
  add('/odd/question?mark.txt', Buffer.from('question'));
  add('/odd/percent 100%.txt', Buffer.from('percent'));
  add('/odd/zażółć gęślą jaźń.txt', Buffer.from('polish'));
  add('/odd/日本語/ファイル.txt', Buffer.from('japanese'));
  add('/later/overwritten.txt', Buffer.from('legacy version, to be overwritten'));
  add('/later/deleted.txt', Buffer.from('legacy version, to be deleted'));
  add('/later/reput.txt', Buffer.from('legacy version, deleted then re-put'));
  return files;
}

/** The seed's migration step: inside ft_root, `ft-migrate ./files URL`, as a real process. */
/** Runs ft-migrate; its exit code and what it printed (to say why when it fails). */
function migrate(
  root: string,
  url: string,
  stateFile: string,
): Promise<{ code: number | null; output: string }> {
  const child = spawn(
    process.execPath,
    [path.join(REPO_ROOT, MIGRATE_BIN), './files', url, '--state', stateFile, '-j', '4'],
    { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: '1' } },
  );
  children.push(child);
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (output += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (output += s));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, output })));
}

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

const children: ChildProcess[] = [];

after(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

// The whole procedure on every backend (helpers/backends.ts): the new store may be the
// scale-out one from the start.
describeEachBackend('online migration', onlineMigrationSuite);

function onlineMigrationSuite(backend: Backend): void {
  test('online migration: clients keep working during it and nothing is lost or resurrected', async (t) => {
    const root = await tempDir('ft-root-');
    const work = await tempDir('ft-work-');
    t.after(() => Promise.all([root, work].map((d) => rm(d, { recursive: true, force: true }))));
    const files = legacyFiles();
    await writeLegacyTree(
      root,
      Object.fromEntries(files.map((f) => [f.name, { content: f.content, mtime: f.mtime }])),
    );
    const legacy = await serveLegacy(root);
    t.after(() => legacy.stop());
    const store = await processStore(t, backend);
    const server = await serverProcess(t, store, ['--fallback-url', legacy.url]);
    const client = new FiletrackerClient(server.url);
    try {
      // Before anything is migrated, every legacy file reads through the server (307 followed).
      for (const f of files.filter((_, i) => i % 7 === 0)) {
        const got = await client.getBuffer(f.name);
        assert.equal(sha(got.data), sha(f.content), f.name);
        assert.equal(got.version, f.mtime, f.name);
        assert.deepEqual(await client.stat(f.name), {
          version: f.mtime,
          logicalSize: f.content.length,
        });
      }

      const migration = migrate(root, server.url, path.join(work, 'state'));

      // Meanwhile, clients work.
      const now = nowVersion();
      await client.put('/new/submission.cpp', Buffer.from('int main() {}\n'), { version: now });
      await client.put('/later/overwritten.txt', Buffer.from('newer, from a client'), {
        version: now,
      });
      await client.delete('/later/deleted.txt', now);
      await client.delete('/later/reput.txt', now);
      await client.put('/later/reput.txt', Buffer.from('re-put in the same second'), {
        version: now,
      });
      for (const f of files.filter((g, i) => i % 5 === 0 && !g.name.startsWith('/later/'))) {
        const got = await client.getBuffer(f.name);
        assert.equal(sha(got.data), sha(f.content), f.name);
        assert.equal(got.version, f.mtime, f.name);
      }

      const migrated = await migration;
      assert.equal(migrated.code, 0, migrated.output);

      // Everything is on the new server, at the right version, but the three changed names.
      for (const f of files) {
        if (f.name.startsWith('/later/')) continue;
        const got = await client.getBuffer(f.name, { expectedVersion: f.mtime });
        assert.equal(sha(got.data), sha(f.content), f.name);
      }
      assert.equal(
        (await client.getBuffer('/later/overwritten.txt')).data.toString(),
        'newer, from a client',
      );
      assert.equal(await client.stat('/later/deleted.txt'), null);
      const reput = await client.getBuffer('/later/reput.txt');
      assert.equal(reput.data.toString(), 're-put in the same second');
      assert.equal(reput.version, now);
    } finally {
      client.close();
    }

    // Switch-over: the server without --fallback-url, the legacy server stopped.
    assert.equal(await server.stop(), 0);
    assert.equal(await legacy.stop(), 0);
    const restarted = await serverProcess(t, store);
    const final = new FiletrackerClient(restarted.url);
    try {
      const expected = new Set(
        files.map((f) => f.name.slice(1)).filter((n) => n !== 'later/deleted.txt'),
      );
      expected.add('new/submission.cpp');
      const listed = new Set<string>();
      for await (const line of final.list('/', nowVersion() + 10)) listed.add(line);
      assert.deepEqual([...listed].sort(), [...expected].sort());
      for (const f of files) {
        if (f.name.startsWith('/later/')) continue;
        const got = await final.getBuffer(f.name);
        assert.equal(sha(got.data), sha(f.content), f.name);
        assert.equal(got.version, f.mtime, f.name);
      }
      // The legacy tree is untouched: the migration only read it.
      let count = 0;
      for await (const _ of walkTree(path.join(root, 'files'))) count++;
      assert.equal(count, files.length);
    } finally {
      final.close();
    }
  });
}
