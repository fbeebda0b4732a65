/**
 * Clients that half-close (issue 16, item 5): they send their request and at once shut down
 * their sending side (`socket.end(request)`, `nc -N`, some HTTP/1.0 clients), then wait for
 * the answer, as lighttpd gives it. Both servers run as real processes; every answer must
 * arrive whole, and the server must then close the connection itself.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { formatHttpDate } from '@filetracker/shared-protocol';
import { startLegacy, type LegacyProcess } from './helpers/legacy-static.js';
import { SERVER_BIN } from './helpers/recover-store.js';
import { tmpEntries, waitUntil } from './helpers/server-store.js';
import { startProcess, tempDir, type RunningProcess } from './helpers/server.js';

/** Requests per case: without the fix about half of them got nothing. */
const N = 50;
/** Above ft-legacy-static's in-memory limit (256 KiB), so GETs take the Koa path. */
const BIG_BYTES = 300 * 1024;

interface Answer {
  status: number;
  headers: Map<string, string>;
  body: Buffer;
  /** The body is as long as Content-Length says, or its chunked encoding is terminated. */
  whole: boolean;
}

/** Parses one raw HTTP/1.1 response; `status` 0 when nothing (or no head) came back. */
function parseAnswer(raw: Buffer): Answer {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return { status: 0, headers: new Map(), body: Buffer.alloc(0), whole: false };
  const [statusLine, ...lines] = raw.subarray(0, end).toString('latin1').split('\r\n');
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine!)?.[1] ?? 0);
  const rest = raw.subarray(end + 4);
  if (headers.get('transfer-encoding') === 'chunked') {
    const chunks: Buffer[] = [];
    let at = 0;
    for (;;) {
      const eol = rest.indexOf('\r\n', at);
      if (eol < 0) return { status, headers, body: Buffer.concat(chunks), whole: false };
      const size = parseInt(rest.subarray(at, eol).toString('latin1'), 16);
      if (size === 0) {
        const whole = rest.subarray(eol).toString('latin1') === '\r\n\r\n';
        return { status, headers, body: Buffer.concat(chunks), whole };
      }
      chunks.push(rest.subarray(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
    }
  }
  const length = Number(headers.get('content-length') ?? NaN);
  return { status, headers, body: rest, whole: rest.length === length };
}

/**
 * Connects, writes `request` and half-closes in the same call, then reads until the server
 * closes. Rejects if the server keeps the connection open for 10 s.
 */
async function halfClosed(port: number, request: string | Buffer): Promise<Buffer> {
  const socket = connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.end(request);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('the server kept a half-closed connection open for 10 s'));
    }, 10_000);
    // A reset after the answer is still an answer; the checks below judge what came.
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  return Buffer.concat(chunks);
}

