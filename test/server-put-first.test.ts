import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { gzipSync } from 'node:zlib';
import { formatHttpDate } from '@filetracker/shared-protocol';
import { httpRequest, startLegacy, type HttpAnswer } from './helpers/legacy-static.js';
import { waitFor } from './helpers/migrate-tree.js';
import { metrics } from './helpers/server-http.js';
import { startProcess, tempDir, type RunningProcess } from './helpers/server.js';

/*
 * ft-server stores a PUT of a file in front of Koa (put-first.ts), except in migration mode,
 * where Koa's route does, asking the fallback about tombstones first. Both must answer and
 * log a PUT alike, whatever the PUT: the same requests go to a server of each kind, and
 * every answer (status, headers but the date, body) and every request line must match.
 */

/** One request on a connection of its own; `body` as is. */
const send = (
  method: string,
  base: string,
  urlPath: string,
  headers: Record<string, string>,
  body?: Buffer,
): Promise<HttpAnswer> => httpRequest(base, urlPath, { method, headers, body, timeoutMs: 10_000 });

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** `?last_modified=` as the Python client writes it (a `+` for each space). */
const q = (seconds: number): string =>
  '?last_modified=' + encodeURIComponent(formatHttpDate(seconds)).replaceAll('%20', '+');

const content = Buffer.from('1 2 3\n4 5 6\n'.repeat(300));
const gz = gzipSync(content);
/** The Python client's headers for `content` sent as `gz`. */
const clientHeaders = (data = content): Record<string, string> => ({
  'Content-Encoding': 'gzip',
  'SHA256-Checksum': sha(data),
  'Logical-Size': String(data.length),
});

/** A PUT to send to both servers, in order (later ones depend on earlier ones' files). */
interface Case {
  label: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer;
  status: number;
}

const T = 1_700_000_000;
const CASES: Case[] = [
  { label: 'new name', path: '/files/a/b' + q(T), headers: clientHeaders(), body: gz, status: 200 },
  {
    label: 'older version kept',
    path: '/files/a/b' + q(T - 60),
    headers: clientHeaders(),
    body: gz,
    status: 200,
  },
  {
    label: 'same content, newer',
    path: '/files/a/b' + q(T + 60),
    headers: clientHeaders(),
    body: gz,
    status: 200,
  },
  {
    label: 'dedup under another name',
    path: '/files/a/c' + q(T),
    headers: clientHeaders(),
    body: gz,
    status: 200,
  },
  { label: 'plain body', path: '/files/plain.txt' + q(T), headers: {}, body: content, status: 200 },
  {
    label: 'percent-encoded name',
    path: '/files/d%20e/f%25g.in' + q(T),
    headers: clientHeaders(),
    body: gz,
    status: 200,
  },
  {
    label: 'date repeated: the first wins',
    path: '/files/twice' + q(T) + '&' + q(T + 5).slice(1),
    headers: clientHeaders(),
    body: gz,
    status: 200,
  },
  { label: 'no date', path: '/files/nodate', headers: clientHeaders(), body: gz, status: 400 },
  {
    label: 'empty date',
    path: '/files/nodate?last_modified=',
    headers: clientHeaders(),
    body: gz,
    status: 400,
  },
  {
    label: 'bad date',
    path: '/files/baddate?last_modified=yesterday',
    headers: clientHeaders(),
    body: gz,
    status: 400,
  },
  {
    label: 'malformed checksum',
    path: '/files/x' + q(T),
    headers: { ...clientHeaders(), 'SHA256-Checksum': 'abc' },
    body: gz,
    status: 400,
  },
  {
    label: 'checksum mismatch',
    path: '/files/x' + q(T),
    headers: { ...clientHeaders(), 'SHA256-Checksum': sha(Buffer.from('other')) },
    body: gz,
    status: 400,
  },
  {
    label: 'size mismatch',
    path: '/files/x' + q(T),
    headers: { ...clientHeaders(), 'Logical-Size': '7' },
    body: gz,
    status: 400,
  },
  {
    label: 'not gzip',
    path: '/files/x' + q(T),
    headers: clientHeaders(),
    body: content,
    status: 400,
  },
  {
    label: 'under a file',
    path: '/files/a/b/c' + q(T),
    headers: clientHeaders(),
    body: gz,
    status: 409,
  },
  {
    label: 'onto a directory',
    path: '/files/a' + q(T),
    headers: clientHeaders(),
    body: gz,
    status: 409,
  },
];

