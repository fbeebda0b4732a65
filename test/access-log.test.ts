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

/** The request lines among JSON log lines (ft-server's have no `msg`, legacy's `request`). */
function requestLines(lines: readonly Record<string, unknown>[]): RequestLine[] {
  return lines.filter((l) => typeof l.method === 'string') as unknown as RequestLine[];
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
