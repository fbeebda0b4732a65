import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { BACKENDS, type Backend, type BackendServer as TestServer } from './helpers/backends.js';
import { RawConnection, httpRequest, type HttpResult } from './helpers/server-http.js';

const VERSION_BODY = '{"protocol_versions": [2]}';
const V = 1_700_000_000;

/** `last_modified` as the Python client sends it: formatdate(), form-encoded. */
function lm(version: number): string {
  const date = new Date(version * 1000).toUTCString().replace(/GMT$/, '-0000');
  return 'last_modified=' + encodeURIComponent(date).replace(/%20/g, '+');
}

/** `quote(name, safe='/')`, as the Python client builds URLs. */
function quote(name: string): string {
  return name
    .split('/')
    .map((c) =>
      encodeURIComponent(c).replace(/[!'()*]/g, (ch) => '%' + ch.charCodeAt(0).toString(16)),
    )
    .join('/');
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The version a `Last-Modified` header names, in whole seconds. */
function versionOf(res: { headers: Record<string, string | string[] | undefined> }): number {
  const value = res.headers['last-modified'];
  assert.equal(typeof value, 'string', 'Last-Modified present');
  const ms = Date.parse(value as string);
  assert.ok(!Number.isNaN(ms), `Last-Modified parses: ${String(value)}`);
  return ms / 1000;
}

function assertError(res: HttpResult, status: number, code: string): void {
  assert.equal(res.status, status, `status (body: ${res.body.toString()})`);
  assert.equal(res.headers['x-error-code'], code);
}

interface PutOptions {
  /** Send the body gzipped with `Content-Encoding: gzip`. */
  gzip?: boolean;
  /** Send `SHA256-Checksum` and `Logical-Size` (true by default with gzip). */
  hints?: boolean;
  chunked?: boolean;
}

function putFile(
  ft: TestServer,
  name: string,
  content: Buffer | string,
  version: number,
  options: PutOptions = {},
): Promise<HttpResult> {
  const plain = Buffer.from(content);
  const gzip = options.gzip ?? false;
  const hints = options.hints ?? gzip;
  const headers: Record<string, string | number> = {};
  if (gzip) headers['Content-Encoding'] = 'gzip';
  if (hints) {
    headers['SHA256-Checksum'] = sha256(plain);
    headers['Logical-Size'] = plain.length;
  }
  const body = gzip ? gzipSync(plain) : plain;
  return httpRequest(ft.url, `/files${quote(name)}?${lm(version)}`, {
    method: 'PUT',
    headers,
    body: options.chunked ? [body.subarray(0, 7), body.subarray(7)] : body,
    chunked: options.chunked ?? false,
  });
}

async function putOk(
  ft: TestServer,
  name: string,
  content: Buffer | string,
  version: number,
  options: PutOptions = {},
): Promise<HttpResult> {
  const res = await putFile(ft, name, content, version, options);
  assert.equal(res.status, 200, `PUT ${name}: ${res.body.toString()}`);
  return res;
}

function getFile(
  ft: TestServer,
  name: string,
  headers: Record<string, string> = {},
  method = 'GET',
): Promise<HttpResult> {
  return httpRequest(ft.url, `/files${quote(name)}`, { method, headers });
}

/** GET without Accept-Encoding: the plain content. */
async function readPlain(ft: TestServer, name: string): Promise<Buffer> {
  const res = await getFile(ft, name);
  assert.equal(res.status, 200, `GET ${name}`);
  return res.body;
}

function deleteFile(ft: TestServer, name: string, version: number): Promise<HttpResult> {
  return httpRequest(ft.url, `/files${quote(name)}?${lm(version)}`, { method: 'DELETE' });
}

async function list(ft: TestServer, pathAndQuery: string): Promise<HttpResult> {
  return httpRequest(ft.url, pathAndQuery);
}

/** A list body as a sorted array of lines, after checking every line ends in `\n`. */
function lines(body: Buffer): string[] {
  const text = body.toString('utf8');
  if (text === '') return [];
  assert.ok(text.endsWith('\n'), 'every line ends with \\n');
  return text.slice(0, -1).split('\n').sort();
}

// The whole suite runs on every backend (helpers/backends.ts): the local store, and the
// scale-out store on real PostgreSQL and Swift, skipped with the reason where not installed.
for (const backend of BACKENDS) {
  describe(`ft-server protocol over HTTP (${backend.name})`, { skip: backend.skip }, () =>
    protocolSuite(backend),
  );
}

function protocolSuite(backend: Backend): void {
  let ft: TestServer;
  before(async () => {
    await backend.setUp();
    ft = await backend.start();
  });
  after(async () => {
    await ft?.close();
    await backend.tearDown();
  });

  describe('/version', () => {
    const forms = ['/version', '/version/', '//version/', '/prefix//version', '/version/x'];
    for (const form of forms) {
      it(`GET ${form} is 200 application/json with exactly the protocol body`, async () => {
        const res = await httpRequest(ft.url, form);
        assert.equal(res.status, 200);
        assert.match(String(res.headers['content-type']), /^application\/json(;|$)/);
        assert.equal(res.body.toString('utf8'), VERSION_BODY);
      });

      it(`HEAD ${form} is 200 application/json with no body`, async () => {
        const conn = await RawConnection.open(ft.port);
        try {
          await conn.write(`HEAD ${form} HTTP/1.1\r\nHost: x\r\n\r\n`);
          const head = await conn.readResponse({ head: true });
          assert.equal(head?.status, 200);
          assert.match(head.headers['content-type'] ?? '', /^application\/json(;|$)/);
          // A body after the HEAD answer would corrupt this next one.
          await conn.write('GET /version HTTP/1.1\r\nHost: x\r\n\r\n');
          const next = await conn.readResponse();
          assert.equal(next?.status, 200);
          assert.equal(next.body.toString(), VERSION_BODY);
        } finally {
          conn.destroy();
        }
      });
    }
  });

  it('GET /status is 200', async () => {
    const res = await httpRequest(ft.url, '/status');
    assert.equal(res.status, 200);
  });

  for (const p of ['/', '/FILES/x', '/listC', '/listC/a', '/Version']) {
    it(`GET ${p} is 400 UNKNOWN_ENDPOINT`, async () => {
      assertError(await httpRequest(ft.url, p), 400, 'UNKNOWN_ENDPOINT');
    });
  }

  describe('405 with Allow', () => {
    for (const method of ['POST', 'PATCH']) {
      it(`${method} /files/x is 405 with Allow: GET, HEAD, PUT, DELETE`, async () => {
        const res = await httpRequest(ft.url, `/files/m405/x?${lm(V)}`, { method, body: 'x' });
        assertError(res, 405, 'METHOD_NOT_ALLOWED');
        const allow = String(res.headers['allow'])
          .split(/\s*,\s*/)
          .sort();
        assert.deepEqual(allow, ['DELETE', 'GET', 'HEAD', 'PUT']);
        assert.equal((await getFile(ft, '/m405/x')).status, 404);
      });

      it(`${method} /version is 405 with Allow: GET, HEAD`, async () => {
        const res = await httpRequest(ft.url, '/version', { method, body: 'x' });
        assertError(res, 405, 'METHOD_NOT_ALLOWED');
        const allow = String(res.headers['allow'])
          .split(/\s*,\s*/)
          .sort();
        assert.deepEqual(allow, ['GET', 'HEAD']);
      });
    }
  });

  describe('PUT and GET', () => {
    const content = Buffer.from('Hello, filetracker!\n'.repeat(20));
    const gz = gzipSync(content);

    it('PUT of a gzip body with all hints is 200 with an empty body and Last-Modified = the version', async () => {
      const res = await httpRequest(ft.url, `/files/pg/a.txt?${lm(V)}`, {
        method: 'PUT',
        headers: {
          'Content-Encoding': 'gzip',
          'SHA256-Checksum': sha256(content),
          'Logical-Size': content.length,
        },
        body: gz,
      });
      assert.equal(res.status, 200);
      assert.equal(res.body.length, 0);
      assert.equal(versionOf(res), V);
      assert.match(
        String(res.headers['last-modified']),
        /^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/,
      );
    });

    it('GET with Accept-Encoding: gzip returns the stored gzip as is, with its sizes', async () => {
      const res = await getFile(ft, '/pg/a.txt', { 'Accept-Encoding': 'gzip, deflate' });
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-encoding'], 'gzip');
      assert.match(String(res.headers['content-type']), /^application\/octet-stream/);
      assert.equal(res.headers['content-length'], String(gz.length));
      assert.equal(res.headers['logical-size'], String(content.length));
      assert.equal(versionOf(res), V);
      assert.deepEqual(res.body, gz);
    });

    it('GET without Accept-Encoding returns the plain bytes with Content-Length = logical size', async () => {
      const res = await getFile(ft, '/pg/a.txt');
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-encoding'], undefined);
      assert.equal(res.headers['content-length'], String(content.length));
      assert.equal(res.headers['logical-size'], String(content.length));
      assert.equal(versionOf(res), V);
      assert.deepEqual(res.body, content);
    });

    it('GET with Accept-Encoding that refuses gzip returns the plain bytes', async () => {
      const res = await getFile(ft, '/pg/a.txt', { 'Accept-Encoding': 'gzip;q=0, identity' });
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-encoding'], undefined);
      assert.deepEqual(res.body, content);
    });

    for (const ae of ['gzip, deflate', undefined]) {
      it(`HEAD has the same headers as GET and no body (Accept-Encoding: ${ae ?? 'none'})`, async () => {
        const headers: Record<string, string> = ae ? { 'Accept-Encoding': ae } : {};
        const get = await getFile(ft, '/pg/a.txt', headers);
        const conn = await RawConnection.open(ft.port);
        try {
          const aeLine = ae ? `Accept-Encoding: ${ae}\r\n` : '';
          await conn.write(`HEAD /files/pg/a.txt HTTP/1.1\r\nHost: x\r\n${aeLine}\r\n`);
          const head = await conn.readResponse({ head: true });
          assert.equal(head?.status, 200);
          for (const h of [
            'content-type',
            'content-length',
            'content-encoding',
            'last-modified',
            'logical-size',
            'etag',
          ]) {
            assert.equal(head.headers[h], get.headers[h], h);
          }
          assert.ok(head.headers['etag'], 'ETag present');
          await conn.write('GET /version HTTP/1.1\r\nHost: x\r\n\r\n');
          const next = await conn.readResponse();
          assert.equal(next?.status, 200, 'no body bytes after the HEAD answer');
          assert.equal(next.body.toString(), VERSION_BODY);
        } finally {
          conn.destroy();
        }
      });
    }

    it('If-None-Match with the ETag is 304 with no body; another ETag is 200', async () => {
      const first = await getFile(ft, '/pg/a.txt', { 'Accept-Encoding': 'gzip' });
      const etag = String(first.headers['etag']);
      assert.ok(etag.length > 2);
      const cached = await getFile(ft, '/pg/a.txt', {
        'Accept-Encoding': 'gzip',
        'If-None-Match': etag,
      });
      assert.equal(cached.status, 304);
      assert.equal(cached.body.length, 0);
      const listed = await getFile(ft, '/pg/a.txt', { 'If-None-Match': `"nope", ${etag}` });
      assert.equal(listed.status, 304);
      const other = await getFile(ft, '/pg/a.txt', { 'If-None-Match': '"something-else"' });
      assert.equal(other.status, 200);
      assert.deepEqual(other.body, content);
    });

    it('PUT of a plain body without any hints stores it (gzip on the way out, right Logical-Size)', async () => {
      const plain = Buffer.from('no hints at all, just bytes\n'.repeat(9));
      const res = await putOk(ft, '/pg/plain.bin', plain, V);
      assert.equal(versionOf(res), V);
      const gzRes = await getFile(ft, '/pg/plain.bin', { 'Accept-Encoding': 'gzip' });
      assert.equal(gzRes.headers['content-encoding'], 'gzip');
      assert.equal(gzRes.headers['content-length'], String(gzRes.body.length));
      assert.equal(gzRes.headers['logical-size'], String(plain.length));
      assert.deepEqual(gunzipSync(gzRes.body), plain);
      assert.deepEqual(await readPlain(ft, '/pg/plain.bin'), plain);
    });

    it('PUT with only some hints (checksum only, Logical-Size only, gzip without hints) works', async () => {
      const a = Buffer.from('checksum only');
      let res = await httpRequest(ft.url, `/files/pg/subset/a?${lm(V)}`, {
        method: 'PUT',
        headers: { 'SHA256-Checksum': sha256(a).toUpperCase() },
        body: a,
      });
      assert.equal(res.status, 200);
      const b = Buffer.from('logical size only');
      res = await httpRequest(ft.url, `/files/pg/subset/b?${lm(V)}`, {
        method: 'PUT',
        headers: { 'Logical-Size': b.length },
        body: b,
      });
      assert.equal(res.status, 200);
      const c = Buffer.from('gzip, no hints');
      await putOk(ft, '/pg/subset/c', c, V, { gzip: true, hints: false });
      assert.deepEqual(await readPlain(ft, '/pg/subset/a'), a);
      assert.deepEqual(await readPlain(ft, '/pg/subset/b'), b);
      assert.deepEqual(await readPlain(ft, '/pg/subset/c'), c);
    });

    it('PUT with Content-Encoding other than exactly gzip stores the body as plain bytes', async () => {
      const body = Buffer.from('deflate is not gzip');
      const res = await httpRequest(ft.url, `/files/pg/deflate?${lm(V)}`, {
        method: 'PUT',
        headers: { 'Content-Encoding': 'deflate' },
        body,
      });
      assert.equal(res.status, 200);
      assert.deepEqual(await readPlain(ft, '/pg/deflate'), body);
    });

    it('PUT with a chunked body (no Content-Length) works, plain and gzip with hints', async () => {
      const plain = Buffer.from('chunked plain body\n'.repeat(50));
      await putOk(ft, '/pg/chunked-plain', plain, V, { chunked: true });
      assert.deepEqual(await readPlain(ft, '/pg/chunked-plain'), plain);
      const zipped = Buffer.from('chunked gzip body\n'.repeat(50));
      await putOk(ft, '/pg/chunked-gzip', zipped, V, { chunked: true, gzip: true });
      const res = await getFile(ft, '/pg/chunked-gzip', { 'Accept-Encoding': 'gzip' });
      assert.deepEqual(res.body, gzipSync(zipped));
      assert.equal(res.headers['logical-size'], String(zipped.length));
    });

    it('PUT of an empty body stores an empty file', async () => {
      await putOk(ft, '/pg/empty', Buffer.alloc(0), V);
      const res = await getFile(ft, '/pg/empty');
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-length'], '0');
      assert.equal(res.headers['logical-size'], '0');
      assert.equal(res.body.length, 0);
    });

    it('a large upload (8 MiB, plain and gzip) reads back intact', async () => {
      const big = Buffer.alloc(8 * 1024 * 1024);
      for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
      await putOk(ft, '/pg/big-plain', big, V);
      await putOk(ft, '/pg/big-gzip', big, V, { gzip: true });
      assert.ok((await readPlain(ft, '/pg/big-plain')).equals(big));
      const res = await getFile(ft, '/pg/big-gzip', { 'Accept-Encoding': 'gzip' });
      assert.equal(res.headers['logical-size'], String(big.length));
      assert.ok(gunzipSync(res.body).equals(big));
    });
  });

  describe('versions', () => {
    it('a GET answered from memory carries the headers of the version stored now', async () => {
      const gz = { 'Accept-Encoding': 'gzip' };
      const name = '/ver/memory.txt';
      await putOk(ft, name, 'first content', V);
      // The second GET of a name is answered from memory.
      for (let i = 0; i < 2; i++) assert.equal(versionOf(await getFile(ft, name, gz)), V);
      // Same content, newer version: same blob in memory, new Last-Modified.
      await putOk(ft, name, 'first content', V + 10);
      const same = await getFile(ft, name, gz);
      assert.equal(versionOf(same), V + 10);
      assert.equal(gunzipSync(same.body).toString(), 'first content');
      // New content: every header follows it.
      await putOk(ft, name, 'second, longer content', V + 20);
      const changed = await getFile(ft, name, gz);
      assert.equal(versionOf(changed), V + 20);
      assert.equal(changed.headers['logical-size'], String('second, longer content'.length));
      assert.equal(changed.headers['etag'], `"${sha256(Buffer.from('second, longer content'))}"`);
      assert.equal(changed.headers['content-length'], String(changed.body.length));
      assert.equal(gunzipSync(changed.body).toString(), 'second, longer content');
    });

    it('PUT answers Last-Modified equal to the version it stored, for several versions', async () => {
      for (const v of [1, 86_400, V, 2_000_000_000, 4_102_444_800]) {
        const res = await putOk(ft, `/ver/at-${v}`, `v${v}`, v);
        assert.equal(versionOf(res), v);
        assert.equal(versionOf(await getFile(ft, `/ver/at-${v}`, {}, 'HEAD')), v);
      }
    });

    it('PUT with a pre-1970 (negative) version stores it and answers it as Last-Modified', async () => {
      const v = -86_400 * 365;
      const res = await putOk(ft, '/ver/negative', 'old', v);
      assert.equal(versionOf(res), v);
      assert.equal(versionOf(await getFile(ft, '/ver/negative', {}, 'HEAD')), v);
    });

    it('PUT of an equal version replaces the content', async () => {
      await putOk(ft, '/ver/equal', 'first', V);
      const res = await putOk(ft, '/ver/equal', 'second', V);
      assert.equal(versionOf(res), V);
      assert.equal((await readPlain(ft, '/ver/equal')).toString(), 'second');
    });

    it('PUT of a newer version replaces the content and the version', async () => {
      await putOk(ft, '/ver/newer', 'first', V);
      const res = await putOk(ft, '/ver/newer', 'second', V + 1);
      assert.equal(versionOf(res), V + 1);
      const get = await getFile(ft, '/ver/newer');
      assert.equal(get.body.toString(), 'second');
      assert.equal(versionOf(get), V + 1);
    });

    it('PUT of an older version keeps the newer file and returns its Last-Modified', async () => {
      await putOk(ft, '/ver/older', 'newer content', V + 100);
      const res = await putOk(ft, '/ver/older', 'older content', V);
      assert.equal(versionOf(res), V + 100);
      const get = await getFile(ft, '/ver/older');
      assert.equal(get.body.toString(), 'newer content');
      assert.equal(versionOf(get), V + 100);
    });

    it('PUT of an older version of a name not in memory keeps the newer file whatever the body, leaving nothing behind', async () => {
      await putOk(ft, '/ver/cold/good', 'newer content', V + 100, { gzip: true });
      await putOk(ft, '/ver/cold/bad', 'newer content', V + 100, { gzip: true });
      // A fresh process looks each name up (while it reads a small body) instead of knowing it.
      ft = await ft.restart();
      const good = await putOk(ft, '/ver/cold/good', 'older content', V, { gzip: true });
      assert.equal(versionOf(good), V + 100);
      // A body that fails its claims is answered alike: the newer version stands.
      const bad = await httpRequest(ft.url, `/files/ver/cold/bad?${lm(V)}`, {
        method: 'PUT',
        headers: {
          'Content-Encoding': 'gzip',
          'SHA256-Checksum': sha256(Buffer.from('something else')),
          'Logical-Size': 'older content'.length,
        },
        body: gzipSync('older content'),
      });
      assert.equal(bad.status, 200, bad.body.toString());
      assert.equal(versionOf(bad), V + 100);
      for (const name of ['/ver/cold/good', '/ver/cold/bad']) {
        const get = await getFile(ft, name);
        assert.equal(get.body.toString(), 'newer content');
        assert.equal(versionOf(get), V + 100);
      }
      assert.deepEqual(await ft.view.tmpEntries(), []);
    });

    it('DELETE with an older date keeps the file and is 200', async () => {
      await putOk(ft, '/ver/keep', 'still here', V + 10);
      const res = await deleteFile(ft, '/ver/keep', V);
      assert.equal(res.status, 200);
      const get = await getFile(ft, '/ver/keep');
      assert.equal(get.status, 200);
      assert.equal(get.body.toString(), 'still here');
      assert.equal(versionOf(get), V + 10);
    });

    it('DELETE with an equal or newer date removes the file', async () => {
      await putOk(ft, '/ver/gone-equal', 'x', V);
      assert.equal((await deleteFile(ft, '/ver/gone-equal', V)).status, 200);
      assert.equal((await getFile(ft, '/ver/gone-equal')).status, 404);
      await putOk(ft, '/ver/gone-newer', 'x', V);
      assert.equal((await deleteFile(ft, '/ver/gone-newer', V + 1)).status, 200);
      assert.equal((await getFile(ft, '/ver/gone-newer')).status, 404);
    });
  });

  describe('absent names', () => {
    it('DELETE of an absent name is exactly 404', async () => {
      const res = await deleteFile(ft, '/absent/nothing', V);
      assert.equal(res.status, 404);
      assert.equal(res.headers['x-error-code'], 'NOT_FOUND');
    });

    it('DELETE of a directory name is exactly 404 and keeps its files', async () => {
      await putOk(ft, '/absent/dir/inner', 'inner', V);
      assert.equal((await deleteFile(ft, '/absent/dir', V)).status, 404);
      assert.equal((await readPlain(ft, '/absent/dir/inner')).toString(), 'inner');
    });

    for (const method of ['GET', 'HEAD']) {
      it(`${method} of an absent name, under an absent dir and of a directory is exactly 404`, async () => {
        await putOk(ft, '/absent/d2/f', 'f', V);
        for (const name of ['/absent/missing.txt', '/nowhere/at/all', '/absent/d2', '/absent']) {
          const res = await getFile(ft, name, { 'Accept-Encoding': 'gzip' }, method);
          assert.equal(res.status, 404, `${method} ${name}`);
        }
        // Under a file: the "directory" is a file.
        const under = await getFile(ft, '/absent/d2/f/x', {}, method);
        assert.equal(under.status, 404);
      });
    }
  });

  describe('list', () => {
    it('lists every file recursively, relative to the directory, each line ending in \\n', async () => {
      await putOk(ft, '/ls/a.txt', 'a', V);
      await putOk(ft, '/ls/sub/b.txt', 'b', V);
      await putOk(ft, '/ls/sub/deeper/c.txt', 'c', V);
      await putOk(ft, '/ls-sibling/not-me', 'x', V);
      const res = await list(ft, `/list/ls?${lm(V + 1)}`);
      assert.equal(res.status, 200);
      assert.deepEqual(lines(res.body), ['a.txt', 'sub/b.txt', 'sub/deeper/c.txt']);
      const sub = await list(ft, `/list/ls/sub/?${lm(V + 1)}`);
      assert.deepEqual(lines(sub.body), ['b.txt', 'deeper/c.txt']);
    });

    it('the cutoff is inclusive: a file at exactly the cutoff is listed, one second later is not', async () => {
      await putOk(ft, '/cut/at', 'at', V);
      await putOk(ft, '/cut/after', 'after', V + 1);
      await putOk(ft, '/cut/before', 'before', V - 1);
      const res = await list(ft, `/list/cut?${lm(V)}`);
      assert.equal(res.status, 200);
      assert.deepEqual(lines(res.body), ['at', 'before']);
      assert.deepEqual(lines((await list(ft, `/list/cut?${lm(V + 1)}`)).body), [
        'after',
        'at',
        'before',
      ]);
      assert.deepEqual(lines((await list(ft, `/list/cut?${lm(V - 2)}`)).body), []);
    });

    it('without a cutoff the server uses its now: future versions are hidden', async () => {
      const now = Math.floor(Date.now() / 1000);
      await putOk(ft, '/future/past', 'p', now - 60);
      await putOk(ft, '/future/later', 'l', now + 3600);
      for (const q of ['', '?last_modified=']) {
        const res = await list(ft, `/list/future${q}`);
        assert.equal(res.status, 200);
        assert.deepEqual(lines(res.body), ['past'], `query ${JSON.stringify(q)}`);
      }
      const all = await list(ft, `/list/future?${lm(now + 7200)}`);
      assert.deepEqual(lines(all.body), ['later', 'past']);
    });

    it('/list, /list/, //list/ and /list/?last_modified= list the whole store', async (t) => {
      const own = await backend.start();
      t.after(() => own.close());
      await putOk(own, '/top', 't', V);
      await putOk(own, '/d/inner', 'i', V);
      await putOk(own, '/d/e/f g', 'f', V);
      const expected = ['d/e/f g', 'd/inner', 'top'];
      for (const p of ['/list', '/list/', '//list/', '/list/?last_modified=', `/list/?${lm(V)}`]) {
        const res = await list(own, p);
        assert.equal(res.status, 200, p);
        assert.deepEqual(lines(res.body), expected, p);
      }
    });

    it('an empty store lists as 200 with an empty body', async (t) => {
      const own = await backend.start();
      t.after(() => own.close());
      const res = await list(own, `/list/?${lm(V)}`);
      assert.equal(res.status, 200);
      assert.equal(res.body.length, 0);
    });

    it('list of a file or of an absent directory is 400 NOT_A_DIRECTORY', async () => {
      await putOk(ft, '/lsfile/f', 'f', V);
      for (const p of ['/list/lsfile/f', '/list/lsfile/absent', '/list/no-such-dir/x']) {
        assertError(await list(ft, `${p}?${lm(V)}`), 400, 'NOT_A_DIRECTORY');
      }
    });

    it('a directory emptied by deletes still lists as 200 with an empty body', async () => {
      await putOk(ft, '/emptied/sub/f', 'f', V);
      await putOk(ft, '/emptied/g', 'g', V);
      assert.equal((await deleteFile(ft, '/emptied/sub/f', V)).status, 200);
      assert.equal((await deleteFile(ft, '/emptied/g', V)).status, 200);
      for (const p of ['/list/emptied', '/list/emptied/sub']) {
        const res = await list(ft, `${p}?${lm(V)}`);
        assert.equal(res.status, 200, p);
        assert.equal(res.body.length, 0, p);
      }
    });

    it('HEAD of a list is 200 with no body', async () => {
      await putOk(ft, '/lshead/f', 'f', V);
      const conn = await RawConnection.open(ft.port);
      try {
        await conn.write(`HEAD /list/lshead?${lm(V)} HTTP/1.1\r\nHost: x\r\n\r\n`);
        const head = await conn.readResponse({ head: true });
        assert.equal(head?.status, 200);
        await conn.write('GET /version HTTP/1.1\r\nHost: x\r\n\r\n');
        const next = await conn.readResponse();
        assert.equal(next?.body.toString(), VERSION_BODY);
      } finally {
        conn.destroy();
      }
    });
  });

  describe('deduplication', () => {
    it('two names with the same content share one blob, named by its SHA-256', async () => {
      const content = Buffer.from('shared content for dedup\n'.repeat(30));
      const digest = sha256(content);
      await ft.view.settle(); // blobs earlier tests left unused are gone before we count
      const blobsBefore = await ft.view.blobDigests();
      await putOk(ft, '/dedup/one', content, V);
      await putOk(ft, '/dedup/two', content, V + 5, { gzip: true });
      const blobsAfter = await ft.view.blobDigests();
      assert.equal(blobsAfter.length, blobsBefore.length + 1);
      assert.ok(await ft.view.hasBlob(digest), 'the blob named by its sha256 exists');

      assert.equal((await deleteFile(ft, '/dedup/one', V)).status, 200);
      assert.equal((await getFile(ft, '/dedup/one')).status, 404);
      const two = await getFile(ft, '/dedup/two');
      assert.equal(two.status, 200);
      assert.deepEqual(two.body, content);
      assert.equal(versionOf(two), V + 5);
      await ft.view.settle();
      assert.ok(await ft.view.hasBlob(digest), 'blob kept while a name uses it');

      assert.equal((await deleteFile(ft, '/dedup/two', V + 5)).status, 200);
      await ft.view.settle();
      assert.ok(!(await ft.view.hasBlob(digest)), 'blob removed with its last name');
      assert.deepEqual(await ft.view.blobDigests(), blobsBefore);
    });

    it('replacing a name drops its old blob when no other name uses it', async () => {
      const first = Buffer.from('replace me: first content');
      const second = Buffer.from('replace me: second content');
      await putOk(ft, '/dedup/replaced', first, V);
      assert.ok(await ft.view.hasBlob(sha256(first)));
      await putOk(ft, '/dedup/replaced', second, V + 1);
      await ft.view.settle();
      assert.ok(!(await ft.view.hasBlob(sha256(first))));
      assert.deepEqual(await readPlain(ft, '/dedup/replaced'), second);
    });
  });

  describe('path conflicts', () => {
    it('PUT /a/b when /a is a file is 409 PATH_CONFLICT and changes nothing', async () => {
      await putOk(ft, '/conflict1/a', 'a file', V);
      const before = await ft.view.snapshot();
      const res = await putFile(ft, '/conflict1/a/b', 'would need a to be a directory', V);
      assertError(res, 409, 'PATH_CONFLICT');
      const deeper = await putFile(ft, '/conflict1/a/b/c', 'deeper still', V);
      assertError(deeper, 409, 'PATH_CONFLICT');
      assert.deepEqual(await ft.view.tmpEntries(), []);
      assert.deepEqual(await ft.view.snapshot(), before);
      assert.equal((await readPlain(ft, '/conflict1/a')).toString(), 'a file');
    });

    it('PUT /a when /a/b exists is 409 PATH_CONFLICT and changes nothing', async () => {
      await putOk(ft, '/conflict2/a/b', 'inside a', V);
      const before = await ft.view.snapshot();
      const res = await putFile(ft, '/conflict2/a', 'would replace a directory', V);
      assertError(res, 409, 'PATH_CONFLICT');
      assert.deepEqual(await ft.view.tmpEntries(), []);
      assert.deepEqual(await ft.view.snapshot(), before);
      assert.equal((await readPlain(ft, '/conflict2/a/b')).toString(), 'inside a');
    });

    it('PUT /a over an empty directory left by deletes is 409 PATH_CONFLICT', async () => {
      await putOk(ft, '/conflict3/a/b', 'x', V);
      assert.equal((await deleteFile(ft, '/conflict3/a/b', V)).status, 200);
      const before = await ft.view.snapshot();
      assertError(
        await putFile(ft, '/conflict3/a', 'file over empty dir', V),
        409,
        'PATH_CONFLICT',
      );
      assert.deepEqual(await ft.view.snapshot(), before);
    });
  });

  describe('names', () => {
    const odd = [
      '/odd/dir one/file two.txt',
      '/odd/a+b',
      '/odd/hash#tag',
      '/odd/what?x=1&y=2',
      '/odd/100% sure',
      '/odd/%41 literally',
      '/odd/zażółć gęślą jaźń/日本語 😀',
    ];

    it('percent-encoded names with spaces, +, #, ?, % and non-ASCII round trip via PUT, GET and list', async () => {
      for (const [i, name] of odd.entries()) {
        const res = await putOk(ft, name, `content ${i}`, V);
        assert.equal(versionOf(res), V);
      }
      for (const [i, name] of odd.entries()) {
        assert.equal((await readPlain(ft, name)).toString(), `content ${i}`, name);
      }
      const res = await list(ft, `/list/odd?${lm(V)}`);
      assert.equal(res.status, 200);
      assert.deepEqual(lines(res.body), odd.map((n) => n.slice('/odd/'.length)).sort());
    });

    it('a raw + in the path is a plus, not a space', async () => {
      await putOk(ft, '/plus/x+y', 'plus', V);
      const raw = await httpRequest(ft.url, '/files/plus/x+y');
      assert.equal(raw.status, 200);
      assert.equal(raw.body.toString(), 'plus');
      assert.equal((await httpRequest(ft.url, '/files/plus/x%20y')).status, 404);
    });

    it('%2F in a name separates components', async () => {
      await putOk(ft, '/slash/p/q', 'pq', V);
      const res = await httpRequest(ft.url, '/files/slash%2Fp%2Fq');
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), 'pq');
    });

    it('. components are dropped: /files/a/./b is /files/a/b', async () => {
      const put = await httpRequest(ft.url, `/files/dot/./b?${lm(V)}`, {
        method: 'PUT',
        body: 'dot',
      });
      assert.equal(put.status, 200);
      for (const p of ['/files/dot/b', '/files/dot/./b', '/files/./dot/b', '/files/dot/%2e/b']) {
        const res = await httpRequest(ft.url, p);
        assert.equal(res.status, 200, p);
        assert.equal(res.body.toString(), 'dot', p);
      }
      assert.deepEqual(lines((await list(ft, `/list/dot?${lm(V)}`)).body), ['b']);
      assert.deepEqual(lines((await list(ft, `/list/./dot/.?${lm(V)}`)).body), ['b']);
      const del = await httpRequest(ft.url, `/files/dot/./b?${lm(V)}`, { method: 'DELETE' });
      assert.equal(del.status, 200);
      assert.equal((await httpRequest(ft.url, '/files/dot/b')).status, 404);
    });

    it('a base URL with a prefix or trailing slash (//files/…) reaches the same name', async () => {
      await putOk(ft, '/prefixed/f', 'pf', V);
      for (const p of ['//files/prefixed/f', '/ft//files/prefixed/f', '/a/b//files/prefixed/f/']) {
        const res = await httpRequest(ft.url, p);
        assert.equal(res.status, 200, p);
        assert.equal(res.body.toString(), 'pf', p);
      }
    });
  });
}
