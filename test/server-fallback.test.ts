import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { encodeName, parseHttpDate } from '@filetracker/shared-protocol';
import { describeEachBackend, type Backend } from './helpers/backends.js';
import {
  LEGACY_MTIME,
  closedPortUrl,
  fakeFallback,
  serveLegacy,
  startBehindLegacy,
  versionQuery as q,
  writeLegacyTree,
  type MigrationSetUp,
} from './helpers/fallback.js';
import { tempDir } from './helpers/server.js';

async function put(base: string, name: string, body: string, version: number): Promise<Response> {
  return fetch(base + '/files' + encodeName(name) + q(version), { method: 'PUT', body });
}

async function del(base: string, name: string, version: number): Promise<Response> {
  return fetch(base + '/files' + encodeName(name) + q(version), { method: 'DELETE' });
}

function get(base: string, name: string, method = 'GET'): Promise<Response> {
  return fetch(base + '/files' + encodeName(name), { method, redirect: 'manual' });
}

const LEGACY = {
  '/a/plain.txt': 'plain legacy',
  '/a/sp ace #hash ?q 50%.in': 'odd name',
  '/zażółć/gęślą.txt': 'non-ascii',
  '/del/me.txt': 'to be deleted',
  '/del/held.txt': 'held and legacy',
  '/del/old.txt': 'newer than the delete',
  '/del/again.txt': 'deleted then re-put',
};

// Migration mode on every backend (helpers/backends.ts): tombstones in LevelDB locally, in
// PostgreSQL on the scale-out store.
describeEachBackend('ft-server in migration mode', fallbackSuite);

