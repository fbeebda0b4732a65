/**
 * A full disk: each store lives on an 8 MiB tmpfs (mounting needs root; without it the
 * tests are skipped with the reason). Writes that do not fit must fail cleanly with 507 and
 * leave nothing behind; what was stored stays readable, also after a restart; freeing space
 * makes writes work again.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, open, rm, statfs, truncate } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { encodeName, formatHttpDate } from '@filetracker/shared-protocol';
import { danglingLinks, inspectStore } from './helpers/fault-store.js';
import { runRecover, sha256, SERVER_BIN } from './helpers/recover-store.js';
import { httpRequest, type HttpResult } from './helpers/server-http.js';
import { blobFiles, tmpEntries } from './helpers/server-store.js';
import { startProcess, tempDir, type RunningProcess } from './helpers/server.js';

const run = promisify(execFile);
const VERSION = 1_700_000_000;
const TMPFS_MAGIC = 0x01021994;
const TMPFS_BYTES = 8 * 1024 * 1024;

let root: string;
let mnt: string;
let mounted = false;
let skipReason: string | undefined;
/** Every server started, killed in after() whatever happened. */
const running = new Set<RunningProcess>();

before(async () => {
  root = await tempDir('ft-fault-disk-');
  mnt = path.join(root, 'mnt');
  await mkdir(mnt);
  try {
    await run('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mnt], { timeout: 10_000 });
    mounted = true;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    skipReason = `cannot mount a tmpfs: ${e.stderr?.trim() || e.message}`;
  }
});

after(async () => {
  await Promise.all([...running].map((p) => p.stop('SIGKILL')));
  if (mounted) await run('umount', ['-l', mnt], { timeout: 10_000 }).catch(() => {});
  await rm(root, { recursive: true, force: true });
});

/** Skips the test when there is no tmpfs; else a fresh store directory on it, removed after. */
function storeDir(t: TestContext, name: string): string | undefined {
  if (skipReason !== undefined) {
    t.diagnostic(skipReason);
    t.skip(skipReason);
    return undefined;
  }
  const dir = path.join(mnt, name);
  t.after(async () => {
    // Tests here run one at a time: whatever still runs is this test's.
    await Promise.all([...running].map((p) => p.stop('SIGKILL')));
    await rm(dir, { recursive: true, force: true });
  });
  return dir;
}

/** ft-server on `dir`, killed when the test ends (a clean stop is asserted where it matters). */
async function serve(t: TestContext, dir: string): Promise<RunningProcess> {
  const proc = await startProcess(SERVER_BIN, ['-d', dir, '-p', '0']);
  running.add(proc);
  t.after(async () => {
    await proc.stop('SIGKILL');
    running.delete(proc);
  });
  return proc;
}

/** Stops a server with SIGTERM and asserts it exits 0. */
async function stop(proc: RunningProcess): Promise<void> {
  assert.equal(await proc.stop(), 0, 'the server stops cleanly');
  running.delete(proc);
}

type Mode = 'plain' | 'gzip-hints';

async function withTimeout<T>(p: Promise<T>, what: string, ms = 15_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} hung for ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const fileQuery = (name: string): string =>
  `/files${encodeName(name)}?last_modified=${encodeURIComponent(formatHttpDate(VERSION))}`;

/** A PUT with a timeout: a hang is a failure, not a stuck test. */
function put(
  url: string,
  name: string,
  content: Buffer,
  mode: Mode = 'plain',
): Promise<HttpResult> {
  const headers: Record<string, string | number> = {};
  let body = content;
  if (mode === 'gzip-hints') {
    body = gzipSync(content, { level: 1 });
    headers['Content-Encoding'] = 'gzip';
    headers['SHA256-Checksum'] = sha256(content);
    headers['Logical-Size'] = content.length;
  }
  return withTimeout(
    httpRequest(url, fileQuery(name), { method: 'PUT', headers, body }),
    `PUT ${name}`,
  );
}

/** GET without Accept-Encoding: the server sends the decompressed bytes. */
const get = (url: string, name: string): Promise<HttpResult> =>
  withTimeout(httpRequest(url, `/files${encodeName(name)}`), `GET ${name}`);

const del = (url: string, name: string): Promise<HttpResult> =>
  withTimeout(httpRequest(url, fileQuery(name), { method: 'DELETE' }), `DELETE ${name}`);

const why = (res: HttpResult): string => `${res.status} ${String(res.headers['x-exception'])}`;

/** Where the server's logged 507s came from (distinct top frames), for the diagnostics. */
function failurePlaces(proc: RunningProcess): string[] {
  const places = new Map<string, number>();
  for (const line of proc.lines) {
    if (!line.includes('"request failed"')) continue;
    const { err } = JSON.parse(line) as { err?: { stack?: string; message?: string } };
    const frames = (err?.stack ?? '').split('\n').filter((l) => l.trim().startsWith('at '));
    const top = frames
      .slice(0, 2)
      .map((f) => f.trim().replace(/\(file:.*\/dist\//, '('))
      .join(' < ');
    const key = `${err?.message} ${top}`;
    places.set(key, (places.get(key) ?? 0) + 1);
  }
  return [...places].map(([k, n]) => `${n}x ${k}`);
}

/** After a failed PUT: 507 with its code, nothing in ft-tmp/, no dangling link, name absent. */
async function assertCleanFailure(
  url: string,
  store: string,
  name: string,
  res: HttpResult,
): Promise<void> {
  assert.equal(res.status, 507, `PUT ${name}: expected 507, got ${why(res)}`);
  assert.equal(res.headers['x-error-code'], 'INSUFFICIENT_STORAGE');
  assert.deepEqual(await tmpEntries(store), [], `ft-tmp/ empty after the failed PUT of ${name}`);
  assert.deepEqual(await danglingLinks(store), [], 'no link to a missing blob');
  assert.equal((await get(url, name)).status, 404, `${name} was not stored`);
}

/** Reads every file back (whole) and asserts it; `when` goes into the messages. */
async function assertReadable(
  url: string,
  stored: Map<string, Buffer>,
  when: string,
): Promise<void> {
  for (const [name, content] of stored) {
    const res = await get(url, name);
    assert.equal(res.status, 200, `GET ${name} ${when}: ${why(res)}`);
    assert.ok(res.body.equals(content), `${name} reads back whole ${when}`);
  }
}

/**
 * Fills the tmpfs to its last page with one file; returns the file's size. Refuses to write
 * anywhere but our small tmpfs, and stops at its size whatever happens.
 */
async function fillUp(file: string): Promise<number> {
  const fs = await statfs(path.dirname(file));
  assert.equal(fs.type, TMPFS_MAGIC, 'the filler goes on the tmpfs only');
  assert.ok(fs.blocks * fs.bsize <= TMPFS_BYTES, 'the filler goes on the 8 MiB tmpfs only');
  const handle = await open(file, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  let size = 0;
  try {
    while (size <= TMPFS_BYTES) size += (await handle.write(chunk)).bytesWritten;
    assert.fail('the tmpfs took more than its size');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    await handle.close();
  }
  return size;
}

test(
  'PUTs on a full disk fail with 507 and leave nothing behind; freeing space makes writes work again',
  { timeout: 120_000 },
  async (t) => {
    const store = storeDir(t, 'store');
    if (!store) return;
    let server = await serve(t, store);
    const stored = new Map<string, Buffer>();

    // Incompressible 256 KiB files (random bytes stay so when the server gzips the plain
    // body) until one does not fit.
    let failures = 0;
    for (let i = 0; i < 64 && failures === 0; i++) {
      const name = `/fill/f${i}`;
      const content = randomBytes(256 * 1024);
      const res = await put(server.url, name, content);
      if (res.status === 200) stored.set(name, content);
      else {
        failures++;
        await assertCleanFailure(server.url, store, name, res);
      }
    }
    assert.equal(failures, 1, 'the disk filled up within 64 files of 256 KiB');
    t.diagnostic(`${stored.size} files of 256 KiB fitted before the first 507`);

    // The last bytes: smaller and smaller uploads in both body forms. Each must be stored
    // whole (200) or refused cleanly (507).
    const sizes = [128, 64, 32, 16, 8, 4, 2, 1].map((k) => k * 1024).concat([512, 100, 10, 0]);
    const outcomes: string[] = [];
    for (const [i, size] of sizes.entries()) {
      for (const mode of ['plain', 'gzip-hints'] as const) {
        const name = `/probe/p${i}-${mode}`;
        const content = randomBytes(size);
        const res = await put(server.url, name, content, mode);
        outcomes.push(`${size}/${mode}:${res.status}`);
        if (res.status === 200) stored.set(name, content);
        else await assertCleanFailure(server.url, store, name, res);
      }
    }
    t.diagnostic(`probes on the full disk: ${outcomes.join(' ')}`);
    for (const where of failurePlaces(server)) t.diagnostic(`507 raised at: ${where}`);

    // A second copy of stored content needs no blob, only a link and a refcount.
    const dupContent = stored.get('/fill/f0')!;
    const dup = await put(server.url, '/dup/of-f0', dupContent, 'gzip-hints');
    t.diagnostic(`PUT of already stored content on the full disk: ${dup.status}`);
    if (dup.status === 200) stored.set('/dup/of-f0', dupContent);
    else await assertCleanFailure(server.url, store, '/dup/of-f0', dup);

    await assertReadable(server.url, stored, 'on the full disk');

    const fills = [...stored.keys()].filter((n) => n.startsWith('/fill/'));
    for (const name of fills.slice(0, Math.ceil(fills.length / 2))) {
      const res = await del(server.url, name);
      assert.equal(res.status, 200, `DELETE ${name} on the full disk: ${why(res)}`);
      stored.delete(name);
    }
    for (let i = 0; i < 4; i++) {
      const name = `/after/a${i}`;
      const content = randomBytes(256 * 1024);
      const res = await put(server.url, name, content, i % 2 ? 'gzip-hints' : 'plain');
      assert.equal(res.status, 200, `PUT ${name} after freeing space: ${why(res)}`);
      stored.set(name, content);
    }
    await assertReadable(server.url, stored, 'after freeing space');
    assert.deepEqual(await tmpEntries(store), []);
    await stop(server);

    server = await serve(t, store);
    await assertReadable(server.url, stored, 'after a restart');
    await stop(server);
    const check = await runRecover(['--check', store]);
    assert.equal(check.code, 0, `ft-recover --check: ${check.stdout}${check.stderr}`);
    assert.deepEqual((await inspectStore(store)).problems, []);
  },
);

/** What a client that sends its whole request before reading saw. */
interface WriteFirstResult {
  /** The status line, if any answer was read. */
  status: string | undefined;
  /** A socket error (ECONNRESET, EPIPE) or 'timeout'. */
  error: string | undefined;
}

/**
 * One PUT from a client that writes the whole request, and only then reads, as Python's
 * http.client does: its socket reads nothing until the body is handed to the kernel. An
 * answer reaches it only if the server reads the body it does not want, or lets it
 * through, before closing.
 */
function writeFirstPut(port: number, name: string, body: Buffer): Promise<WriteFirstResult> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    socket.pause();
    let received = '';
    let error: string | undefined;
    const timer = setTimeout(() => {
      error ??= 'timeout';
      socket.destroy();
    }, 30_000);
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
    socket.on('error', (err: NodeJS.ErrnoException) => (error ??= err.code ?? err.message));
    socket.on('end', () => socket.end());
    socket.on('close', () => {
      clearTimeout(timer);
      const line = received.split('\r\n')[0];
      resolve({ status: line || undefined, error });
    });
    socket.write(
      `PUT ${fileQuery(name)} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    socket.write(body, () => socket.resume());
  });
}

test(
  'on a full disk, 40 uploads of 1 and 4 MiB from clients that send before they read all get their 507, none a reset',
  { timeout: 120_000 },
  async (t) => {
    const store = storeDir(t, 'store-linger');
    if (!store) return;
    const server = await serve(t, store);
    const filler = path.join(mnt, 'filler-linger');
    t.after(() => rm(filler, { force: true }));
    await fillUp(filler);
    const port = Number(new URL(server.url).port);
    // 4 MiB is more than a loopback connection buffers: the client is still sending when
    // the 507 comes, as a large upload from across a network would be.
    const bodies = [randomBytes(1024 * 1024), randomBytes(4 * 1024 * 1024)];
    const outcomes = new Map<string, number>();
    const bad: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = next++; i < 40; i = next++) {
          const body = bodies[i % 2]!;
          const res = await writeFirstPut(port, `/linger/${i}`, body);
          const outcome = `${res.status ?? 'no answer'}${res.error ? ` then ${res.error}` : ''}`;
          outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
          if (!res.status?.startsWith('HTTP/1.1 507 ') || res.error !== undefined) {
            bad.push(`${i} (${body.length} bytes): ${outcome}`);
          }
        }
      }),
    );
    t.diagnostic(`outcomes: ${[...outcomes].map(([o, n]) => `${n}x ${o}`).join(', ')}`);
    assert.deepEqual(bad, [], 'every upload read its 507 and saw the connection closed cleanly');
    assert.deepEqual(await tmpEntries(store), [], 'ft-tmp/ empty');
    await stop(server);
  },
);

test(
  'parallel PUTs racing for the last space each get 200 or 507 and only whole files remain',
  { timeout: 120_000 },
  async (t) => {
    const store = storeDir(t, 'store-parallel');
    if (!store) return;
    const server = await serve(t, store);
    const stored = new Map<string, Buffer>();
    const statuses = new Map<number, number>();
    // 8 writers of 160 KiB files, each until refused 3 times: about 2.5x what fits.
    await Promise.all(
      Array.from({ length: 8 }, async (_, w) => {
        let refused = 0;
        for (let i = 0; refused < 3 && i < 40; i++) {
          const name = `/par/w${w}/f${i}`;
          const content = randomBytes(160 * 1024);
          const res = await put(server.url, name, content, i % 2 ? 'gzip-hints' : 'plain');
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          if (res.status === 200) stored.set(name, content);
          else {
            assert.equal(res.status, 507, `PUT ${name}: ${why(res)}`);
            assert.equal(res.headers['x-error-code'], 'INSUFFICIENT_STORAGE');
            refused++;
          }
        }
      }),
    );
    t.diagnostic(`answers: ${[...statuses].map(([s, n]) => `${n}x ${s}`).join(', ')}`);
    for (const where of failurePlaces(server)) t.diagnostic(`507 raised at: ${where}`);
    assert.deepEqual(await tmpEntries(store), [], 'ft-tmp/ empty');
    assert.deepEqual(await danglingLinks(store), [], 'no link to a missing blob');
    await assertReadable(server.url, stored, 'after the race');
    await stop(server);
    const inspection = await inspectStore(store);
    assert.deepEqual(inspection.problems, [], 'no orphan blob, no wrong record');
    assert.equal(inspection.links.size, stored.size, 'exactly the acknowledged files are stored');
  },
);

/**
 * Stores `shared` once, fills the tmpfs, then PUTs `shared` under new names until one is
 * refused. Such a PUT writes no blob, only a link (a short symlink takes no tmpfs page) and
 * a meta/ record appended to LevelDB's log, so the refusal is the log failing to grow,
 * mid-record. Returns the names stored.
 */
async function exhaustMetaLog(
  t: TestContext,
  server: RunningProcess,
  store: string,
  filler: string,
  shared: Buffer,
): Promise<{ fillerSize: number; names: string[] }> {
  t.after(() => rm(filler, { force: true }));
  assert.equal((await put(server.url, '/pump/0', shared, 'gzip-hints')).status, 200);
  const fillerSize = await fillUp(filler);
  const names = ['/pump/0'];
  let refused: HttpResult | undefined;
  for (let i = 1; i <= 500 && !refused; i++) {
    const res = await put(server.url, `/pump/${i}`, shared, 'gzip-hints');
    if (res.status === 200) names.push(`/pump/${i}`);
    else refused = res;
  }
  assert.ok(refused, 'the meta/ log ran out of space within 500 records');
  t.diagnostic(`${names.length - 1} records fitted in the log's last page, then ${refused.status}`);
  for (const where of failurePlaces(server)) t.diagnostic(`507 raised at: ${where}`);
  await assertCleanFailure(server.url, store, `/pump/${names.length}`, refused);
  return { fillerSize, names };
}

test(
  'a PUT refused because meta/ cannot grow leaves no blob behind',
  { timeout: 60_000 },
  async (t) => {
    const store = storeDir(t, 'store-meta-1');
    if (!store) return;
    const filler = path.join(mnt, 'filler-1');
    const server = await serve(t, store);
    const { fillerSize } = await exhaustMetaLog(t, server, store, filler, randomBytes(1000));
    // Free exactly one page: the next new blob fits, its meta/ record does not.
    await truncate(filler, Math.ceil(fillerSize / 4096) * 4096 - 4096);
    const fresh = randomBytes(10);
    const res = await put(server.url, '/fresh', fresh);
    t.diagnostic(`PUT /fresh with one page free: ${res.status}`);
    if (res.status !== 200) {
      await assertCleanFailure(server.url, store, '/fresh', res);
      assert.deepEqual(
        (await blobFiles(store)).filter((f) => f.endsWith(sha256(fresh))),
        [],
        'the refused PUT left its blob in blobs/ with no link and no record',
      );
    }
    await rm(filler);
    assert.equal(
      (await put(server.url, '/fresh', fresh)).status,
      200,
      'the same PUT works with room',
    );
    await assertReadable(server.url, new Map([['/fresh', fresh]]), 'with room again');
    await stop(server);
  },
);

test(
  'uploads acknowledged after meta/ ran out of space are still readable after a restart',
  { timeout: 60_000 },
  async (t) => {
    const store = storeDir(t, 'store-meta-2');
    if (!store) return;
    const filler = path.join(mnt, 'filler-2');
    let server = await serve(t, store);
    const shared = randomBytes(1000);
    const { names } = await exhaustMetaLog(t, server, store, filler, shared);
    await rm(filler);
    const stored = new Map<string, Buffer>(names.map((n) => [n, shared]));
    for (let i = 0; i < 20; i++) {
      const content = randomBytes(100 + i);
      const res = await put(server.url, `/later/${i}`, content, 'gzip-hints');
      assert.equal(res.status, 200, `PUT /later/${i} with room again: ${why(res)}`);
      stored.set(`/later/${i}`, content);
    }
    await assertReadable(server.url, stored, 'before the restart');
    await stop(server);

    server = await serve(t, store);
    const failed: string[] = [];
    for (const [name, content] of stored) {
      const res = await get(server.url, name);
      if (res.status !== 200) failed.push(`${name}: ${res.status}`);
      else assert.ok(res.body.equals(content), `${name} reads back whole after a restart`);
    }
    assert.deepEqual(failed, [], 'every acknowledged upload is readable after a restart');
    await stop(server);
    const check = await runRecover(['--check', store]);
    assert.equal(check.code, 0, `ft-recover --check: ${check.stdout}${check.stderr}`);
  },
);
