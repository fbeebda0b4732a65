/**
 * Issue 15, item 4: online migration from a running filetracker 2.x server. The old server
 * A (an ft-server here, reached under a path prefix `/ft` as the Python server is mounted,
 * no proxy: `/ft//files/NAME` by the path grammar) stays up; the new server B runs with
 * `--fallback-url A`; `ft-migrate --from A B` moves everything while clients read, write and
 * delete through B. Nothing is lost, the newest version wins, and a name deleted through B
 * is not brought back by the migrator. B runs on every backend (helpers/backends.ts): the
 * new store may be the scale-out one from the start; A, the old server, stays local.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { FiletrackerClient, FiletrackerError, nowVersion } from '@filetracker/shared-protocol';
import type { MigrationSummary } from '@filetracker/migrate';
import { describeEachBackend, type Backend } from './helpers/backends.js';
import {
  LEGACY_BIN,
  SERVER_BIN,
  processStore,
  serverProcess,
  versionQuery,
} from './helpers/fallback.js';
import { spawnMigrate } from './helpers/migrate-tree.js';
import { prng } from './helpers/fault-prng.js';
import { startProcess, tempDir, type RunningProcess } from './helpers/server.js';
import { waitFor } from './helpers/store-traffic.js';

interface OldFile {
  name: string;
  content: Buffer;
  version: number;
  /** Put gzip with hints (as the Python client does) or plain. */
  compress: boolean;
}

function oldFiles(): OldFile[] {
  const rand = prng(20261203);
  const files: OldFile[] = [];
  const add = (name: string, content: Buffer): void => {
    files.push({
      name,
      content,
      version: 1_400_000_000 + Math.floor(rand() * 200_000_000),
      compress: files.length % 3 !== 0,
    });
  };
  // Enough names for the migration to overlap the clients' work below, few enough that the
  // scale-out run (a database transaction and an object PUT per file, on Swift) stays
  // bounded on a loaded machine.
  for (let i = 0; i < 32; i++) {
    const dirs = Array.from({ length: 1 + (i % 3) }, (_, d) => `p${d}-${i % (2 + d)}`);
    add(`/${dirs.join('/')}/t${i}.in`, Buffer.from(`test ${i}\n`.repeat(1 + (i % 40))));
  }
  const big = Buffer.alloc(3 * 1024 * 1024 + 5);
  for (let i = 0; i < big.length; i++) big[i] = Math.floor(rand() * 256);
  add('/big/package.zip', big);
  add('/empty.out', Buffer.alloc(0));
  add('/odd/with space.txt', Buffer.from('space'));
  add('/odd/hash#tag?.txt', Buffer.from('hash and question'));
  add('/odd/percent 100%+plus.txt', Buffer.from('percent and plus'));
  add('/odd/zażółć/日本語.txt', Buffer.from('non-ASCII'));
  add('/later/overwritten.txt', Buffer.from('old version, overwritten through B'));
  add('/later/deleted-first.txt', Buffer.from('old version, deleted through B before'));
  add('/later/deleted-during.txt', Buffer.from('old version, deleted through B during'));
  add('/later/reput.txt', Buffer.from('old version, deleted then re-put'));
  return files;
}

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** The old 2.x server (or another local one): an ft-server process on `-d DIR`. */
async function localServer(t: TestContext, args: string[]): Promise<RunningProcess> {
  const proc = await startProcess(SERVER_BIN, ['-p', '0', ...args]);
  t.after(() => proc.stop('SIGKILL'));
  return proc;
}

function clientFor(t: TestContext, url: string): FiletrackerClient {
  const client = new FiletrackerClient(url);
  t.after(() => client.close());
  return client;
}

async function listed(client: FiletrackerClient): Promise<string[]> {
  const names: string[] = [];
  for await (const name of client.listNames()) names.push(name);
  return names.sort();
}

interface FallbackStatus {
  state: string;
  kind: string;
}

async function fallbackStatus(url: string): Promise<FallbackStatus | undefined> {
  const res = await fetch(`${url}/status`);
  return ((await res.json()) as { fallback?: FallbackStatus }).fallback;
}

/** A raw GET or HEAD, redirects not followed: what B itself answers. */
function raw(url: string, method = 'HEAD'): Promise<Response> {
  return fetch(url, { method, redirect: 'manual' });
}

function deleteUrl(base: string, name: string, version: number): string {
  return `${base}/files${name}${versionQuery(version)}`;
}

describeEachBackend('online migration from 2.x', onlineMigration2xSuite);