function get(target: string): string {
  return `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
}

/** One kind of request, sent `N` times: `request(i)` is the i-th, `check` judges its answer. */
interface Case {
  what: string;
  port: () => number;
  request: (i: number) => string;
  check: (answer: Answer, i: number) => void;
}

/**
 * Sends each case's `N` requests half-closed, ten at a time, and asserts every one got a
 * whole answer that passes its check; the failures are reported per case.
 */
async function everyOneAnswered(cases: Case[]): Promise<void> {
  const failures: string[] = [];
  for (const c of cases) {
    let failed = 0;
    for (let i = 0; i < N; i += 10) {
      await Promise.all(
        Array.from({ length: 10 }, async (_, j) => {
          const raw = await halfClosed(c.port(), c.request(i + j));
          const answer = parseAnswer(raw);
          try {
            assert.ok(answer.status !== 0, 'no answer');
            assert.ok(answer.whole, `a short body (${answer.body.length} bytes)`);
            c.check(answer, i + j);
          } catch (err) {
            if (failed++ === 0)
              failures.push(`${c.what}, request ${i + j}: ${(err as Error).message}`);
          }
        }),
      );
    }
    if (failed > 0) failures.push(`${c.what}: ${failed} of ${N} failed`);
  }
  assert.deepEqual(failures, []);
}

let dir: string;
let store: string;
let root: string;
let server: RunningProcess;
let fallbackServer: RunningProcess;
let fallbackStore: string;
let legacy: LegacyProcess;
let legacyCluster: LegacyProcess;
const big = randomBytes(BIG_BYTES);
const portOf = (url: string): number => Number(new URL(url).port);

before(async () => {
  dir = await tempDir('ft-half-close-');
  store = path.join(dir, 'store');
  fallbackStore = path.join(dir, 'fallback-store');
  root = path.join(dir, 'ft_root');
  await mkdir(path.join(root, 'files', 'big'), { recursive: true });
  for (let i = 0; i < N; i++) await writeFile(path.join(root, 'files', 'big', `f${i}`), big);
  legacy = await startLegacy(['--root', root, '--port', '0', '--workers', '1']);
  legacyCluster = await startLegacy(['--root', root, '--port', '0', '--workers', '2']);
  server = await startProcess(SERVER_BIN, ['-d', store, '-p', '0']);
  fallbackServer = await startProcess(SERVER_BIN, [
    '-d',
    fallbackStore,
    '-p',
    '0',
    '--fallback-url',
    legacy.url,
  ]);
  // Something to list, stored through the ordinary interface.
  for (let i = 0; i < 3; i++) {
    const res = await fetch(
      `${server.url}/files/dir/f${i}?last_modified=${encodeURIComponent(formatHttpDate(1_700_000_000))}`,
      { method: 'PUT', body: `file ${i}\n` },
    );
    assert.equal(res.status, 200);
  }
});

after(async () => {
  await Promise.all([
    server?.stop(),
    fallbackServer?.stop(),
    legacy?.kill(),
    legacyCluster?.kill(),
  ]);
  await rm(dir, { recursive: true, force: true });
});

test('ft-server answers every half-closed request whole: a 404, /list, /version, a fallback 307', async () => {
  await everyOneAnswered([
    {
      what: 'GET of a missing file',
      port: () => portOf(server.url),
      request: (i) => get(`/files/missing/m${i}`),
      check: (a) => {
        assert.equal(a.status, 404);
        assert.equal(a.headers.get('x-error-code'), 'NOT_FOUND');
      },
    },
    {
      what: 'GET /list/dir',
      port: () => portOf(server.url),
      request: () => get('/list/dir'),
      check: (a) => {
        assert.equal(a.status, 200);
        assert.deepEqual(a.body.toString().split('\n').filter(Boolean).sort(), ['f0', 'f1', 'f2']);
      },
    },
    {
      what: 'GET /version',
      port: () => portOf(server.url),
      request: () => get('/version'),
      check: (a) => {
        assert.equal(a.status, 200);
        assert.equal(a.body.toString(), '{"protocol_versions": [2]}');
      },
    },
    {
      what: 'GET of a name only the fallback has (migration mode)',
      port: () => portOf(fallbackServer.url),
      request: (i) => get(`/files/big/f${i}`),
      check: (a, i) => {
        assert.equal(a.status, 307);
        assert.equal(a.headers.get('location'), `${legacy.url}/files/big/f${i}`);
      },
    },
  ]);
});

for (const [title, which] of [
  ['one process', () => legacy],
  ['--workers 2', () => legacyCluster],
] as const) {
  test(`ft-legacy-static (${title}) answers every half-closed request whole: an uncached GET, a 404`, async () => {
    await everyOneAnswered([
      {
        what: 'GET of a file too large for the memory cache',
        port: () => portOf(which().url),
        request: (i) => get(`/files/big/f${i}`),
        check: (a) => {
          assert.equal(a.status, 200);
          assert.ok(a.body.equals(big), 'the file as stored');
        },
      },
      {
        what: 'GET of a missing file',
        port: () => portOf(which().url),
        request: (i) => get(`/files/missing/m${i}`),
        check: (a) => assert.equal(a.status, 404),
      },
    ]);
  });
}

test('an upload whose client half-closes mid-body is closed at once, stores nothing and leaves nothing in ft-tmp/', async () => {
  const name = '/half/mid-body';
  const head =
    `PUT /files${name}?last_modified=${encodeURIComponent(formatHttpDate(1_700_000_000))} HTTP/1.1\r\n` +
    `Host: 127.0.0.1\r\nContent-Length: ${BIG_BYTES}\r\n\r\n`;
  const answer = parseAnswer(
    await halfClosed(
      portOf(server.url),
      Buffer.concat([Buffer.from(head), big.subarray(0, BIG_BYTES / 4)]),
    ),
  );
  assert.ok(answer.status === 0 || answer.status >= 400, `no success (${answer.status})`);
  const res = await fetch(`${server.url}/files${name}`, { method: 'HEAD' });
  assert.equal(res.status, 404, 'not stored');
  assert.ok(
    await waitUntil(async () => (await tmpEntries(store)).length === 0, 5_000),
    'ft-tmp/ is empty',
  );
});
