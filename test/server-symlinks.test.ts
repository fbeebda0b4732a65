import assert from 'node:assert/strict';
import { lstat, mkdir, readdir, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { gzipSync } from 'node:zlib';
import { openStore } from '@filetracker/server';
import { runRecover, snapshotTree } from './helpers/recover-store.js';
import { httpRequest } from './helpers/server-http.js';
import { startServer, tempDir, type TestServer } from './helpers/server.js';
import { dateOf, putFile, sha256 } from './helpers/store-traffic.js';

// Issue 16 item 2: a symlink in links/ or blobs/ (a hand edit, a restored backup, an adopted
// Python store) must not take any call of the store outside it.

const V = 1_600_000_000;
const KEPT = Buffer.from('content of /real/kept.txt, stored the ordinary way');
const lm = (version: number): string => `last_modified=${encodeURIComponent(dateOf(version))}`;

const exists = (p: string): Promise<boolean> =>
  lstat(p).then(
    () => true,
    () => false,
  );

interface Planted {
  srv: TestServer;
  /** A directory outside the store that symlinks in `links/` point at. */
  outside: string;
  /** What `outside` held once planted: it must hold exactly that afterwards. */
  outsideBefore: Map<string, string>;
  blobsBefore: string[];
}

async function tempDirFor(t: TestContext, prefix: string): Promise<string> {
  const dir = await tempDir(prefix);
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Every file under `blobs/`, as `xx/name`. */
async function blobEntries(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(path.join(dir, 'blobs'))) {
    for (const f of await readdir(path.join(dir, 'blobs', d))) out.push(`${d}/${f}`);
  }
  return out.sort();
}

/**
 * A store holding `/real/kept.txt`, with `links/evil` and `links/real/evil` symlinks to a
 * directory outside it (a victim file, a symlink named like a link to the kept blob, a
 * subdirectory) and `links/real/up` a symlink to the store's own root.
 */
async function plant(t: TestContext, dir?: string): Promise<Planted> {
  const srv = await startServer(dir === undefined ? {} : { dir });
  t.after(() => srv.close());
  assert.equal((await putFile(srv.url, '/real/kept.txt', KEPT, V)).status, 200);
  const outside = await tempDirFor(t, 'ft-outside-');
  const digest = sha256(KEPT);
  await writeFile(path.join(outside, 'victim'), 'precious, and not the store’s');
  await symlink(`../blobs/${digest.slice(0, 2)}/${digest}`, path.join(outside, 'lnk'));
  await mkdir(path.join(outside, 'sub'));
  await writeFile(path.join(outside, 'sub', 'deep'), 'also precious');
  await symlink(outside, path.join(srv.dir, 'links', 'evil'));
  await symlink(outside, path.join(srv.dir, 'links', 'real', 'evil'));
  await symlink('../..', path.join(srv.dir, 'links', 'real', 'up'));
  return {
    srv,
    outside,
    outsideBefore: await snapshotTree(outside),
    blobsBefore: await blobEntries(srv.dir),
  };
}

async function assertOutsideUntouched(p: Planted): Promise<void> {
  assert.deepEqual(await snapshotTree(p.outside), p.outsideBefore);
  assert.deepEqual(await blobEntries(p.srv.dir), p.blobsBefore);
  const kept = await httpRequest(p.srv.url, '/files/real/kept.txt');
  assert.equal(kept.status, 200);
}

describe('a symlinked directory in links/ is not part of the store (issue 16)', () => {
  test('PUT under it is 409 PATH_CONFLICT and writes nothing through it', async (t) => {
    const p = await plant(t);
    for (const name of [
      '/evil/victim',
      '/evil/lnk',
      '/evil/new/deeper.txt',
      '/evil/sub/deep',
      '/real/evil/victim',
      '/real/up/blobs/ab/planted',
    ]) {
      const res = await httpRequest(p.srv.url, `/files${name}?${lm(V + 10)}`, {
        method: 'PUT',
        body: 'written through a symlink',
      });
      assert.equal(res.status, 409, name);
      assert.equal(res.headers['x-error-code'], 'PATH_CONFLICT', name);
    }
    await assertOutsideUntouched(p);
    assert.equal(await exists(path.join(p.srv.dir, 'blobs', 'ab', 'planted')), false);
    assert.equal((await p.srv.store.metadata.db.getBlob(sha256(KEPT)))?.refs, 1);
  });

  test('GET, HEAD and DELETE under it are 404 and read or remove nothing through it', async (t) => {
    const p = await plant(t);
    for (const name of [
      '/evil/lnk',
      '/real/evil/lnk',
      '/evil/victim',
      '/real/up/links/real/kept.txt',
    ]) {
      for (const method of ['GET', 'HEAD']) {
        const res = await httpRequest(p.srv.url, `/files${name}`, { method });
        assert.equal(res.status, 404, `${method} ${name}`);
      }
      const del = await httpRequest(p.srv.url, `/files${name}?${lm(V + 100)}`, {
        method: 'DELETE',
      });
      assert.equal(del.status, 404, `DELETE ${name}`);
    }
    await assertOutsideUntouched(p);
    assert.equal((await p.srv.store.metadata.db.getBlob(sha256(KEPT)))?.refs, 1);
  });

  test('/list of it is 400 NOT_A_DIRECTORY, and no listing descends into it', async (t) => {
    const p = await plant(t);
    for (const dir of ['/evil', '/evil/sub', '/real/evil', '/real/up', '/real/up/links']) {
      const res = await httpRequest(p.srv.url, `/list${dir}?${lm(V + 100)}`);
      assert.equal(res.status, 400, dir);
      assert.equal(res.headers['x-error-code'], 'NOT_A_DIRECTORY', dir);
    }
    for (const [dir, kept] of [
      ['/', 'real/kept.txt'],
      ['/real', 'kept.txt'],
    ] as const) {
      const res = await httpRequest(p.srv.url, `/list${dir}?${lm(V + 100)}`);
      assert.equal(res.status, 200, dir);
      const lines = res.body.toString().split('\n');
      assert.ok(lines.includes(kept), dir);
      const through = lines.filter((l) => /(^|\/)(evil|up)\//.test(l));
      assert.deepEqual(through, [], dir);
    }
    await assertOutsideUntouched(p);
  });

  test('ft-recover --check names each such link and exits 1; a repair removes only the link', async (t) => {
    const dir = await tempDirFor(t, 'ft-symlinks-');
    const p = await plant(t, dir);
    await p.srv.close();
    const storeBefore = await snapshotTree(dir, ['meta']);

    const check = await runRecover([dir, '--check']);
    assert.equal(check.code, 1, check.stdout + check.stderr);
    for (const link of ['links/evil', 'links/real/evil', 'links/real/up']) {
      assert.match(check.stderr, new RegExp(`^ft-recover: ${link} is a symlink to `, 'm'), link);
    }
    assert.deepEqual(await snapshotTree(dir, ['meta']), storeBefore);
    assert.deepEqual(await snapshotTree(p.outside), p.outsideBefore);

    const repair = await runRecover([dir]);
    assert.equal(repair.code, 0, repair.stdout + repair.stderr);
    assert.match(repair.stderr, /^ft-recover: links\/evil is a symlink to .*removed/m);
    for (const link of ['evil', 'real/evil', 'real/up']) {
      assert.equal(await exists(path.join(dir, 'links', link)), false, link);
    }
    assert.deepEqual(await snapshotTree(p.outside), p.outsideBefore);
    assert.deepEqual(await blobEntries(dir), p.blobsBefore);
    const again = await runRecover([dir, '--check']);
    assert.equal(again.code, 0, again.stdout + again.stderr);
  });
});

describe('a symlink in blobs/ is not followed (issue 16)', () => {
  test('ft-server refuses a store whose blobs/<xx> is a symlink; ft-recover --check names it', async (t) => {
    const dir = await tempDirFor(t, 'ft-symlinks-');
    const outside = await tempDirFor(t, 'ft-outside-');
    const srv = await startServer({ dir });
    assert.equal((await putFile(srv.url, '/kept.txt', KEPT, V)).status, 200);
    await srv.close();
    const prefix = sha256(KEPT).slice(0, 2);
    // The operator's "blobs/xx on another disk": the blob is there, behind a link.
    await rename(path.join(dir, 'blobs', prefix), path.join(outside, prefix));
    await symlink(path.join(outside, prefix), path.join(dir, 'blobs', prefix));
    const outsideBefore = await snapshotTree(outside);

    await assert.rejects(openStore(dir), { name: 'StoreOpenError', code: 'NEEDS_RECOVER' });
    const check = await runRecover([dir, '--check']);
    assert.equal(check.code, 1, check.stdout + check.stderr);
    assert.match(check.stderr, new RegExp(`^ft-recover: blobs/${prefix} is a symlink to `, 'm'));
    assert.deepEqual(await snapshotTree(outside), outsideBefore);
  });

  test('GET of a name whose blob file is a symlink is 500, never the file it points at', async (t) => {
    const dir = await tempDirFor(t, 'ft-symlinks-');
    const outside = await tempDirFor(t, 'ft-outside-');
    let srv = await startServer({ dir });
    assert.equal((await putFile(srv.url, '/kept.txt', KEPT, V)).status, 200);
    await srv.close();
    const digest = sha256(KEPT);
    const secret = path.join(outside, 'secret.gz');
    await writeFile(secret, gzipSync('a file outside the store'));
    const blob = path.join(dir, 'blobs', digest.slice(0, 2), digest);
    await unlink(blob);
    await symlink(secret, blob);

    srv = await startServer({ dir });
    t.after(() => srv.close());
    const res = await httpRequest(srv.url, '/files/kept.txt', {
      headers: { 'Accept-Encoding': 'gzip' },
    });
    assert.equal(res.status, 500);
    assert.equal(res.body.includes(gzipSync('a file outside the store')), false);
  });
});
