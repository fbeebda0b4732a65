import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it, type TestContext } from 'node:test';
import { gunzipSync } from 'node:zlib';
import {
  FiletrackerClient,
  FiletrackerError,
  NotFoundError,
  encodeName,
  formatHttpDate,
  type ClientOptions,
} from '@filetracker/shared-protocol';
import { startServer } from './helpers/server.js';

const MiB = 1024 * 1024;

/** Names the URL must carry intact: a space, `#`, `?`, `%`, `+`, non-ASCII. */
const ODD_NAMES = [
  '/odd/dir one/file two.txt',
  '/odd/hash#tag',
  '/odd/what?x=1&y=2',
  '/odd/100%25 and 100%',
  '/odd/a+b',
  '/odd/zażółć gęślą jaźń/日本語 😀',
];

async function tempDir(t: TestContext, label: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `ft-client-${label}-`));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A real ft-server on 127.0.0.1 over its own temp store, and a client of it. */
async function setup(
  t: TestContext,
  options: { fallbackUrl?: string; baseSuffix?: string; client?: ClientOptions } = {},
): Promise<{ client: FiletrackerClient; url: string; files: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'ft-client-store-'));
  const server = await startServer({ dir, fallbackUrl: options.fallbackUrl });
  const client = new FiletrackerClient(server.url + (options.baseSuffix ?? ''), options.client);
  // Stop the client and the server before their store goes.
  t.after(async () => {
    client.close();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { client, url: server.url, files: await tempDir(t, 'files') };
}

/** Deterministic bytes, half of them compressible. */
function content(size: number, seed = 1): Buffer {
  const data = Buffer.alloc(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    data[i] = (i >> 12) % 2 === 0 ? x >>> 24 : 97 + (i % 7);
  }
  return data;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function isCode(code: string, status: number): (err: unknown) => boolean {
  return (err) => err instanceof FiletrackerError && err.code === code && err.status === status;
}

async function collect(iterable: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const line of iterable) out.push(line);
  return out.sort();
}

interface Recorded {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/**
 * A plain HTTP server on 127.0.0.1 whose answers the test decides, for what the real
 * server does not do: Python-style errors, dropped connections, the wire format.
 */
async function stubServer(
  t: TestContext,
  handler: (req: Recorded, res: http.ServerResponse, count: number) => void,
): Promise<{ url: string; requests: Recorded[] }> {
  const requests: Recorded[] = [];
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const recorded = {
      method: req.method!,
      url: req.url!,
      headers: req.headers,
      body: Buffer.concat(chunks),
    };
    requests.push(recorded);
    handler(recorded, res, requests.length);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

/**
 * A 1.x store served as lighttpd serves it: `GET /files/{name}` with `Last-Modified` from
 * the mtime, `Content-Length`, no `Content-Encoding` (PROTOCOL.md "Migration").
 */
async function legacyServer(t: TestContext, files: Record<string, [Buffer, number]>) {
  return stubServer(t, (req, res) => {
    const path = decodeURIComponent(req.url.split('?')[0]!);
    const file = path.startsWith('/files/') ? files[path.slice('/files'.length)] : undefined;
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, {
      'Content-Type': 'application/octet-stream',
      'Content-Length': file[0].length,
      'Last-Modified': formatHttpDate(file[1]),
    });
    res.end(req.method === 'HEAD' ? undefined : file[0]);
  });
}

describe('FiletrackerClient against ft-server', () => {
  it('version() lists protocol 2', async (t) => {
    const { client } = await setup(t);
    assert.deepEqual(await client.version(), [2]);
  });

  it('put of a Buffer, compressed or not, returns the version; getBuffer returns the bytes', async (t) => {
    const { client } = await setup(t);
    const data = content(10_000);
    for (const compress of [true, false]) {
      const name = `/buf/${compress}.bin`;
      assert.equal(
        await client.put(name, data, { version: 1_700_000_000, compress }),
        1_700_000_000,
      );
      const got = await client.getBuffer(name);
      assert.equal(got.version, 1_700_000_000);
      assert.equal(got.logicalSize, data.length);
      assert.ok(got.data.equals(data), `compress: ${compress}`);
    }
  });

  it('put of an empty Buffer stores an empty file', async (t) => {
    const { client } = await setup(t);
    await client.put('/empty', Buffer.alloc(0), { version: 5 });
    const got = await client.getBuffer('/empty');
    assert.equal(got.data.length, 0);
    assert.equal(got.logicalSize, 0);
    assert.deepEqual(await client.stat('/empty'), { version: 5, logicalSize: 0 });
  });

  it('put of a small and a multi-MiB file path, compressed or not, stores the same bytes', async (t) => {
    const { client, files } = await setup(t);
    for (const size of [1000, MiB - 1, 5 * MiB + 123]) {
      const data = content(size, size);
      const path = join(files, `f${size}`);
      await writeFile(path, data);
      for (const compress of [true, false]) {
        const name = `/path/${size}/${compress}`;
        assert.equal(await client.put(name, path, { version: 1000 + size, compress }), 1000 + size);
        const got = await client.getBuffer(name);
        assert.equal(got.version, 1000 + size);
        assert.equal(got.logicalSize, size);
        assert.equal(sha256(got.data), sha256(data), `${size} compress: ${compress}`);
      }
    }
  });

  it('put of a stream, small or multi-MiB, compressed or not, stores the same bytes', async (t) => {
    const { client, files } = await setup(t);
    const big = content(4 * MiB + 7, 3);
    const bigPath = join(files, 'big');
    await writeFile(bigPath, big);
    const cases: [string, () => NodeJS.ReadableStream, Buffer][] = [
      [
        'small',
        () => Readable.from([Buffer.from('hello '), Buffer.from('world\n')]),
        Buffer.from('hello world\n'),
      ],
      ['file', () => createReadStream(bigPath), big],
    ];
    for (const [label, open, data] of cases) {
      for (const compress of [true, false]) {
        const name = `/stream/${label}/${compress}`;
        assert.equal(await client.put(name, open(), { version: 77, compress }), 77);
        const got = await client.getBuffer(name);
        assert.equal(got.version, 77);
        assert.equal(got.logicalSize, data.length);
        assert.equal(sha256(got.data), sha256(data), `${label} compress: ${compress}`);
      }
    }
  });

  it('put without a version sends now', async (t) => {
    const { client } = await setup(t);
    const before = Math.floor(Date.now() / 1000);
    const version = await client.put('/now', Buffer.from('x'));
    assert.ok(version >= before && version <= Math.floor(Date.now() / 1000) + 1, String(version));
  });

  it('put returns the newer version the server keeps, and leaves its content', async (t) => {
    const { client } = await setup(t);
    await client.put('/v', Buffer.from('new'), { version: 200 });
    assert.equal(await client.put('/v', Buffer.from('old'), { version: 100 }), 200);
    assert.equal((await client.getBuffer('/v')).data.toString(), 'new');
  });

  it('get streams the decompressed bytes with version and logical size', async (t) => {
    const { client } = await setup(t);
    const data = content(3 * MiB, 9);
    await client.put('/g', data, { version: 42 });
    const { stream, version, logicalSize } = await client.get('/g');
    assert.equal(version, 42);
    assert.equal(logicalSize, data.length);
    const hash = createHash('sha256');
    for await (const chunk of stream) hash.update(chunk as Buffer);
    assert.equal(hash.digest('hex'), sha256(data));
  });

  it('get with the expected version succeeds; with another throws VERSION_MISMATCH', async (t) => {
    const { client } = await setup(t);
    await client.put('/e', Buffer.from('e'), { version: 300 });
    assert.equal((await client.getBuffer('/e', { expectedVersion: 300 })).data.toString(), 'e');
    await assert.rejects(client.get('/e', { expectedVersion: 299 }), (err: unknown) => {
      return err instanceof FiletrackerError && err.code === 'VERSION_MISMATCH';
    });
    await assert.rejects(client.getBuffer('/e', { expectedVersion: 301 }), (err: unknown) => {
      return err instanceof FiletrackerError && err.code === 'VERSION_MISMATCH';
    });
  });

  it('get of an absent name throws NotFoundError (404)', async (t) => {
    const { client } = await setup(t);
    await assert.rejects(client.get('/absent'), (err: unknown) => {
      return err instanceof NotFoundError && err.code === 'NOT_FOUND' && err.status === 404;
    });
  });

  it('stat gives version and logical size of a present name, null for an absent one', async (t) => {
    const { client } = await setup(t);
    const data = content(70_000);
    await client.put('/s/present', data, { version: 1234 });
    assert.deepEqual(await client.stat('/s/present'), { version: 1234, logicalSize: 70_000 });
    assert.equal(await client.stat('/s/absent'), null);
    // A directory is absent too (PROTOCOL.md: exactly 404).
    assert.equal(await client.stat('/s'), null);
  });

  it('delete removes the name; stat is then null', async (t) => {
    const { client } = await setup(t);
    await client.put('/d', Buffer.from('d'), { version: 10 });
    await client.delete('/d', 10);
    assert.equal(await client.stat('/d'), null);
  });

  it('delete with an older version than stored keeps the file', async (t) => {
    const { client } = await setup(t);
    await client.put('/d', Buffer.from('d'), { version: 10 });
    await client.delete('/d', 9);
    assert.deepEqual(await client.stat('/d'), { version: 10, logicalSize: 1 });
    await client.delete('/d');
    assert.equal(await client.stat('/d'), null);
  });

  it('delete of an absent name throws NotFoundError (404)', async (t) => {
    const { client } = await setup(t);
    await assert.rejects(client.delete('/never'), (err: unknown) => {
      return err instanceof NotFoundError && err.status === 404;
    });
  });

  it('list gives the files under a dir relative to it, and the whole store from the root', async (t) => {
    const { client } = await setup(t);
    for (const name of ['/l/a', '/l/sub/b', '/l/sub/deeper/c', '/other/d']) {
      await client.put(name, Buffer.from(name), { version: 100 });
    }
    assert.deepEqual(await collect(client.list('/l')), ['a', 'sub/b', 'sub/deeper/c']);
    assert.deepEqual(await collect(client.list('/l/sub/')), ['b', 'deeper/c']);
    assert.deepEqual(await collect(client.list()), ['l/a', 'l/sub/b', 'l/sub/deeper/c', 'other/d']);
  });

  it('list hides versions newer than the cutoff, which is inclusive', async (t) => {
    const { client } = await setup(t);
    await client.put('/c/old', Buffer.from('1'), { version: 100 });
    await client.put('/c/new', Buffer.from('2'), { version: 200 });
    assert.deepEqual(await collect(client.list('/c', 199)), ['old']);
    assert.deepEqual(await collect(client.list('/c', 200)), ['new', 'old']);
  });

  it('list of a directory emptied by delete is empty; of an absent one is 400', async (t) => {
    const { client } = await setup(t);
    await client.put('/gone/x', Buffer.from('x'), { version: 1 });
    await client.delete('/gone/x', 1);
    assert.deepEqual(await collect(client.list('/gone')), []);
    await assert.rejects(collect(client.list('/nowhere')), isCode('NOT_A_DIRECTORY', 400));
  });

  it('list streams many names line by line', async (t) => {
    const { client } = await setup(t);
    const names: string[] = [];
    for (let i = 0; i < 300; i++) names.push(`many/${String(i).padStart(3, '0')} ż`);
    for (const name of names) await client.put('/' + name, Buffer.from(name), { version: 1 });
    assert.deepEqual(await collect(client.list('/')), names);
  });

  it('names with spaces, #, ?, %, + and non-ASCII survive put, get, stat, list and delete', async (t) => {
    const { client } = await setup(t);
    for (const [i, name] of ODD_NAMES.entries()) {
      assert.equal(await client.put(name, Buffer.from(name), { version: 500 + i }), 500 + i);
    }
    for (const [i, name] of ODD_NAMES.entries()) {
      const got = await client.getBuffer(name);
      assert.equal(got.data.toString(), name);
      assert.equal(got.version, 500 + i);
      assert.deepEqual(await client.stat(name), {
        version: 500 + i,
        logicalSize: Buffer.byteLength(name),
      });
    }
    assert.deepEqual(
      await collect(client.list('/odd')),
      ODD_NAMES.map((n) => n.slice('/odd/'.length)).sort(),
    );
    for (const name of ODD_NAMES) {
      await client.delete(name);
      assert.equal(await client.stat(name), null, name);
    }
  });

  for (const suffix of ['/', '/ft', '/ft/']) {
    it(`works with a base URL ending in ${suffix}`, async (t) => {
      const { client } = await setup(t, { baseSuffix: suffix });
      assert.deepEqual(await client.version(), [2]);
      const name = '/base/a b?#';
      assert.equal(await client.put(name, Buffer.from('b'), { version: 9 }), 9);
      assert.equal((await client.getBuffer(name)).data.toString(), 'b');
      assert.deepEqual(await client.stat(name), { version: 9, logicalSize: 1 });
      assert.deepEqual(await collect(client.list('/base')), ['a b?#']);
      await client.delete(name);
      assert.equal(await client.stat(name), null);
    });
  }

  it('a name that needs a file to be a directory is a 409 PATH_CONFLICT', async (t) => {
    const { client } = await setup(t);
    await client.put('/conflict', Buffer.from('f'), { version: 1 });
    await assert.rejects(
      client.put('/conflict/child', Buffer.from('c'), { version: 1 }),
      isCode('PATH_CONFLICT', 409),
    );
  });

  it('a name with .. is refused with BAD_PATH before any request', async (t) => {
    const { client } = await setup(t);
    await assert.rejects(client.put('/a/../b', Buffer.from('x')), isCode('BAD_PATH', 400));
    await assert.rejects(client.stat('/..'), isCode('BAD_PATH', 400));
  });

  it('follows the 307 of a server in migration mode, with the name encoded', async (t) => {
    const legacyFiles: Record<string, [Buffer, number]> = {};
    for (const name of ['/legacy/old file.txt', ...ODD_NAMES]) {
      legacyFiles[name] = [Buffer.from(`legacy ${name}`), 1_500_000_000];
    }
    const legacy = await legacyServer(t, legacyFiles);
    const { client } = await setup(t, { fallbackUrl: legacy.url });
    for (const [name, [data, mtime]] of Object.entries(legacyFiles)) {
      assert.deepEqual(await client.stat(name), { version: mtime, logicalSize: data.length }, name);
      const got = await client.getBuffer(name, { expectedVersion: mtime });
      assert.equal(got.data.toString(), data.toString());
      assert.equal(got.logicalSize, data.length);
    }
    assert.equal(await client.stat('/legacy/absent'), null);
    // The server's own files win over the fallback's.
    await client.put('/legacy/old file.txt', Buffer.from('new'), { version: 1_600_000_000 });
    assert.equal((await client.getBuffer('/legacy/old file.txt')).data.toString(), 'new');
  });

  it('an AbortSignal stops a put and a get', async (t) => {
    const { client } = await setup(t);
    await assert.rejects(
      client.put('/abort', content(2 * MiB), { signal: AbortSignal.abort() }),
      (err: unknown) => err instanceof Error && !(err instanceof FiletrackerError),
    );
    assert.equal(await client.stat('/abort'), null);
    await client.put('/abort', content(2 * MiB), { version: 1 });
    const controller = new AbortController();
    const { stream } = await client.get('/abort', { signal: controller.signal });
    await assert.rejects(
      (async () => {
        for await (const _chunk of stream) controller.abort();
      })(),
    );
  });

  it('timeoutMs bounds silence, not a slow upload that keeps moving', async (t) => {
    const { client } = await setup(t, { client: { timeoutMs: 300 } });
    async function* slow(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 10; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        yield Buffer.from(`chunk ${i}\n`);
      }
    }
    const version = await client.put('/slow', Readable.from(slow()), {
      version: 4,
      compress: false,
    });
    assert.equal(version, 4);
    assert.equal((await client.getBuffer('/slow')).data.toString().split('\n').length, 11);
  });

  it('close() is idempotent and later calls throw a TypeError', async (t) => {
    const { client } = await setup(t);
    await client.version();
    client.close();
    client.close();
    await assert.rejects(client.version(), TypeError);
  });
});

describe('FiletrackerClient on the wire', () => {
  it('sends what the Python client sends for a PUT of a Buffer', async (t) => {
    const stub = await stubServer(t, (_req, res) => {
      res.writeHead(200, { 'Last-Modified': 'Tue, 14 Nov 2023 22:13:20 -0000' }).end();
    });
    const client = new FiletrackerClient(stub.url);
    t.after(() => client.close());
    const data = Buffer.from('wire '.repeat(20));
    const name = '/wire/dir one/zażółć.txt';
    assert.equal(await client.put(name, data, { version: 1_700_000_000 }), 1_700_000_000);
    const [req] = stub.requests;
    assert.equal(req!.method, 'PUT');
    assert.equal(
      req!.url,
      '/files/wire/dir%20one/za%C5%BC%C3%B3%C5%82%C4%87.txt' +
        '?last_modified=Tue%2C+14+Nov+2023+22%3A13%3A20+GMT',
    );
    assert.equal(req!.headers['content-encoding'], 'gzip');
    assert.equal(req!.headers['sha256-checksum'], sha256(data));
    assert.equal(req!.headers['logical-size'], String(data.length));
    assert.equal(req!.headers['content-length'], String(req!.body.length));
    assert.ok(gunzipSync(req!.body).equals(data));
  });

  it('streams a large file as chunked gzip with both hints', async (t) => {
    const stub = await stubServer(t, (_req, res) => {
      res.writeHead(200, { 'Last-Modified': formatHttpDate(3) }).end();
    });
    const client = new FiletrackerClient(stub.url);
    t.after(() => client.close());
    const files = await tempDir(t, 'files');
    const data = content(2 * MiB + 1);
    await writeFile(join(files, 'big'), data);
    await client.put('/big', join(files, 'big'), { version: 3 });
    const [req] = stub.requests;
    assert.equal(req!.headers['transfer-encoding'], 'chunked');
    assert.equal(req!.headers['content-length'], undefined);
    assert.equal(req!.headers['sha256-checksum'], sha256(data));
    assert.equal(req!.headers['logical-size'], String(data.length));
    assert.ok(gunzipSync(req!.body).equals(data));
  });

  it('sends a stream as gzip without hints, and compress:false as plain bytes without hints', async (t) => {
    const stub = await stubServer(t, (_req, res) => {
      res.writeHead(200, { 'Last-Modified': formatHttpDate(3) }).end();
    });
    const client = new FiletrackerClient(stub.url);
    t.after(() => client.close());
    await client.put('/s', Readable.from([Buffer.from('abc')]), { version: 3 });
    await client.put('/p', Buffer.from('abc'), { version: 3, compress: false });
    const [streamed, plain] = stub.requests;
    assert.equal(streamed!.headers['content-encoding'], 'gzip');
    assert.equal(streamed!.headers['sha256-checksum'], undefined);
    assert.equal(streamed!.headers['logical-size'], undefined);
    assert.equal(gunzipSync(streamed!.body).toString(), 'abc');
    assert.equal(plain!.headers['content-encoding'], undefined);
    assert.equal(plain!.headers['sha256-checksum'], undefined);
    assert.equal(plain!.headers['logical-size'], undefined);
    assert.equal(plain!.body.toString(), 'abc');
  });

  it('maps Python-style errors (X-Exception, no X-Error-Code) by status', async (t) => {
    const stub = await stubServer(t, (req, res) => {
      const status = Number(req.url.split('?')[0]!.split('/').pop());
      res.writeHead(status, { 'Content-Type': 'text/plain', 'X-Exception': 'reason' }).end();
    });
    const client = new FiletrackerClient(stub.url, { retries: 0 });
    t.after(() => client.close());
    const expected: [number, string][] = [
      [400, 'PROTOCOL_ERROR'],
      [404, 'NOT_FOUND'],
      [500, 'SERVER_ERROR'],
      [503, 'SERVER_ERROR'],
    ];
    for (const [status, code] of expected) {
      await assert.rejects(client.getBuffer(`/${status}`), (err: unknown) => {
        return (
          err instanceof FiletrackerError &&
          err.status === status &&
          err.code === code &&
          err.message === 'reason'
        );
      });
    }
    await assert.rejects(client.delete('/404', 1), NotFoundError);
  });

  it('takes the code from X-Error-Code when the server sends one', async (t) => {
    const stub = await stubServer(t, (_req, res) => {
      res.writeHead(400, { 'X-Exception': 'bad', 'X-Error-Code': 'CHECKSUM_MISMATCH' }).end();
    });
    const client = new FiletrackerClient(stub.url);
    t.after(() => client.close());
    await assert.rejects(client.put('/x', Buffer.from('x')), isCode('CHECKSUM_MISMATCH', 400));
  });

  it('retries a PUT of a Buffer or a file after a connection reset before any response', async (t) => {
    const stub = await stubServer(t, (_req, res, count) => {
      if (count % 2 === 1) res.socket!.destroy();
      else res.writeHead(200, { 'Last-Modified': formatHttpDate(8) }).end();
    });
    const client = new FiletrackerClient(stub.url, { retries: 1 });
    t.after(() => client.close());
    const files = await tempDir(t, 'files');
    const data = content(2 * MiB);
    await writeFile(join(files, 'big'), data);
    assert.equal(await client.put('/r1', Buffer.from('retry'), { version: 8 }), 8);
    assert.equal(await client.put('/r2', join(files, 'big'), { version: 8 }), 8);
    assert.equal(stub.requests.length, 4);
    assert.equal(gunzipSync(stub.requests[1]!.body).toString(), 'retry');
    assert.ok(gunzipSync(stub.requests[3]!.body).equals(data));
  });

  it('does not retry a PUT of a stream, which cannot be replayed', async (t) => {
    const stub = await stubServer(t, (_req, res) => res.socket!.destroy());
    const client = new FiletrackerClient(stub.url, { retries: 2 });
    t.after(() => client.close());
    await assert.rejects(client.put('/s', Readable.from([Buffer.from('x')])), (err: unknown) => {
      return !(err instanceof FiletrackerError);
    });
    assert.equal(stub.requests.length, 1);
  });

  it('gives up on a server that never answers after timeoutMs', async (t) => {
    const stub = await stubServer(t, () => {});
    const client = new FiletrackerClient(stub.url, { timeoutMs: 200, retries: 0 });
    t.after(() => client.close());
    const started = Date.now();
    await assert.rejects(client.stat('/x'), (err: unknown) => {
      return err instanceof Error && (err as { code?: string }).code === 'ETIMEDOUT';
    });
    await assert.rejects(client.get('/x'), (err: unknown) => {
      return err instanceof Error && (err as { code?: string }).code === 'ETIMEDOUT';
    });
    assert.ok(Date.now() - started < 5000);
  });

  it('treats a 3xx answer to PUT or DELETE as a protocol error, not success', async (t) => {
    const stub = await stubServer(t, (_req, res) => {
      res.writeHead(307, { Location: '/elsewhere', 'Last-Modified': formatHttpDate(1) }).end();
    });
    const client = new FiletrackerClient(stub.url);
    t.after(() => client.close());
    await assert.rejects(client.put('/x', Buffer.from('x')), isCode('PROTOCOL_ERROR', 307));
    await assert.rejects(client.delete('/x'), isCode('PROTOCOL_ERROR', 307));
  });

  it('does not strip or re-encode an encoded Location when following a 307', async (t) => {
    const target = await stubServer(t, (_req, res) => {
      res.writeHead(200, { 'Last-Modified': formatHttpDate(1), 'Content-Length': 2 }).end('ok');
    });
    const name = '/a b/c?d#e%f+g/ż';
    const redirector = await stubServer(t, (_req, res) => {
      res.writeHead(307, { Location: `${target.url}/files${encodeName(name)}` }).end();
    });
    const client = new FiletrackerClient(redirector.url);
    t.after(() => client.close());
    assert.deepEqual(await client.stat(name), { version: 1, logicalSize: 2 });
    assert.equal((await client.getBuffer(name)).data.toString(), 'ok');
    assert.deepEqual(
      target.requests.map((r) => r.url),
      [`/files${encodeName(name)}`, `/files${encodeName(name)}`],
    );
  });
});
