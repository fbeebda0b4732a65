import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { formatHttpDate } from '@filetracker/shared-protocol';
import { httpRequest, startLegacy, type HttpAnswer } from './helpers/legacy-static.js';
import { startProcess, tempDir } from './helpers/server.js';

/** One request line of an access log: the fields the issue is about. */
interface RequestLine {
  method: string;
  path: string;
  status: number;
  bodyBytesIn?: number;
  bodyBytesOut: number;
}

async function dirFor(t: TestContext, prefix: string): Promise<string> {
  const dir = await tempDir(prefix);
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The request lines among JSON log lines (a failure's own line has a method too). */
function requestLines(lines: readonly Record<string, unknown>[]): RequestLine[] {
  return lines.filter(
    (l) => l.msg === 'request' && typeof l.method === 'string',
  ) as unknown as RequestLine[];
}

/** The one line logged for `method path` answered with `status`. */
function lineOf(
  lines: readonly RequestLine[],
  method: string,
  urlPath: string,
  status: number,
): RequestLine {
  const found = lines.filter((l) => l.method === method && l.path === urlPath);
  assert.equal(found.length, 1, `one line for ${method} ${urlPath}: ${JSON.stringify(lines)}`);
  assert.equal(found[0]!.status, status, `${method} ${urlPath}`);
  return found[0]!;
}

test('ft-server logs body bytes, not headers: bodyBytesOut is the body sent, bodyBytesIn the body received (issue 18)', async (t) => {
  const dir = await dirFor(t, 'ft-access-log-');
  const server = await startProcess('packages/server/bin/ft-server.mjs', ['-d', dir, '-p', '0']);
  t.after(() => server.stop());
  const q = '?last_modified=' + encodeURIComponent(formatHttpDate(1_700_000_000));
  const small = Buffer.from('small file content\n'.repeat(10));
  // Above the small-blob cache: served from the file by sendFile, or gunzipped as a stream.
  const large = randomBytes(3 * 1024 * 1024);
  const gzip = { 'Accept-Encoding': 'gzip' };
  const plain = { 'Accept-Encoding': 'identity' };

  const sent: [string, string, HttpAnswer][] = [];
  const ask = async (
    method: string,
    urlPath: string,
    options: { headers?: Record<string, string>; body?: Buffer } = {},
  ): Promise<HttpAnswer> => {
    const answer =
      options.body === undefined
        ? await httpRequest(server.url, urlPath, { method, headers: options.headers ?? {} })
        : await putBody(server.url, urlPath, options.body);
    sent.push([method, urlPath, answer]);
    return answer;
  };

  assert.equal((await ask('GET', '/version')).body.toString(), '{"protocol_versions": [2]}');
  assert.equal((await ask('PUT', '/files/small.txt' + q, { body: small })).status, 200);
  assert.equal((await ask('PUT', '/files/large.bin' + q, { body: large })).status, 200);
  const smallGz = await ask('GET', '/files/small.txt', { headers: gzip });
  const largeGz = await ask('GET', '/files/large.bin', { headers: gzip });
  assert.equal(largeGz.headers['content-encoding'], 'gzip');
  assert.equal(String(largeGz.body.length), largeGz.headers['content-length']);
  const largePlain = await ask('GET', '/files/large.bin?plain', { headers: plain });
  assert.ok(largePlain.body.equals(large));
  await ask('HEAD', '/files/large.bin', { headers: gzip });
  const notModified = await ask('GET', '/files/large.bin?etag', {
    headers: { ...gzip, 'If-None-Match': String(largeGz.headers.etag) },
  });
  assert.equal(notModified.status, 304);
  await ask('GET', '/list/');
  assert.equal((await ask('GET', '/files/absent')).status, 404);

  // The metric counts the same bodies. A request is counted when its response closes,
  // which can trail the client's last byte: scrape again (5 s at most), and then the
  // earlier scrapes' bodies count too.
  let bodies = sent.reduce((sum, [, , answer]) => sum + answer.body.length, 0);
  let counted = -1;
  for (const deadline = Date.now() + 5_000; counted !== bodies && Date.now() < deadline;) {
    const scrape = (await httpRequest(server.url, '/metrics')).body;
    counted = Number(/^ft_http_sent_bytes_total (\d+)$/m.exec(scrape.toString())?.[1]);
    if (counted === bodies) break;
    bodies += scrape.length;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.equal(counted, bodies, 'ft_http_sent_bytes_total');

  // SIGTERM flushes the batched log.
  assert.equal(await server.stop(), 0);
  const lines = requestLines(
    server.lines.flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    }),
  );
  for (const [method, urlPath, answer] of sent) {
    const line = lineOf(lines, method, urlPath, answer.status);
    // What the client received as the body, byte for byte (HEAD and 304 have none).
    assert.equal(line.bodyBytesOut, answer.body.length, `${method} ${urlPath} bodyBytesOut`);
    if (method !== 'PUT') assert.equal(line.bodyBytesIn, 0, `${method} ${urlPath} bodyBytesIn`);
    assert.equal('bytesOut' in line, false, 'the old field name is gone');
  }
  assert.equal(lineOf(lines, 'GET', '/version', 200).bodyBytesOut, 26);
  assert.equal(lineOf(lines, 'HEAD', '/files/large.bin', 200).bodyBytesOut, 0);
  // The stored gzip as it is, and the whole file inflated.
  assert.ok(largeGz.body.length > 3 * 1024 * 1024);
  assert.equal(lineOf(lines, 'GET', '/files/large.bin?plain', 200).bodyBytesOut, large.length);
  assert.ok(smallGz.body.length > 0);
  assert.equal(lineOf(lines, 'PUT', '/files/small.txt' + q, 200).bodyBytesIn, small.length);
  assert.equal(lineOf(lines, 'PUT', '/files/large.bin' + q, 200).bodyBytesIn, large.length);
});

/** A PUT of `body` as is (no Content-Encoding). */
async function putBody(base: string, urlPath: string, body: Buffer): Promise<HttpAnswer> {
  const res = await fetch(base + urlPath, { method: 'PUT', body });
  return { status: res.status, headers: {}, body: Buffer.from(await res.arrayBuffer()) };
}

test('ft-legacy-static logs bodyBytesOut: the file for a GET, 0 for a HEAD, the error body for a 404 (issue 18)', async (t) => {
  const dir = await dirFor(t, 'ft-access-log-legacy-');
  const files = path.join(dir, 'ft_root', 'files');
  await mkdir(files, { recursive: true });
  const small = Buffer.from('a small 1.x file\n');
  const large = randomBytes(2 * 1024 * 1024 + 5);
  await writeFile(path.join(files, 'small.txt'), small);
  await writeFile(path.join(files, 'large.bin'), large);
  const proc = await startLegacy(['--root', path.join(dir, 'ft_root'), '--port', '0', '-w', '1']);
  t.after(() => proc.kill());

  const sent: [string, string, HttpAnswer][] = [];
  for (const [method, urlPath] of [
    ['GET', '/files/small.txt'],
    ['GET', '/files/large.bin'],
    ['HEAD', '/files/small.txt'],
    ['HEAD', '/files/large.bin'],
    ['GET', '/files/absent'],
    ['GET', '/status'],
  ] as const) {
    sent.push([method, urlPath, await httpRequest(proc.url, urlPath, { method })]);
  }
  proc.child.kill('SIGTERM');
  assert.equal(await proc.exited, 0);
  const lines = requestLines(proc.lines);
  for (const [method, urlPath, answer] of sent) {
    const line = lineOf(lines, method, urlPath, answer.status);
    assert.equal(line.bodyBytesOut, answer.body.length, `${method} ${urlPath} bodyBytesOut`);
  }
  assert.equal(lineOf(lines, 'GET', '/files/small.txt', 200).bodyBytesOut, small.length);
  assert.equal(lineOf(lines, 'GET', '/files/large.bin', 200).bodyBytesOut, large.length);
  assert.equal(lineOf(lines, 'HEAD', '/files/large.bin', 200).bodyBytesOut, 0);
});

/** A request line as JSON, with the fields of an error answer. */
type LoggedLine = RequestLine & Record<string, unknown> & { code?: string; reason?: string };

/**
 * Checks the line of each answer: an error answer's line carries the `X-Error-Code` it was
 * sent as `code` (else the code its status stands for) and its `X-Exception` as `reason`;
 * any other line has neither. Returns the codes logged.
 */
function assertReasons(
  lines: readonly RequestLine[],
  sent: readonly [string, string, HttpAnswer][],
  fallbackCode: (status: number) => string,
): string[] {
  const codes: string[] = [];
  for (const [method, urlPath, answer] of sent) {
    const line = lineOf(lines, method, urlPath, answer.status) as LoggedLine;
    const what = `${method} ${urlPath}: ${JSON.stringify(line)}`;
    if (answer.status < 400) {
      assert.equal('code' in line || 'reason' in line, false, what);
      continue;
    }
    const sentCode = answer.headers['x-error-code'];
    assert.equal(line.code, sentCode ?? fallbackCode(answer.status), what);
    assert.equal(typeof answer.headers['x-exception'], 'string', `${what}: X-Exception`);
    assert.equal(line.reason, answer.headers['x-exception'], what);
    codes.push(line.code!);
  }
  return codes;
}

test('every 4xx and 5xx request line of ft-server carries the code and the one-line reason the client was sent (issue 17)', async (t) => {
  const dir = await dirFor(t, 'ft-access-log-errors-');
  const store = path.join(dir, 'store');
  const server = await startProcess('packages/server/bin/ft-server.mjs', [
    '-d',
    store,
    '-p',
    '0',
    '--max-file-size',
    '1K',
  ]);
  t.after(() => server.stop('SIGKILL'));
  const q = '?last_modified=' + encodeURIComponent(formatHttpDate(1_700_000_000));
  const sent: [string, string, HttpAnswer][] = [];
  const ask = async (method: string, urlPath: string, body?: string): Promise<HttpAnswer> => {
    const answer = await httpRequest(server.url, urlPath, { method, body });
    sent.push([method, urlPath, answer]);
    return answer;
  };

  assert.equal((await ask('PUT', '/files/no-version.txt', 'x')).status, 400);
  assert.equal((await ask('GET', '/files/absent')).status, 404);
  assert.equal((await ask('PUT', '/files/a' + q, 'x')).status, 200);
  assert.equal((await ask('PUT', '/files/a/b' + q, 'x')).status, 409);
  assert.equal((await ask('PUT', '/files/big' + q, 'x'.repeat(2048))).status, 413);
  // The database removed under the server: writes are 503 once it notices (within 0.1 s).
  await rm(path.join(store, 'meta'), { recursive: true });
  for (const deadline = Date.now() + 5_000; ;) {
    const answer = await ask('PUT', `/files/late-${sent.length}` + q, 'x');
    if (answer.status === 503 || Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.equal(sent.at(-1)![2].status, 503);
  // /healthz's 503 carries the code a write meets.
  const health = await ask('GET', '/healthz');
  assert.equal(health.status, 503);
  assert.equal(health.headers['x-error-code'], 'STORE_NOT_WRITABLE');

  await server.stop('SIGTERM'); // writes out the batched log
  const lines = requestLines(server.lines.map((l) => JSON.parse(l) as Record<string, unknown>));
  const codes = assertReasons(lines, sent, () => 'SERVER_ERROR');
  for (const code of [
    'MISSING_DATE',
    'NOT_FOUND',
    'PATH_CONFLICT',
    'FILE_TOO_LARGE',
    'STORE_NOT_WRITABLE',
  ]) {
    assert.ok(codes.includes(code), `${code} in ${JSON.stringify(codes)}`);
  }
  const missingDate = lines.find((l) => l.path === '/files/no-version.txt') as LoggedLine;
  assert.match(missingDate.reason!, /last_modified/);
});

test('every 4xx request line of ft-legacy-static carries the code and the one-line reason the client was sent (issue 17)', async (t) => {
  const dir = await dirFor(t, 'ft-access-log-legacy-errors-');
  const files = path.join(dir, 'ft_root', 'files');
  await mkdir(files, { recursive: true });
  await writeFile(path.join(files, 'a.txt'), 'a 1.x file\n');
  const proc = await startLegacy(['--root', path.join(dir, 'ft_root'), '--port', '0', '-w', '1']);
  t.after(() => proc.kill());

  const sent: [string, string, HttpAnswer][] = [];
  for (const [method, urlPath, status] of [
    ['GET', '/files/a.txt', 200],
    ['GET', '/files/absent', 404],
    ['POST', '/files/a.txt', 405],
    ['GET', '/files/a/../../etc/passwd', 403],
  ] as const) {
    const answer = await httpRequest(proc.url, urlPath, { method });
    assert.equal(answer.status, status, `${method} ${urlPath}`);
    sent.push([method, urlPath, answer]);
  }
  proc.child.kill('SIGTERM');
  assert.equal(await proc.exited, 0);
  const codes = assertReasons(requestLines(proc.lines), sent, () => 'none sent');
  assert.deepEqual(codes, ['NOT_FOUND', 'METHOD_NOT_ALLOWED', 'BAD_PATH']);
});
