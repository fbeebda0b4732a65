/*
 * ft-migrate's HTTP client (HttpUploader) on the wire, against a raw TCP server on loopback
 * that records what arrives: the request line, Host and Authorization for each shape of
 * base URL, and what aborting the caller's signal does to requests in flight (issue 15).
 */
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import { HttpUploader } from '@filetracker/migrate';
import { waitFor } from './helpers/fault-net.js';

const VERSION = 1_600_000_000;
const LAST_MODIFIED = new Date(VERSION * 1000).toUTCString();
const QUERY = `?last_modified=${encodeURIComponent(LAST_MODIFIED).replace(/%20/g, '+')}`;

interface Received {
  requestLine: string;
  headers: Map<string, string>;
}

interface RawServer {
  port: number;
  received: Received[];
  connections: number;
  closed: number;
}

/**
 * A TCP server that parses each request head (and skips a Content-Length body) and, unless
 * `answer` is null, answers with what `answer` gives; with null it never answers.
 */
async function rawServer(
  t: TestContext,
  host: string,
  answer: ((request: Received) => string) | null,
): Promise<RawServer> {
  const state: RawServer = {
    port: 0,
    received: [],
    connections: 0,
    closed: 0,
  };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    state.connections += 1;
    sockets.add(socket);
    socket.on('close', () => {
      state.closed += 1;
      sockets.delete(socket);
    });
    socket.on('error', () => {});
    let buffered = Buffer.alloc(0);
    let bodyLeft = 0;
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        if (bodyLeft > 0) {
          const skip = Math.min(bodyLeft, buffered.length);
          buffered = buffered.subarray(skip);
          bodyLeft -= skip;
          if (bodyLeft > 0) return;
        }
        const end = buffered.indexOf('\r\n\r\n');
        if (end === -1) return;
        const [requestLine = '', ...lines] = buffered
          .subarray(0, end)
          .toString('latin1')
          .split('\r\n');
        buffered = buffered.subarray(end + 4);
        const headers = new Map<string, string>();
        for (const line of lines) {
          const colon = line.indexOf(':');
          headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
        }
        const request = { requestLine, headers };
        state.received.push(request);
        bodyLeft = Number(headers.get('content-length') ?? 0);
        if (answer) socket.write(answer(request));
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  state.port = (server.address() as net.AddressInfo).port;
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return state;
}

/** A PUT's answer as ft-server gives it (the version kept), or `/version`'s. */
function answerOf(request: Received): string {
  if (request.requestLine.startsWith('GET ')) {
    const body = '{"protocol_versions": [2]}';
    return `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
  }
  return `HTTP/1.1 200 OK\r\nLast-Modified: ${LAST_MODIFIED}\r\nContent-Length: 0\r\n\r\n`;
}

async function canListen(host: string): Promise<boolean> {
  const server = net.createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, host, resolve);
    });
    await new Promise((resolve) => server.close(resolve));
    return true;
  } catch {
    return false;
  }
}

test('HttpUploader sends each request to the path shared-protocol built, under every shape of base URL (issue 15)', async (t) => {
  const server = await rawServer(t, '127.0.0.1', answerOf);
  const ipv6 = await canListen('::1');
  const server6 = ipv6 ? await rawServer(t, '::1', answerOf) : undefined;
  if (!ipv6) t.diagnostic('no IPv6 loopback here: the [::1] case is not run');
  const name = '/dir/a b#c?.txt';
  const encoded = '/dir/a%20b%23c%3F.txt';
  const cases = [
    { base: `http://127.0.0.1:${server.port}`, prefix: '', host: `127.0.0.1:${server.port}` },
    { base: `http://127.0.0.1:${server.port}/`, prefix: '', host: `127.0.0.1:${server.port}` },
    {
      base: `http://127.0.0.1:${server.port}/ft`,
      prefix: '/ft/',
      host: `127.0.0.1:${server.port}`,
    },
    {
      base: `http://127.0.0.1:${server.port}/a%20b/ft/`,
      prefix: '/a%20b/ft/',
      host: `127.0.0.1:${server.port}`,
    },
    {
      base: `http://migrator:p%40ss@127.0.0.1:${server.port}/ft`,
      prefix: '/ft/',
      host: `127.0.0.1:${server.port}`,
      auth: `Basic ${Buffer.from('migrator:p@ss').toString('base64')}`,
    },
    ...(server6
      ? [{ base: `http://[::1]:${server6.port}/ft`, prefix: '/ft/', host: `[::1]:${server6.port}` }]
      : []),
  ];
  for (const c of cases) {
    const target = c.host.startsWith('[') ? server6! : server;
    const uploader = new HttpUploader(c.base);
    try {
      const before = target.received.length;
      const info = await uploader.versionInfo();
      assert.deepEqual(info.protocolVersions, [2], c.base);
      const stored = await uploader.put(name, Buffer.from('contents\n'), { version: VERSION });
      assert.equal(stored, VERSION, c.base);
      const [version, put] = target.received.slice(before);
      assert.equal(version?.requestLine, `GET ${c.prefix}/version HTTP/1.1`, c.base);
      assert.equal(put?.requestLine, `PUT ${c.prefix}/files${encoded}${QUERY} HTTP/1.1`, c.base);
      for (const request of [version, put]) {
        assert.equal(request?.headers.get('host'), c.host, c.base);
        assert.equal(request?.headers.get('authorization'), c.auth, c.base);
      }
    } finally {
      uploader.close();
    }
  }
});