function fallbackSuite(backend: Backend): void {
  describe('ft-server with --fallback-url in front of ft-legacy-static', () => {
    let setUp: MigrationSetUp;
    let legacy: MigrationSetUp['legacy'];
    let server: MigrationSetUp['server'];

    before(async () => {
      setUp = await startBehindLegacy(backend, LEGACY);
      ({ legacy, server } = setUp);
    });

    after(() => setUp?.close());

    test('GET and HEAD of a name the server lacks are 307 to the fallback with the name percent-encoded', async () => {
      for (const name of Object.keys(LEGACY)) {
        for (const method of ['GET', 'HEAD']) {
          const res = await get(server.url, name, method);
          assert.equal(res.status, 307, `${method} ${name}`);
          assert.equal(res.headers.get('location'), legacy.url + '/files' + encodeName(name));
        }
      }
    });

    test('following the redirect gives the legacy bytes with the mtime as Last-Modified', async () => {
      for (const [name, content] of Object.entries(LEGACY)) {
        const res = await fetch(server.url + '/files' + encodeName(name));
        assert.equal(res.status, 200, name);
        assert.equal(await res.text(), content);
        assert.equal(parseHttpDate(res.headers.get('last-modified')!), LEGACY_MTIME);
      }
    });

    test('a name the server holds is served by the server itself', async () => {
      assert.equal(
        (await put(server.url, '/a/plain.txt', 'new content', LEGACY_MTIME + 10)).status,
        200,
      );
      const res = await get(server.url, '/a/plain.txt');
      assert.equal(res.status, 200);
      assert.equal(await res.text(), 'new content');
    });

    test('DELETE of a legacy-only name stays deleted: 404 instead of 307, older PUTs refused with 410', async () => {
      const res = await del(server.url, '/del/me.txt', LEGACY_MTIME + 100);
      assert.equal(res.status, 200);
      assert.equal((await get(server.url, '/del/me.txt')).status, 404);
      assert.equal((await get(server.url, '/del/me.txt', 'HEAD')).status, 404);
      // The migrator arrives later with the legacy version: nothing is stored, so the answer
      // claims no version (issue 16: it used to be 200 with Last-Modified of the tombstone).
      const migrated = await put(server.url, '/del/me.txt', 'to be deleted', LEGACY_MTIME);
      assert.equal(migrated.status, 410);
      assert.equal(migrated.headers.get('x-error-code'), 'DELETED');
      assert.equal(migrated.headers.get('last-modified'), null);
      assert.equal((await get(server.url, '/del/me.txt')).status, 404);
      // A second DELETE finds nothing.
      assert.equal((await del(server.url, '/del/me.txt', LEGACY_MTIME + 100)).status, 404);
    });

    test('a DELETE then a re-PUT within the same second keeps the re-PUT', async () => {
      const now = LEGACY_MTIME + 500;
      assert.equal((await del(server.url, '/del/again.txt', now)).status, 200);
      assert.equal((await put(server.url, '/del/again.txt', 'fresh', now)).status, 200);
      const res = await get(server.url, '/del/again.txt');
      assert.equal(res.status, 200);
      assert.equal(await res.text(), 'fresh');
      // ...and the migrator's legacy copy does not replace it.
      await put(server.url, '/del/again.txt', 'deleted then re-put', LEGACY_MTIME);
      assert.equal(await (await get(server.url, '/del/again.txt')).text(), 'fresh');
    });

    test('DELETE of a name held by both removes it and stops the legacy copy from coming back', async () => {
      assert.equal(
        (await put(server.url, '/del/held.txt', 'client wrote this', LEGACY_MTIME + 5)).status,
        200,
      );
      assert.equal((await del(server.url, '/del/held.txt', LEGACY_MTIME + 6)).status, 200);
      assert.equal(
        (await put(server.url, '/del/held.txt', 'held and legacy', LEGACY_MTIME)).status,
        410,
      );
      assert.equal((await get(server.url, '/del/held.txt')).status, 404);
    });

    test('DELETE older than a legacy-only file answers as for a held name and keeps the file (issue 18, item 4)', async () => {
      // The held case: a name the server holds at a version newer than the DELETE's.
      assert.equal((await put(server.url, '/held/newer.txt', 'held', LEGACY_MTIME)).status, 200);
      const heldAnswer = await del(server.url, '/held/newer.txt', LEGACY_MTIME - 1);
      assert.equal(await (await get(server.url, '/held/newer.txt')).text(), 'held');

      const res = await del(server.url, '/del/old.txt', LEGACY_MTIME - 1);
      assert.equal(res.status, 200);
      assert.equal(res.status, heldAnswer.status);
      assert.equal(await res.text(), await heldAnswer.text());
      assert.equal(await server.store.metadata.tombstone('/del/old.txt'), undefined);
      assert.equal((await get(server.url, '/del/old.txt')).status, 307);
      const kept = await fetch(server.url + '/files/del/old.txt');
      assert.equal(kept.status, 200);
      assert.equal(await kept.text(), 'newer than the delete');
      // ...and the migrator still brings it over.
      assert.equal(
        (await put(server.url, '/del/old.txt', 'newer than the delete', LEGACY_MTIME)).status,
        200,
      );
    });

    test('DELETE of a name nobody has is 404 and records nothing', async () => {
      assert.equal((await del(server.url, '/nobody/has.txt', LEGACY_MTIME + 1)).status, 404);
      assert.equal(await server.store.metadata.tombstone('/nobody/has.txt'), undefined);
    });

    test('a newer PUT clears a tombstone', async () => {
      assert.equal((await del(server.url, '/zażółć/gęślą.txt', LEGACY_MTIME)).status, 200);
      assert.equal(
        (await put(server.url, '/zażółć/gęślą.txt', 'newer', LEGACY_MTIME + 1)).status,
        200,
      );
      assert.equal(await server.store.metadata.tombstone('/zażółć/gęślą.txt'), undefined);
      assert.equal(await (await get(server.url, '/zażółć/gęślą.txt')).text(), 'newer');
    });
  });

  /**
   * Issue 16, item 9: while ft-legacy-static is down a DELETE of a name the server holds
   * still works, with a tombstone at the held version (MigrationMode.delete has the rule).
   */
  describe('ft-server whose ft-legacy-static has stopped', () => {
    let setUp: MigrationSetUp;
    let server: MigrationSetUp['server'];

    before(async () => {
      setUp = await startBehindLegacy(backend, {
        '/held/migrated.txt': 'legacy copy, migrated',
        '/held/client.txt': 'legacy copy, overwritten by a client',
        '/legacy/only.txt': 'never migrated',
      });
      const { legacy } = setUp;
      ({ server } = setUp);
      // The migrator copied one name (held at the legacy version); a client wrote another.
      assert.equal(
        (await put(server.url, '/held/migrated.txt', 'legacy copy, migrated', LEGACY_MTIME)).status,
        200,
      );
      assert.equal(
        (await put(server.url, '/held/client.txt', 'from a client', LEGACY_MTIME + 100)).status,
        200,
      );
      assert.equal(await legacy.stop(), 0);
    });

    after(() => setUp?.close());

    test('DELETE of a held name is 200 and the name is gone; the migrator cannot bring it back', async () => {
      const res = await del(server.url, '/held/migrated.txt', LEGACY_MTIME + 1000);
      assert.equal(res.status, 200);
      assert.equal((await get(server.url, '/held/migrated.txt')).status, 404);
      assert.equal((await get(server.url, '/held/migrated.txt', 'HEAD')).status, 404);
      assert.equal(await server.store.metadata.tombstone('/held/migrated.txt'), LEGACY_MTIME);
      // The migrator's upload of the legacy copy (again, after a restart) stores nothing.
      const migrated = await put(server.url, '/held/migrated.txt', 'legacy', LEGACY_MTIME);
      assert.equal(migrated.status, 410);
      assert.equal(migrated.headers.get('x-error-code'), 'DELETED');
      assert.equal(migrated.headers.get('last-modified'), null);
      assert.equal((await get(server.url, '/held/migrated.txt')).status, 404);
    });

    test('the tombstone of a held name is at the held version: PUTs up to it are 410, a newer one is stored', async () => {
      assert.equal((await del(server.url, '/held/client.txt', LEGACY_MTIME + 1000)).status, 200);
      assert.equal((await get(server.url, '/held/client.txt')).status, 404);
      assert.equal(await server.store.metadata.tombstone('/held/client.txt'), LEGACY_MTIME + 100);
      for (const version of [LEGACY_MTIME, LEGACY_MTIME + 100]) {
        const res = await put(server.url, '/held/client.txt', 'old', version);
        assert.equal(res.status, 410, `PUT at ${version}`);
        assert.equal(res.headers.get('x-error-code'), 'DELETED');
      }
      const newer = await put(server.url, '/held/client.txt', 'newer', LEGACY_MTIME + 101);
      assert.equal(newer.status, 200);
      assert.equal(parseHttpDate(newer.headers.get('last-modified')!), LEGACY_MTIME + 101);
      assert.equal(await (await get(server.url, '/held/client.txt')).text(), 'newer');
      assert.equal(await server.store.metadata.tombstone('/held/client.txt'), undefined);
    });

    test('DELETE of a name the server does not hold is still 502 and records nothing', async () => {
      const res = await del(server.url, '/legacy/only.txt', LEGACY_MTIME + 1000);
      assert.equal(res.status, 502);
      assert.equal(res.headers.get('x-error-code'), 'FALLBACK_UNREACHABLE');
      assert.equal(await server.store.metadata.tombstone('/legacy/only.txt'), undefined);
    });
  });

  describe('ft-server with an unusable fallback', () => {
    let silent: Awaited<ReturnType<typeof fakeFallback>>;
    let silentUrl: string;
    let closedUrl: string;

    before(async () => {
      // Accepts connections and never answers: a hung 1.x server.
      silent = await fakeFallback();
      silentUrl = silent.url;
      closedUrl = await closedPortUrl();
    });

    after(() => silent?.close());

    test('DELETE while the fallback is unreachable is 502 and records nothing', async (t) => {
      const server = await backend.start({ fallbackUrl: closedUrl });
      t.after(() => server.close());
      const res = await del(server.url, '/x.txt', LEGACY_MTIME);
      assert.equal(res.status, 502);
      assert.equal(res.headers.get('x-error-code'), 'FALLBACK_UNREACHABLE');
      assert.equal(await server.store.metadata.tombstone('/x.txt'), undefined);
    });

    test('DELETE while the fallback hangs is 504 after the timeout, not a hang', async (t) => {
      const server = await backend.start({ fallbackUrl: silentUrl, fallbackTimeoutMs: 300 });
      t.after(() => server.close());
      const res = await del(server.url, '/x.txt', LEGACY_MTIME);
      assert.equal(res.status, 504);
      assert.equal(res.headers.get('x-error-code'), 'FALLBACK_TIMEOUT');
      assert.equal(await server.store.metadata.tombstone('/x.txt'), undefined);
    });

    test('DELETE of a held name while the fallback hangs is 200 after the timeout, with a tombstone at the held version', async (t) => {
      const server = await backend.start({ fallbackUrl: silentUrl, fallbackTimeoutMs: 300 });
      t.after(() => server.close());
      assert.equal((await put(server.url, '/held.txt', 'held', LEGACY_MTIME)).status, 200);
      assert.equal((await del(server.url, '/held.txt', LEGACY_MTIME + 1)).status, 200);
      assert.equal((await get(server.url, '/held.txt')).status, 404);
      assert.equal(await server.store.metadata.tombstone('/held.txt'), LEGACY_MTIME);
      assert.equal((await put(server.url, '/held.txt', 'held', LEGACY_MTIME)).status, 410);
    });

    test('reads never ask the fallback: a hung fallback still gets 307s at once', async (t) => {
      const server = await backend.start({ fallbackUrl: silentUrl, fallbackTimeoutMs: 60_000 });
      t.after(() => server.close());
      const res = await get(server.url, '/any/name.txt');
      assert.equal(res.status, 307);
    });
  });

  describe('tombstones without --fallback-url', () => {
    test('are not consulted once migration mode is off', async (t) => {
      const root = await tempDir('ft-legacy-');
      t.after(() => rm(root, { recursive: true, force: true }));
      await writeLegacyTree(root, { '/gone.txt': 'legacy' });
      const legacy = await serveLegacy(root);
      t.after(() => legacy.stop());
      const first = await backend.start({ fallbackUrl: legacy.url });
      t.after(() => first.close());
      assert.equal((await del(first.url, '/gone.txt', LEGACY_MTIME)).status, 200);
      // The same store, restarted without --fallback-url.
      const second = await first.restart();
      t.after(() => second.close());
      assert.equal((await get(second.url, '/gone.txt')).status, 404);
      assert.equal((await put(second.url, '/gone.txt', 'legacy', LEGACY_MTIME)).status, 200);
      assert.equal(await (await get(second.url, '/gone.txt')).text(), 'legacy');
    });
  });
}