function onlineMigration2xSuite(backend: Backend): void {
  test('online migration from a 2.x server under a prefix: reads redirect there, deletes leave tombstones at its version, ft-migrate --from moves the rest, nothing deleted comes back', async (t) => {
    const dirA = await tempDir('ft-2x-a-');
    const work = await tempDir('ft-2x-work-');
    t.after(() => Promise.all([dirA, work].map((d) => rm(d, { recursive: true, force: true }))));
    const files = oldFiles();
    const byName = new Map(files.map((f) => [f.name, f]));
    const a = await localServer(t, ['-d', dirA]);
    const clientA = clientFor(t, a.url);
    for (const f of files) {
      await clientA.put(f.name, f.content, { version: f.version, compress: f.compress });
    }
    const fallbackUrl = `${a.url}/ft`;
    const storeB = await processStore(t, backend);
    const b = await serverProcess(t, storeB, ['--fallback-url', fallbackUrl]);
    const client = clientFor(t, b.url);

    // B knows its fallback for a filetracker 2.x server, from its /version.
    const fallback = await waitFor('a first probe', async () => {
      const s = await fallbackStatus(b.url);
      return s?.state === 'unknown' ? undefined : s;
    });
    assert.deepEqual([fallback.state, fallback.kind], ['up', '2.x']);

    // Before anything moves, every file reads through B: a 307 to A under its prefix.
    const odd = byName.get('/odd/hash#tag?.txt')!;
    const redirect = await raw(`${b.url}/files/odd/hash%23tag%3F.txt`, 'GET');
    assert.equal(redirect.status, 307);
    assert.equal(redirect.headers.get('location'), `${a.url}/ft//files/odd/hash%23tag%3F.txt`);
    for (const f of files) {
      const got = await client.getBuffer(f.name);
      assert.equal(got.version, f.version, f.name);
      assert.equal(sha(got.data), sha(f.content), f.name);
    }
    assert.deepEqual(await client.stat(odd.name), {
      version: odd.version,
      logicalSize: odd.content.length,
    });
    // B's /list merges A's.
    assert.deepEqual(await listed(client), files.map((f) => f.name).sort());

    // A DELETE of a name only A has: the tombstone takes A's version (from its HEAD), so a
    // re-put at that version is refused and a newer one is taken.
    const now = nowVersion();
    const first = byName.get('/later/deleted-first.txt')!;
    await client.delete(first.name, now);
    assert.equal((await raw(`${b.url}/files/later/deleted-first.txt`)).status, 404);
    assert.equal(await client.stat(first.name), null);
    const reput = byName.get('/later/reput.txt')!;
    await client.delete(reput.name, now);
    await assert.rejects(
      client.put(reput.name, Buffer.from('as old as the deleted one'), { version: reput.version }),
      (err) => err instanceof FiletrackerError && err.status === 410 && err.code === 'DELETED',
    );
    assert.equal(
      await client.put(reput.name, Buffer.from('re-put in the same second'), { version: now }),
      now,
    );
    // A itself is untouched by B.
    assert.equal((await clientA.stat(first.name))?.version, first.version);

    const report = path.join(work, 'report.json');
    const migration = spawnMigrate(
      ['--from', fallbackUrl, b.url, '--state', path.join(work, 'state'), '--report', report],
      { cwd: work, env: { CI: '1' } },
    );
    t.after(() => {
      if (migration.child.exitCode === null) migration.child.kill('SIGKILL');
    });

    // Meanwhile, clients work through B: new names, a newer version, a delete, and reads of
    // every file (B's own or redirected to A, whichever it is at that moment).
    await client.put('/new/submission.cpp', Buffer.from('int main() {}\n'), { version: now });
    await client.put('/later/overwritten.txt', Buffer.from('newer, through B'), { version: now });
    await client.delete('/later/deleted-during.txt', now);
    for (const f of files) {
      if (f.name.startsWith('/later/')) continue;
      const got = await client.getBuffer(f.name);
      assert.equal(got.version, f.version, f.name);
      assert.equal(sha(got.data), sha(f.content), f.name);
    }

    const run = await migration.done;
    assert.equal(run.code, 0, run.stderr);
    const summary = JSON.parse(await readFile(report, 'utf8')) as MigrationSummary;
    assert.ok(
      (summary.skipped.byReason['deleted-on-server'] ?? 0) >= 1,
      JSON.stringify(summary.skipped),
    );
    assert.equal(summary.failed.files, 0);

    // Every file is now B's own (no redirect), at its version; the changed names as changed.
    const expected = new Map<string, { content: string | Buffer; version: number }>();
    for (const f of files) expected.set(f.name, { content: f.content, version: f.version });
    expected.delete('/later/deleted-first.txt');
    expected.delete('/later/deleted-during.txt');
    expected.set('/later/overwritten.txt', { content: 'newer, through B', version: now });
    expected.set('/later/reput.txt', { content: 're-put in the same second', version: now });
    expected.set('/new/submission.cpp', { content: 'int main() {}\n', version: now });
    const check = async (c: FiletrackerClient, base: string): Promise<void> => {
      for (const [name, want] of expected) {
        const got = await c.getBuffer(name);
        assert.equal(got.version, want.version, name);
        assert.equal(sha(got.data), sha(Buffer.from(want.content)), name);
      }
      for (const gone of ['/later/deleted-first.txt', '/later/deleted-during.txt']) {
        assert.equal((await raw(`${base}/files${gone}`)).status, 404, gone);
      }
      assert.deepEqual(await listed(c), [...expected.keys()].sort());
    };
    for (const name of expected.keys()) {
      const own = await raw(`${b.url}/files${name.split('/').map(encodeURIComponent).join('/')}`);
      assert.equal(own.status, 200, name);
    }
    await check(client, b.url);

    // Switch-over: B without --fallback-url, A stopped. Everything is still there.
    assert.equal(await b.stop(), 0);
    assert.equal(await a.stop(), 0);
    const final = await serverProcess(t, storeB);
    await check(clientFor(t, final.url), final.url);
  });

  test('a 2.x fallback that is itself in migration mode: B follows its 307 to ask the version; a 1.x tree is told apart; a dead fallback is 502 and degraded', async (t) => {
    const root = await tempDir('ft-2x-root-');
    const dirA = await tempDir('ft-2x-a-');
    t.after(() => Promise.all([root, dirA].map((d) => rm(d, { recursive: true, force: true }))));
    const mtime = 1_500_000_123;
    const legacyFile = path.join(root, 'files', 'old', 'only-in-1x.txt');
    await mkdir(path.dirname(legacyFile), { recursive: true });
    await writeFile(legacyFile, 'from the 1.x tree');
    await utimes(legacyFile, mtime, mtime);
    await writeFile(path.join(root, 'files', 'kept.txt'), 'kept');

    const legacy = await startProcess(LEGACY_BIN, ['--root', root, '--port', '0']);
    t.after(() => legacy.stop('SIGKILL'));
    const a = await localServer(t, ['-d', dirA, '--fallback-url', legacy.url]);
    const storeB = await processStore(t, backend);
    const b = await serverProcess(t, storeB, ['--fallback-url', a.url, '--legacy-timeout', '2']);
    const kinds = await waitFor('both probes', async () => {
      const [ka, kb] = [await fallbackStatus(a.url), await fallbackStatus(b.url)];
      return ka?.kind !== 'unknown' && kb?.kind !== 'unknown' && [ka?.kind, kb?.kind];
    });
    assert.deepEqual(kinds, ['1.x', '2.x']);

    // At a host's root the redirect is URL/files/NAME, as for a 1.x tree; a client follows
    // both hops to the 1.x file.
    const hop = await raw(`${b.url}/files/old/only-in-1x.txt`, 'GET');
    assert.equal(hop.status, 307);
    assert.equal(hop.headers.get('location'), `${a.url}/files/old/only-in-1x.txt`);
    const client = clientFor(t, b.url);
    const got = await client.getBuffer('/old/only-in-1x.txt');
    assert.equal(got.data.toString(), 'from the 1.x tree');
    assert.equal(got.version, mtime);

    // A DELETE through B of a name only the 1.x tree behind A has: the version comes from
    // the end of A's redirect, and the tombstone holds it.
    const del = await fetch(deleteUrl(b.url, '/old/only-in-1x.txt', nowVersion()), {
      method: 'DELETE',
    });
    assert.equal(del.status, 200, await del.text());
    assert.equal(await client.stat('/old/only-in-1x.txt'), null);
    await assert.rejects(
      client.put('/old/only-in-1x.txt', Buffer.from('migrated copy'), { version: mtime }),
      (err) => err instanceof FiletrackerError && err.code === 'DELETED',
    );
    assert.deepEqual(await listed(client), ['/kept.txt']);

    // A down: B's DELETE of a name it lacks cannot be answered (502), /healthz says degraded.
    assert.equal(await a.stop(), 0);
    const down = await fetch(deleteUrl(b.url, '/kept.txt', nowVersion()), { method: 'DELETE' });
    assert.equal(down.status, 502);
    assert.equal(down.headers.get('x-error-code'), 'FALLBACK_UNREACHABLE');
    // Probes run every 5 s.
    await waitFor(
      '/healthz to say degraded',
      async () => {
        const h = await fetch(`${b.url}/healthz`);
        return h.status === 200 && (await h.text()).includes(`degraded: fallback ${a.url} is down`);
      },
      15_000,
    );
    assert.equal((await fallbackStatus(b.url))?.kind, '2.x', 'the kind is kept while down');
  });
}
