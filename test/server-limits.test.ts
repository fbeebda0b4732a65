/**
 * Uploads that would inflate past what the client claimed or past `--max-file-size` are
 * refused as soon as they pass it (issue 16): a gzip bomb is not inflated in full, and
 * nothing of it is stored. ft-server runs as a child process, so that a server still
 * inflating a bomb (the bug) is killed when the test ends.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { test, type TestContext } from 'node:test';
import { gzipSync } from 'node:zlib';
import { formatHttpDate } from '@filetracker/shared-protocol';
import { SERVER_BIN } from './helpers/recover-store.js';
import { httpRequest, RawConnection, rawHead, type RawResponse } from './helpers/server-http.js';
import { blobFiles, tmpEntries } from './helpers/server-store.js';
import { startProcess, tempDir, type RunningProcess } from './helpers/server.js';

const MiB = 1024 * 1024;
const VERSION = 1_700_000_000;
/** Far above what any of these requests needs when the server stops early. */
const ANSWER_MS = 20_000;

/**
 * One gzip member of 1 MiB of zeros, about 1 KiB: members back to back are one valid gzip
 * stream (RFC 1952), so N of them are a bomb that inflates to N MiB.
 */
const MEMBER = gzipSync(Buffer.alloc(MiB), { level: 9 });
/** 64 members per write: sent from this one buffer, the test stays small in memory. */
const BATCH = Buffer.concat(Array.from({ length: 64 }, () => MEMBER));

const query = `?last_modified=${encodeURIComponent(formatHttpDate(VERSION))}`;

