/**
 * Store directories removed while ft-server runs (issue 18, item 3): an operator's
 * `rm -rf DIR/*`, a tmp cleaner, a lost mount. What can be made again is (ft-tmp/, blobs/,
 * links/); a removed database (meta/) or store directory makes writes 503 with the reason,
 * and /healthz says it; never a 500.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { access, mkdir, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { formatHttpDate } from '@filetracker/shared-protocol';
import { startProcess, tempDir, type RunningProcess } from './helpers/server.js';

const Q = '?last_modified=' + encodeURIComponent(formatHttpDate(1_700_000_000));
/** Longer than ft-server waits between two looks at its directories. */
const NOTICED_MS = 250;

interface Answer {
  status: number;
  code: string | null;
  reason: string | null;
  body: string;
}

async function answer(res: Response): Promise<Answer> {
  const result = {
    status: res.status,
    code: res.headers.get('x-error-code'),
    reason: res.headers.get('x-exception'),
    body: await res.text(),
  };
  assert.notEqual(result.status, 500, `a 500: ${result.body}`);
  return result;
}

/** A store directory of its own and ft-server on it; both gone after the test. */
async function serve(t: TestContext): Promise<{ server: RunningProcess; dir: string }> {
  const parent = await tempDir('ft-store-removed-');
  t.after(() => rm(parent, { recursive: true, force: true }));
  const dir = path.join(parent, 'store');
  const server = await startProcess('packages/server/bin/ft-server.mjs', ['-d', dir, '-p', '0']);
  t.after(async () => {
    assert.equal(await server.stop(), 0, server.stderr());
  });
  return { server, dir };
}

function put(
  url: string,
  name: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  return fetch(`${url}/files${name}${Q}`, { method: 'PUT', body, headers }).then(answer);
}

/** A PUT whose body is streamed (no Content-Length): written to ft-tmp/ as it comes. */
function putStreamed(url: string, name: string, body: string): Promise<Answer> {
  return fetch(`${url}/files${name}${Q}`, {
    method: 'PUT',
    body: Readable.toWeb(Readable.from([Buffer.from(body)])) as ReadableStream,
    duplex: 'half',
  } as RequestInit).then(answer);
}

const get = (url: string, name: string): Promise<Answer> =>
  fetch(`${url}/files${name}`).then(answer);
const del = (url: string, name: string): Promise<Answer> =>
  fetch(`${url}/files${name}${Q}`, { method: 'DELETE' }).then(answer);
const healthz = (url: string): Promise<Answer> => fetch(`${url}/healthz`).then(answer);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function assertRefused(a: Answer, what: string): void {
  assert.equal(a.status, 503, `${what}: ${a.body}`);
  assert.equal(a.code, 'STORE_NOT_WRITABLE', what);
  assert.ok(a.reason && a.reason.length > 0, `${what}: a reason`);
}

test('ft-tmp/ removed while ft-server runs is made again: no upload is a 500, and later ones are stored', async (t) => {
  const { server, dir } = await serve(t);
  assert.equal((await put(server.url, '/a/one.txt', 'one')).status, 200);
  await rm(path.join(dir, 'ft-tmp'), { recursive: true });
  // At once, before ft-server looks at its directories again: the write meets ENOENT.
  const first = await putStreamed(server.url, '/a/two.txt', 'two');
  if (first.status !== 200) assertRefused(first, 'the PUT that met the removal');
  await access(path.join(dir, 'ft-tmp'));
  assert.equal((await putStreamed(server.url, '/a/two.txt', 'two')).status, 200);
  await rm(path.join(dir, 'ft-tmp'), { recursive: true });
  await sleep(NOTICED_MS);
  assert.equal((await put(server.url, '/a/three.txt', 'three')).status, 200);
  assert.equal((await get(server.url, '/a/two.txt')).body, 'two');
  assert.equal((await get(server.url, '/a/three.txt')).body, 'three');
  assert.equal((await del(server.url, '/a/one.txt')).status, 200);
  await rm(path.join(dir, 'ft-tmp'), { recursive: true });
  assert.equal((await healthz(server.url)).status, 200);
  await access(path.join(dir, 'ft-tmp'));
});