/** The request lines of a process's JSON log, by path then status. */
function requestLines(server: RunningProcess): Record<string, unknown>[] {
  return server.lines.flatMap((text) => {
    try {
      const line = JSON.parse(text) as Record<string, unknown>;
      return line.msg === 'request' ? [line] : [];
    } catch {
      return [];
    }
  });
}

/** A request line without what differs between two runs of the same request. */
function comparable(line: Record<string, unknown>): Record<string, unknown> {
  const { time: _time, pid: _pid, ms: _ms, hostname: _hostname, ...rest } = line;
  return rest;
}

/** Sends a PUT's head and half its body, then goes away without waiting for an answer. */
async function abandonedPut(base: string, urlPath: string): Promise<void> {
  const { hostname, port } = new URL(base);
  const socket = net.connect(Number(port), hostname);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const head = Object.entries({ ...clientHeaders(), 'Content-Length': String(gz.length) })
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  socket.write(`PUT ${urlPath} HTTP/1.1\r\nHost: ${hostname}:${port}\r\n${head}\r\n`);
  socket.write(gz.subarray(0, gz.length >> 1));
  await new Promise((resolve) => setTimeout(resolve, 100));
  socket.destroy();
}

async function dirFor(t: TestContext, prefix: string): Promise<string> {
  const dir = await tempDir(prefix);
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('a PUT is answered and logged alike in front of Koa and by its Koa route (migration mode)', async (t) => {
  const tree = await dirFor(t, 'ft-put-first-tree-');
  await mkdir(path.join(tree, 'files'));
  const legacy = await startLegacy(['--root', tree, '--port', '0', '-w', '1']);
  t.after(() => legacy.kill());
  const start = async (args: string[]): Promise<RunningProcess> => {
    const dir = await dirFor(t, 'ft-put-first-');
    const server = await startProcess('packages/server/bin/ft-server.mjs', [
      '-d',
      dir,
      '-p',
      '0',
      ...args,
    ]);
    t.after(() => server.stop());
    return server;
  };
  const plain = await start([]);
  const migrating = await start(['--fallback-url', legacy.url]);

  for (const c of CASES) {
    const [fast, koa] = [
      await send('PUT', plain.url, c.path, c.headers, c.body),
      await send('PUT', migrating.url, c.path, c.headers, c.body),
    ];
    assert.equal(fast.status, c.status, `${c.label}: ${fast.body}`);
    const { date: fastDate, ...fastHeaders } = fast.headers;
    const { date: koaDate, ...koaHeaders } = koa.headers;
    assert.ok(fastDate !== undefined && koaDate !== undefined, `${c.label}: Date`);
    assert.deepEqual(
      { status: fast.status, headers: fastHeaders, body: fast.body },
      { status: koa.status, headers: koaHeaders, body: koa.body },
      c.label,
    );
  }

  // A client that leaves mid-body gets no answer; the line says what it would have been.
  for (const server of [plain, migrating]) await abandonedPut(server.url, '/files/gone' + q(T));
  for (const server of [plain, migrating]) {
    const putsCounted = async (): Promise<number> =>
      (await metrics(server.url))('ft_http_requests_total', { method: 'PUT' });
    await waitFor(
      async () => (await putsCounted()) > CASES.length,
      10_000,
      'the abandoned PUT counted',
    );
  }

  // What the stored names read back as: the same sizes and versions on each.
  for (const name of ['a/b', 'a/c', 'plain.txt', 'd%20e/f%25g.in', 'twice']) {
    const [fromFast, fromKoa] = await Promise.all(
      [plain, migrating].map(async (server) => {
        const head = await send('HEAD', server.url, `/files/${name}`, {});
        assert.equal(head.status, 200, name);
        return [head.headers['last-modified'], head.headers['logical-size']];
      }),
    );
    assert.deepEqual(fromFast, fromKoa, name);
  }

  // SIGTERM flushes the batched log.
  assert.equal(await plain.stop(), 0);
  assert.equal(await migrating.stop(), 0);
  const [fastLines, koaLines] = [requestLines(plain), requestLines(migrating)].map((lines) =>
    lines.filter((l) => l.method === 'PUT').map(comparable),
  );
  assert.equal(fastLines!.length, CASES.length + 1, JSON.stringify(fastLines));
  for (const [i, c] of CASES.entries()) {
    assert.deepEqual(fastLines![i], koaLines![i], c.label);
    assert.equal(fastLines![i]!.status, c.status, c.label);
  }
  const [fastGone, koaGone] = [fastLines!.at(-1), koaLines!.at(-1)];
  assert.deepEqual(fastGone, koaGone, 'abandoned mid-body');
  assert.equal(fastGone!.status, 400, JSON.stringify(fastGone));
});