/** ft-server on a fresh store with `args`, killed and its store removed when the test ends. */
async function serve(
  t: TestContext,
  args: string[] = [],
): Promise<RunningProcess & { dir: string }> {
  const dir = await tempDir('ft-limits-');
  const proc = await startProcess(SERVER_BIN, ['-d', dir, '-p', '0', ...args]);
  t.after(async () => {
    await proc.stop('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });
  return Object.assign(proc, { dir });
}

const portOf = (url: string): number => Number(new URL(url).port);

interface BombResult {
  res: RawResponse;
  /** Body bytes sent when the answer arrived. */
  sentBytes: number;
  bodyBytes: number;
  ms: number;
}

/**
 * PUTs a bomb of `gib` GiB (Content-Length, gzip) and stops sending once an answer arrives,
 * as a client that reads while it sends does. Fails if no answer comes in ANSWER_MS.
 */
async function putBomb(
  port: number,
  name: string,
  gib: number,
  extra: Record<string, string | number> = {},
): Promise<BombResult> {
  const bodyBytes = BATCH.length * 16 * gib;
  const conn = await RawConnection.open(port);
  try {
    const started = Date.now();
    await conn.write(
      rawHead('PUT', `/files${name}${query}`, port, {
        'Content-Encoding': 'gzip',
        'Content-Length': bodyBytes,
        ...extra,
      }),
    );
    const answer = conn.readResponse({ timeoutMs: ANSWER_MS });
    let sentBytes = 0;
    try {
      while (sentBytes < bodyBytes && conn.pending.length === 0 && !conn.ended) {
        if (Date.now() - started > ANSWER_MS) break;
        await conn.write(BATCH);
        sentBytes += BATCH.length;
      }
    } catch {
      // The server closed the connection after its answer.
    }
    const res = await answer;
    assert.ok(res, 'the server answered');
    return { res, sentBytes, bodyBytes, ms: Date.now() - started };
  } finally {
    conn.destroy();
  }
}

/** ft-tmp/ and blobs/ are empty and the name is absent. */
async function assertNothingStored(url: string, dir: string, name: string): Promise<void> {
  assert.deepEqual(await tmpEntries(dir), [], 'no temp file left in ft-tmp/');
  assert.deepEqual(await blobFiles(dir), [], 'no blob stored');
  assert.equal((await httpRequest(url, `/files${name}`)).status, 404, `${name} is absent`);
}

test('a gzip bomb of 64 GiB with Logical-Size: 10 is refused with 400 SIZE_MISMATCH before its body is sent, and nothing is stored', async (t) => {
  const server = await serve(t);
  // Inflated in full, 64 GiB would take minutes; refused at its 11th byte, milliseconds.
  const { res, sentBytes, bodyBytes, ms } = await putBomb(portOf(server.url), '/bomb', 64, {
    'Logical-Size': 10,
  });
  t.diagnostic(`answered after ${ms} ms, ${sentBytes} of ${bodyBytes} body bytes sent`);
  assert.equal(res.status, 400);
  assert.equal(res.headers['x-error-code'], 'SIZE_MISMATCH');
  assert.ok(sentBytes < bodyBytes / 2, 'answered before half of the body was sent');
  await assertNothingStored(server.url, server.dir, '/bomb');
});

test('a gzip bomb without hints past --max-file-size 10M is refused with 413 FILE_TOO_LARGE early and stores nothing', async (t) => {
  const server = await serve(t, ['--max-file-size', '10M']);
  const port = portOf(server.url);
  // 1 GiB fits in the socket buffers: sent whole, then refused.
  const small = await putBomb(port, '/bomb/1g', 1);
  assert.equal(small.res.status, 413);
  assert.equal(small.res.headers['x-error-code'], 'FILE_TOO_LARGE');
  assert.ok(small.res.headers['x-exception'], 'with a reason');
  const large = await putBomb(port, '/bomb/64g', 64);
  t.diagnostic(`64 GiB bomb answered after ${large.ms} ms, ${large.sentBytes} bytes sent`);
  assert.equal(large.res.status, 413);
  assert.equal(large.res.headers['x-error-code'], 'FILE_TOO_LARGE');
  assert.ok(large.sentBytes < large.bodyBytes / 2, 'answered before half of the body was sent');
  await assertNothingStored(server.url, server.dir, '/bomb/1g');
  await assertNothingStored(server.url, server.dir, '/bomb/64g');
});

test('--max-file-size 10M: a plain body past it is 413 (refused unread when its Content-Length says so), one of exactly 10 MiB is stored', async (t) => {
  const server = await serve(t, ['--max-file-size', '10M']);
  const port = portOf(server.url);

  // Content-Length alone tells: answered before a byte of the body is sent.
  const conn = await RawConnection.open(port);
  try {
    await conn.write(
      rawHead('PUT', `/files/plain/declared${query}`, port, { 'Content-Length': 10 * MiB + 1 }),
    );
    const res = await conn.readResponse({ timeoutMs: ANSWER_MS });
    assert.equal(res?.status, 413);
    assert.equal(res.headers['x-error-code'], 'FILE_TOO_LARGE');
  } finally {
    conn.destroy();
  }

  const content = randomBytes(10 * MiB + 1);
  const chunked = await httpRequest(server.url, `/files/plain/chunked${query}`, {
    method: 'PUT',
    body: [content],
    chunked: true,
  });
  assert.equal(chunked.status, 413, 'a chunked body is refused once it passes the cap');
  assert.equal(chunked.headers['x-error-code'], 'FILE_TOO_LARGE');

  const claimed = await httpRequest(server.url, `/files/plain/claimed${query}`, {
    method: 'PUT',
    headers: { 'Content-Encoding': 'gzip', 'Logical-Size': 10 * MiB + 1 },
    body: gzipSync(content),
  });
  assert.equal(claimed.status, 413, 'a Logical-Size past the cap is refused');
  assert.equal(claimed.headers['x-error-code'], 'FILE_TOO_LARGE');

  for (const name of ['/plain/declared', '/plain/chunked', '/plain/claimed']) {
    await assertNothingStored(server.url, server.dir, name);
  }

  const exact = content.subarray(0, 10 * MiB);
  const ok = await httpRequest(server.url, `/files/plain/exact${query}`, {
    method: 'PUT',
    body: exact,
  });
  assert.equal(ok.status, 200, 'a file of exactly the cap is stored');
  const back = await httpRequest(server.url, '/files/plain/exact');
  assert.ok(back.body.equals(exact), 'and reads back whole');
});