test('blobs/ removed: a name whose blob is gone is 404, and an upload of its content stores it again instead of linking to nothing', async (t) => {
  const { server, dir } = await serve(t);
  for (const name of ['/b/x.txt', '/b/y.txt', '/b/z.txt']) {
    assert.equal((await put(server.url, name, `content of ${name}`)).status, 200);
  }
  await rm(path.join(dir, 'blobs'), { recursive: true });
  await sleep(NOTICED_MS);
  assert.equal((await get(server.url, '/b/x.txt')).status, 404);
  // The same content under another name: the record says stored, the file is not.
  assert.equal((await put(server.url, '/b/x-copy.txt', 'content of /b/x.txt')).status, 200);
  assert.equal((await get(server.url, '/b/x-copy.txt')).body, 'content of /b/x.txt');
  assert.equal((await get(server.url, '/b/x.txt')).body, 'content of /b/x.txt');
  // The same content under the same name.
  assert.equal((await put(server.url, '/b/y.txt', 'content of /b/y.txt')).status, 200);
  assert.equal((await get(server.url, '/b/y.txt')).body, 'content of /b/y.txt');
  // With its checksum, as the Python client sends it (the body is then only verified
  // when the content is stored).
  const z = 'content of /b/z.txt';
  const checksum = createHash('sha256').update(z).digest('hex');
  assert.equal(
    (await put(server.url, '/b/z-copy.txt', z, { 'SHA256-Checksum': checksum })).status,
    200,
  );
  assert.equal((await get(server.url, '/b/z-copy.txt')).body, z);
  assert.equal((await del(server.url, '/b/x.txt')).status, 200);
  assert.equal((await get(server.url, '/b/x-copy.txt')).body, 'content of /b/x.txt');
  assert.equal((await healthz(server.url)).status, 200);
});

test('links/ removed: made again, the names it held are gone, new ones are stored and listed', async (t) => {
  const { server, dir } = await serve(t);
  assert.equal((await put(server.url, '/c/old.txt', 'old')).status, 200);
  await rm(path.join(dir, 'links'), { recursive: true });
  await sleep(NOTICED_MS);
  assert.equal((await put(server.url, '/c/new.txt', 'new')).status, 200);
  assert.equal((await get(server.url, '/c/new.txt')).body, 'new');
  assert.equal((await get(server.url, '/c/old.txt')).status, 404);
  assert.equal((await del(server.url, '/c/old.txt')).status, 404);
  const list = await fetch(`${server.url}/list/`).then(answer);
  assert.deepEqual(list.body.split('\n').filter(Boolean), ['c/new.txt']);
  assert.equal((await healthz(server.url)).status, 200);
});

for (const [what, remove] of [
  ['meta/ removed', (dir: string) => rm(path.join(dir, 'meta'), { recursive: true })],
  [
    'everything in the store directory removed (rm -rf DIR/*)',
    async (dir: string) => {
      for (const entry of await readdir(dir)) {
        await rm(path.join(dir, entry), { recursive: true });
      }
    },
  ],
] as const) {
  test(`${what}: PUT and DELETE are 503 STORE_NOT_WRITABLE with the reason, /healthz 503 says it, reads go on`, async (t) => {
    const { server, dir } = await serve(t);
    assert.equal((await put(server.url, '/d/kept.txt', 'kept')).status, 200);
    await remove(dir);
    await sleep(NOTICED_MS);
    assertRefused(await put(server.url, '/d/new.txt', 'new'), 'PUT');
    assertRefused(await put(server.url, '/d/kept.txt', 'kept again'), 'PUT of a held name');
    assertRefused(await del(server.url, '/d/kept.txt'), 'DELETE');
    const health = await healthz(server.url);
    assert.equal(health.status, 503);
    assert.equal(health.code, 'STORE_NOT_WRITABLE', 'the code a write meets');
    assert.equal(health.body.trim(), health.reason);
    // Still 503 later: the database that is gone stays gone until a restart.
    await sleep(NOTICED_MS);
    assertRefused(await put(server.url, '/d/new.txt', 'new'), 'a later PUT');
    const read = await get(server.url, '/d/kept.txt');
    assert.ok([200, 404].includes(read.status), `GET: ${read.status}`);
    assert.equal((await get(server.url, '/d/new.txt')).status, 404);
  });
}

test('the store directory replaced (a lost mount): writes are 503, /healthz 503, and no store is made in its place', async (t) => {
  const { server, dir } = await serve(t);
  assert.equal((await put(server.url, '/e/kept.txt', 'kept')).status, 200);
  // What a lost mount leaves: the path leads to an empty directory.
  await rename(dir, dir + '.mounted');
  t.after(() => rm(dir + '.mounted', { recursive: true, force: true }));
  await mkdir(dir);
  await sleep(NOTICED_MS);
  assertRefused(await put(server.url, '/e/new.txt', 'new'), 'PUT');
  assertRefused(await del(server.url, '/e/kept.txt'), 'DELETE');
  assert.equal((await healthz(server.url)).status, 503);
  assert.deepEqual(await readdir(dir), []);
});