test('HttpUploader follows /version to another server by its full URL', async (t) => {
  const other = await rawServer(t, '127.0.0.1', answerOf);
  const first = await rawServer(
    t,
    '127.0.0.1',
    () =>
      `HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:${other.port}/moved/version\r\n` +
      'Content-Length: 0\r\n\r\n',
  );
  const uploader = new HttpUploader(`http://127.0.0.1:${first.port}/ft`);
  t.after(() => uploader.close());
  assert.deepEqual((await uploader.versionInfo()).protocolVersions, [2]);
  assert.equal(first.received[0]?.requestLine, 'GET /ft//version HTTP/1.1');
  assert.equal(other.received[0]?.requestLine, 'GET /moved/version HTTP/1.1');
  assert.equal(other.received[0]?.headers.get('host'), `127.0.0.1:${other.port}`);
});

test('HttpUploader: aborting the signal ends every request in flight, with one listener on the signal for all of them', async (t) => {
  const server = await rawServer(t, '127.0.0.1', null);
  const uploader = new HttpUploader(`http://127.0.0.1:${server.port}`);
  t.after(() => uploader.close());
  const controller = new AbortController();
  const { signal } = controller;
  const uploads = Array.from({ length: 20 }, (_, i) =>
    uploader.put(`/f/${i}.txt`, Buffer.from(`file ${i}\n`), { version: VERSION, signal }),
  );
  const settled = Promise.allSettled(uploads);
  assert.ok(await waitFor(() => server.received.length === uploads.length, 10_000));
  assert.equal(getEventListeners(signal, 'abort').length, 1);

  controller.abort();
  for (const outcome of await settled) {
    assert.equal(outcome.status, 'rejected');
    const err = (outcome as PromiseRejectedResult).reason as NodeJS.ErrnoException;
    assert.equal(err.name, 'AbortError');
    assert.equal(err.code, 'ABORT_ERR');
  }
  // Every connection was closed: nothing is left waiting for the answers.
  assert.ok(await waitFor(() => server.closed === uploads.length, 10_000));
  assert.equal(server.connections, uploads.length);

  // A signal aborted already sends nothing.
  await assert.rejects(
    uploader.put('/f/late.txt', Buffer.from('late\n'), { version: VERSION, signal }),
    { name: 'AbortError', code: 'ABORT_ERR' },
  );
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(server.connections, uploads.length);
  assert.equal(server.received.length, uploads.length);
});
