import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import {
  describeEachBackend,
  type Backend,
  type BackendServer as TestServer,
} from './helpers/backends.js';
import {
  RawConnection,
  httpRequest,
  rawHead,
  rawRequest,
  type HttpResult,
  type RawResponse,
} from './helpers/server-http.js';
import { assertStoreUnchanged, waitUntil } from './helpers/server-store.js';

const V = 1_700_000_000;
const MiB = 1024 * 1024;

/** `last_modified` as the Python client sends it: formatdate(), form-encoded. */
function lm(version: number): string {
  const date = new Date(version * 1000).toUTCString().replace(/GMT$/, '-0000');
  return 'last_modified=' + encodeURIComponent(date).replace(/%20/g, '+');
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function assertError(res: HttpResult | RawResponse, status: number, code: string): void {
  assert.equal(res.status, status, `status (body: ${res.body.toString().slice(0, 200)})`);
  assert.equal(res.headers['x-error-code'], code);
  assert.ok(res.headers['x-exception'], 'X-Exception present');
}

// The whole suite runs on every backend (helpers/backends.ts): the local store, and the
// scale-out store on real PostgreSQL and Swift, skipped with the reason where not installed.
describeEachBackend('ft-server refuses bad input and stores nothing', badInputSuite);

function badInputSuite(backend: Backend): void {
  let ft: TestServer;
  /** A file every test can check is still intact. */
  const seed = Buffer.from('seed content, must survive every bad request\n'.repeat(10));

  before(async () => {
    ft = await backend.start();
    const res = await httpRequest(ft.url, `/files/seed/file.txt?${lm(V)}`, {
      method: 'PUT',
      body: seed,
    });
    assert.equal(res.status, 200);
  });
  after(() => ft?.close());

  /** Runs `fn` and asserts the store (and the seed file) look as before it. */
  async function unchanged(fn: () => Promise<void>, settleMs = 0): Promise<void> {
    const snapshot = await ft.view.snapshot();
    const seedBefore = (await httpRequest(ft.url, '/files/seed/file.txt')).body;
    await fn();
    await assertStoreUnchanged(ft.view, snapshot, settleMs);
    const res = await httpRequest(ft.url, '/files/seed/file.txt');
    assert.equal(res.status, 200, 'the server still answers');
    assert.deepEqual(res.body, seedBefore);
  }

  /** A raw PUT with a small body (exact bytes of the path kept). */
  function rawPut(target: string, body: Buffer | string = 'x', extra: Record<string, string> = {}) {
    const b = Buffer.from(body);
    return rawRequest(
      ft.port,
      Buffer.concat([
        Buffer.from(rawHead('PUT', target, ft.port, { ...extra, 'Content-Length': b.length })),
        b,
      ]),
    );
  }

  describe('.. in a name is 400 BAD_PATH', () => {
    const targets = [
      '/files/a/../b',
      '/files/..',
      '/files/../seed/file.txt',
      '/files/seed/..',
      '/files/../../escape',
      '/files/a/%2e%2e/b',
      '/files/a/%2E%2E/b',
      '/files/%2e%2e/%2e%2e/escape',
      '/files/a%2F..%2Fb',
      '/files/seed%2F..%2F..%2Fescape',
      '/files/a/.%2e/b',
      '/../files/a',
      '/files/a/..//files/b',
      '/nope/../files/a',
    ];
    for (const target of targets) {
      it(`PUT, GET, HEAD and DELETE of ${target} are 400 BAD_PATH`, async () => {
        await unchanged(async () => {
          assertError(await rawPut(`${target}?${lm(V)}`, 'escape!'), 400, 'BAD_PATH');
          for (const method of ['GET', 'DELETE']) {
            const q = method === 'DELETE' ? `?${lm(V + 10)}` : '';
            const res = await rawRequest(ft.port, rawHead(method, target + q, ft.port));
            assertError(res, 400, 'BAD_PATH');
          }
          const head = await rawRequest(ft.port, rawHead('HEAD', target, ft.port), {
            head: true,
          });
          assert.equal(head.status, 400);
          assert.equal(head.headers['x-error-code'], 'BAD_PATH');
        });
        assert.ok(!existsSync(path.join(ft.dir, 'escape')));
        assert.ok(!existsSync(path.join(path.dirname(ft.dir), 'escape')));
      });
    }

    for (const target of ['/list/..', '/list/seed/..', '/list/%2e%2e', '/list/a%2F..%2F..']) {
      it(`GET ${target} is 400 BAD_PATH`, async () => {
        const res = await rawRequest(ft.port, rawHead('GET', `${target}?${lm(V)}`, ft.port));
        assertError(res, 400, 'BAD_PATH');
      });
    }

    it('names that only look like .. (..., ..a, a..) are ordinary names', async () => {
      for (const name of ['...', '..a', 'a..', '.hidden']) {
        const res = await rawPut(`/files/dots/${name}?${lm(V)}`, name);
        assert.equal(res.status, 200, name);
        const get = await rawRequest(ft.port, rawHead('GET', `/files/dots/${name}`, ft.port));
        assert.equal(get.body.toString(), name);
      }
    });
  });

  describe('NUL and invalid UTF-8 in a name are 400 BAD_PATH', () => {
    const targets = [
      '/files/nul%00name',
      '/files/dir/%00',
      '/files/bad%ffbyte',
      '/files/%C3%28',
      '/files/%C0%AF',
      '/files/%ED%A0%80surrogate',
      '/files/cut%E2%82',
    ];
    for (const target of targets) {
      it(`PUT and GET of ${target} are 400 BAD_PATH`, async () => {
        await unchanged(async () => {
          assertError(await rawPut(`${target}?${lm(V)}`), 400, 'BAD_PATH');
          assertError(await rawRequest(ft.port, rawHead('GET', target, ft.port)), 400, 'BAD_PATH');
        });
      });
    }

    it('list of a directory with NUL or invalid UTF-8 is 400 BAD_PATH', async () => {
      for (const target of ['/list/a%00', '/list/%ff']) {
        assertError(
          await rawRequest(ft.port, rawHead('GET', `${target}?${lm(V)}`, ft.port)),
          400,
          'BAD_PATH',
        );
      }
    });
  });

  describe('names too long for the file system', () => {
    // Linux refuses a component over 255 bytes or a path over 4096 with ENAMETOOLONG.
    const tails = [
      ['a component of 300 bytes', 'a'.repeat(300)],
      ['a component of 150 two-byte characters (300 bytes)', 'ż'.repeat(150)],
      ['a name of 5000 bytes', Array.from({ length: 25 }, () => 'b'.repeat(200)).join('/')],
    ];
    const encode = (name: string) => name.split('/').map(encodeURIComponent).join('/');
    for (const [i, [label, tail]] of tails.entries()) {
      // Under an existing directory, so the lookup reaches the long part.
      const existing = `/files/seed/${encode(tail!)}`;
      // Under a new directory, so a PUT that makes directories before failing shows.
      const fresh = `/files/long-${i}/${encode(tail!)}`;

      it(`GET and HEAD of ${label} are exactly 404 (compat: exists() takes any other status as "exists")`, async () => {
        assert.equal((await httpRequest(ft.url, existing)).status, 404, 'GET');
        assert.equal((await httpRequest(ft.url, existing, { method: 'HEAD' })).status, 404, 'HEAD');
      });

      it(`PUT of ${label} is a 4xx, not a 500`, async () => {
        const res = await httpRequest(ft.url, `${existing}?${lm(V)}`, { method: 'PUT', body: 'x' });
        assert.ok(res.status >= 400 && res.status < 500, `status ${res.status}`);
        assert.ok(res.headers['x-error-code'], 'X-Error-Code present');
      });

      it(`a refused PUT of ${label} leaves the store as it was (no directory made)`, async () => {
        await unchanged(async () => {
          const res = await httpRequest(ft.url, `${fresh}?${lm(V)}`, { method: 'PUT', body: 'x' });
          assert.notEqual(res.status, 200);
        });
      });

      it(`DELETE of ${label} is 404`, async () => {
        const res = await httpRequest(ft.url, `${existing}?${lm(V)}`, { method: 'DELETE' });
        assert.equal(res.status, 404);
      });
    }
  });

  it('PUT without a name (/files, /files/) is 400 BAD_PATH', async () => {
    await unchanged(async () => {
      for (const target of ['/files', '/files/', '//files/']) {
        assertError(await rawPut(`${target}?${lm(V)}`), 400, 'BAD_PATH');
      }
    });
  });

  describe('dates', () => {
    for (const query of [
      '',
      '?',
      '?last_modified=',
      '?last_modified',
      '?other=1',
      '?Last_Modified=x',
    ]) {
      it(`PUT and DELETE with query ${JSON.stringify(query)} are 400 MISSING_DATE`, async () => {
        await unchanged(async () => {
          const put = await httpRequest(ft.url, `/files/dates/new${query}`, {
            method: 'PUT',
            body: 'no date',
          });
          assertError(put, 400, 'MISSING_DATE');
          const over = await httpRequest(ft.url, `/files/seed/file.txt${query}`, {
            method: 'PUT',
            body: 'would overwrite the seed',
          });
          assertError(over, 400, 'MISSING_DATE');
          const del = await httpRequest(ft.url, `/files/seed/file.txt${query}`, {
            method: 'DELETE',
          });
          assertError(del, 400, 'MISSING_DATE');
        });
      });
    }

    it('DELETE of an absent name without a date is 400 MISSING_DATE (the date is checked first)', async () => {
      const del = await httpRequest(ft.url, '/files/dates/absent', { method: 'DELETE' });
      assertError(del, 400, 'MISSING_DATE');
    });

    const bad = [
      'not+a+date',
      'Tue%2C+14+Foo+2023+22%3A13%3A20+-0000',
      'yesterday',
      '%2C%2C%2C',
      // Too few fields for parsedate_tz (it ignores extra trailing words, so those pass).
      'Tue%2C+14+Nov',
      '2023-11-14T22%3A13%3A20Z',
    ];
    for (const value of bad) {
      it(`last_modified=${value} is 400 BAD_DATE on PUT, DELETE and list`, async () => {
        await unchanged(async () => {
          const put = await httpRequest(ft.url, `/files/seed/file.txt?last_modified=${value}`, {
            method: 'PUT',
            body: 'bad date',
          });
          assertError(put, 400, 'BAD_DATE');
          const del = await httpRequest(ft.url, `/files/seed/file.txt?last_modified=${value}`, {
            method: 'DELETE',
          });
          assertError(del, 400, 'BAD_DATE');
          const list = await httpRequest(ft.url, `/list/seed?last_modified=${value}`);
          assertError(list, 400, 'BAD_DATE');
        });
      });
    }
  });

  describe('checksum, size and gzip', () => {
    const content = Buffer.from('the real content of the upload\n'.repeat(40));

    function put(
      name: string,
      body: Buffer,
      headers: Record<string, string | number>,
      version = V,
    ): Promise<HttpResult> {
      return httpRequest(ft.url, `/files${name}?${lm(version)}`, { method: 'PUT', headers, body });
    }

    const malformed = [
      ['63 hex digits', sha256(content).slice(1)],
      ['65 hex digits', sha256(content) + '0'],
      ['non-hex', 'g'.repeat(64)],
      ['hex with a 0x prefix', '0x' + sha256(content).slice(2)],
      ['hex with inner space', sha256(content).slice(0, 32) + ' ' + sha256(content).slice(32)],
    ];
    for (const [label, value] of malformed) {
      it(`SHA256-Checksum with ${label} is 400 BAD_CHECKSUM`, async () => {
        await unchanged(async () => {
          assertError(
            await put('/ck/new', content, { 'SHA256-Checksum': value! }),
            400,
            'BAD_CHECKSUM',
          );
          const gz = await put('/ck/new', gzipSync(content), {
            'SHA256-Checksum': value!,
            'Content-Encoding': 'gzip',
            'Logical-Size': content.length,
          });
          assertError(gz, 400, 'BAD_CHECKSUM');
        });
      });
    }

    it('an empty SHA256-Checksum header is 400 BAD_CHECKSUM (not "no checksum")', async () => {
      await unchanged(async () => {
        const res = await rawPut(`/files/ck/empty-header?${lm(V)}`, content, {
          'SHA256-Checksum': '',
        });
        assertError(res, 400, 'BAD_CHECKSUM');
      });
    });

    it('a wrong SHA256-Checksum is 400 CHECKSUM_MISMATCH, plain and gzip, new name and existing one', async () => {
      const wrong = sha256(Buffer.from('something else'));
      await unchanged(async () => {
        for (const name of ['/ck/new', '/seed/file.txt']) {
          assertError(
            await put(name, content, { 'SHA256-Checksum': wrong }, V + 1),
            400,
            'CHECKSUM_MISMATCH',
          );
          const gz = await put(
            name,
            gzipSync(content),
            {
              'SHA256-Checksum': wrong,
              'Content-Encoding': 'gzip',
              'Logical-Size': content.length,
            },
            V + 1,
          );
          assertError(gz, 400, 'CHECKSUM_MISMATCH');
        }
      });
    });

    it('claiming the checksum of stored content while sending other bytes is 400 CHECKSUM_MISMATCH', async () => {
      await unchanged(async () => {
        const res = await put(
          '/ck/claims-seed',
          gzipSync(content),
          {
            'SHA256-Checksum': sha256(seed),
            'Content-Encoding': 'gzip',
            'Logical-Size': content.length,
          },
          V + 1,
        );
        assertError(res, 400, 'CHECKSUM_MISMATCH');
        // Sizes are checked first: the body is refused once it passes seed's size.
        const sized = await put(
          '/ck/claims-seed',
          gzipSync(content),
          {
            'SHA256-Checksum': sha256(seed),
            'Content-Encoding': 'gzip',
            'Logical-Size': seed.length,
          },
          V + 1,
        );
        assertError(sized, 400, 'SIZE_MISMATCH');
        const plain = await put('/ck/claims-seed', content, { 'SHA256-Checksum': sha256(seed) });
        assertError(plain, 400, 'CHECKSUM_MISMATCH');
      });
    });

    it('a wrong Logical-Size is 400 SIZE_MISMATCH, plain and gzip, with and without a checksum', async () => {
      await unchanged(async () => {
        for (const size of [content.length - 1, content.length + 1, 0]) {
          assertError(
            await put('/sz/new', content, { 'Logical-Size': size }),
            400,
            'SIZE_MISMATCH',
          );
          const gz = await put('/sz/new', gzipSync(content), {
            'Content-Encoding': 'gzip',
            'Logical-Size': size,
            'SHA256-Checksum': sha256(content),
          });
          assertError(gz, 400, 'SIZE_MISMATCH');
          const gzOnly = await put('/sz/new', gzipSync(content), {
            'Content-Encoding': 'gzip',
            'Logical-Size': size,
          });
          assertError(gzOnly, 400, 'SIZE_MISMATCH');
        }
      });
    });

    it('a wrong Logical-Size for content already stored (dedup) is 400 SIZE_MISMATCH', async () => {
      await unchanged(async () => {
        const res = await put('/sz/dedup', gzipSync(seed), {
          'Content-Encoding': 'gzip',
          'SHA256-Checksum': sha256(seed),
          'Logical-Size': seed.length + 5,
        });
        assertError(res, 400, 'SIZE_MISMATCH');
      });
    });

    for (const value of ['abc', '-1', '1.5', '0x10', '']) {
      it(`Logical-Size ${JSON.stringify(value)} is 400 BAD_HEADER`, async () => {
        await unchanged(async () => {
          const res = await rawPut(`/files/sz/bad-header?${lm(V)}`, content, {
            'Logical-Size': value,
          });
          assertError(res, 400, 'BAD_HEADER');
        });
      });
    }

    const notGzip: [string, Buffer][] = [
      ['plain text', content],
      ['a truncated gzip', gzipSync(content).subarray(0, 30)],
      ['a gzip missing its trailer', gzipSync(content).subarray(0, -4)],
      ['an empty body', Buffer.alloc(0)],
      ['a gzip header and nothing else', gzipSync(content).subarray(0, 10)],
      ['a gzip followed by garbage', Buffer.concat([gzipSync(content), Buffer.from('garbage')])],
    ];
    for (const [label, body] of notGzip) {
      it(`Content-Encoding: gzip with ${label} is 400 BAD_GZIP`, async () => {
        await unchanged(async () => {
          assertError(await put('/gz/new', body, { 'Content-Encoding': 'gzip' }), 400, 'BAD_GZIP');
          const hinted = await put('/gz/new', body, {
            'Content-Encoding': 'gzip',
            'SHA256-Checksum': sha256(content),
            'Logical-Size': content.length,
          });
          assertError(hinted, 400, 'BAD_GZIP');
          const chunked = await httpRequest(ft.url, `/files/gz/new?${lm(V)}`, {
            method: 'PUT',
            headers: { 'Content-Encoding': 'gzip' },
            body: [body],
            chunked: true,
          });
          assertError(chunked, 400, 'BAD_GZIP');
        });
      });
    }

    it('a bad body aimed at an existing name leaves that name as it was', async () => {
      await unchanged(async () => {
        const res = await put(
          '/seed/file.txt',
          Buffer.from('not gzip'),
          { 'Content-Encoding': 'gzip' },
          V + 1,
        );
        assertError(res, 400, 'BAD_GZIP');
      });
    });
  });

  describe('bodies that end early', () => {
    for (const how of ['half-closes', 'destroys'] as const) {
      for (const gzip of [false, true]) {
        it(`a body shorter than its Content-Length whose client then ${how} the socket stores nothing (${gzip ? 'gzip' : 'plain'})`, async () => {
          const full = gzip ? gzipSync(randomBytes(20_000)) : randomBytes(20_000);
          await unchanged(async () => {
            const conn = await RawConnection.open(ft.port);
            try {
              const extra: Record<string, string | number> = { 'Content-Length': full.length };
              if (gzip) extra['Content-Encoding'] = 'gzip';
              await conn.write(
                rawHead('PUT', `/files/short/${how}-${gzip}?${lm(V)}`, ft.port, extra),
              );
              await conn.write(full.subarray(0, 5_000));
              if (how === 'half-closes') {
                conn.end();
                const res = await conn.readResponse({ timeoutMs: 5_000 }).catch(() => undefined);
                if (res) assert.notEqual(res.status, 200, 'a short body is never 200');
              } else {
                await new Promise((r) => setTimeout(r, 50));
                const early = await conn.readResponse({ timeoutMs: 1 }).catch(() => undefined);
                assert.ok(!early || early.status !== 200, 'no 200 before the body is complete');
                conn.destroy();
              }
            } finally {
              conn.destroy();
            }
          }, 2_000);
          const get = await httpRequest(ft.url, `/files/short/${how}-${gzip}`);
          assert.equal(get.status, 404);
        });
      }
    }

    it('a connection dropped in the middle of a large body stores nothing and cleans ft-tmp', async () => {
      const name = '/short/large-dropped';
      await unchanged(async () => {
        const conn = await RawConnection.open(ft.port);
        try {
          await conn.write(
            rawHead('PUT', `/files${name}?${lm(V)}`, ft.port, { 'Content-Length': 64 * MiB }),
          );
          const part = randomBytes(MiB);
          for (let i = 0; i < 4; i++) await conn.write(part);
          // Wait until the server is writing the upload, so the drop hits it mid-stream.
          const writing = await waitUntil(
            async () => (await ft.view.tmpEntries()).length > 0,
            2_000,
          );
          assert.ok(writing, 'the upload reached ft-tmp/');
        } finally {
          conn.destroy();
        }
      }, 2_000);
      assert.equal((await httpRequest(ft.url, `/files${name}`)).status, 404);
    });

    it('a chunked body whose connection drops before the last chunk stores nothing', async () => {
      await unchanged(async () => {
        const conn = await RawConnection.open(ft.port);
        try {
          await conn.write(
            rawHead('PUT', `/files/short/chunked?${lm(V)}`, ft.port, {
              'Transfer-Encoding': 'chunked',
            }),
          );
          const chunk = randomBytes(100_000);
          await conn.write(`${chunk.length.toString(16)}\r\n`);
          await conn.write(chunk);
          await conn.write('\r\n');
          conn.end();
          const res = await conn.readResponse({ timeoutMs: 5_000 }).catch(() => undefined);
          if (res) assert.notEqual(res.status, 200);
        } finally {
          conn.destroy();
        }
      }, 2_000);
      assert.equal((await httpRequest(ft.url, '/files/short/chunked')).status, 404);
    });
  });

  describe('older versions are not read', () => {
    for (const framing of ['Content-Length', 'chunked'] as const) {
      it(`PUT of an older version with a huge ${framing} body is answered 200 without waiting for the body`, async () => {
        const name = `/older/huge-${framing}`;
        const put = await httpRequest(ft.url, `/files${name}?${lm(V + 100)}`, {
          method: 'PUT',
          body: 'the newer content',
        });
        assert.equal(put.status, 200);
        await unchanged(async () => {
          const conn = await RawConnection.open(ft.port);
          try {
            const extra: Record<string, string | number> =
              framing === 'chunked'
                ? { 'Transfer-Encoding': 'chunked' }
                : { 'Content-Length': 100 * 1024 * MiB };
            extra['Content-Encoding'] = 'gzip';
            extra['Logical-Size'] = 200 * 1024 * MiB;
            await conn.write(rawHead('PUT', `/files${name}?${lm(V)}`, ft.port, extra));
            await conn.write(
              framing === 'chunked' ? '400\r\n' + 'z'.repeat(1024) : 'z'.repeat(1024),
            );
            const started = Date.now();
            const res = await conn.readResponse({ timeoutMs: 3_000 });
            assert.ok(res, 'answered');
            assert.equal(res.status, 200);
            assert.equal(Date.parse(res.headers['last-modified'] ?? '') / 1000, V + 100);
            assert.ok(Date.now() - started < 3_000);
          } finally {
            conn.destroy();
          }
        }, 2_000);
        const get = await httpRequest(ft.url, `/files${name}`);
        assert.equal(get.body.toString(), 'the newer content');
      });
    }
  });
}
