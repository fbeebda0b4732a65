import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { recoverStore } from '@filetracker/server';
import {
  FiletrackerClient,
  HEADER,
  STATUS_FIELD,
  formatHttpDate,
} from '@filetracker/shared-protocol';
import { startServer, tempDir } from './helpers/server.js';

const run = promisify(execFile);

/** The value of one sample in Prometheus text format, 0 when absent. */
async function sample(url: string, series: string): Promise<number> {
  const text = await (await fetch(url + '/metrics')).text();
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/**
 * Waits (5 s at most) for a sample to reach `expected`: a request is counted when its
 * response closes, which can trail the client's last byte (a gunzipped body ends after
 * zlib's final flush).
 */
async function sampleReaches(url: string, series: string, expected: number): Promise<number> {
  const deadline = Date.now() + 5_000;
  let value = await sample(url, series);
  while (value !== expected && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    value = await sample(url, series);
  }
  return value;
}

function put(url: string, name: string, body: string, version = 1_700_000_000): Promise<Response> {
  return fetch(`${url}/files${name}?last_modified=${encodeURIComponent(formatHttpDate(version))}`, {
    method: 'PUT',
    body,
  });
}

test('/metrics counts requests, bytes, blobs and dedup hits as they happen', async (t) => {
  const server = await startServer();
  t.after(() => server.close());
  const puts = 'ft_http_requests_total{endpoint="files",method="PUT",status="200"}';
  const gets = 'ft_http_requests_total{endpoint="files",method="GET",status="200"}';
  const misses = 'ft_http_requests_total{endpoint="files",method="GET",status="404"}';
  const before = {
    puts: await sample(server.url, puts),
    blobs: await sample(server.url, 'ft_blobs'),
    dedup: await sample(server.url, 'ft_dedup_hits_total'),
    saved: await sample(server.url, 'ft_dedup_saved_bytes_total'),
    bytesIn: await sample(server.url, 'ft_http_received_bytes_total'),
  };
  assert.equal((await put(server.url, '/m/a.txt', 'metric content')).status, 200);
  assert.equal(await sample(server.url, puts), before.puts + 1);
  assert.equal(await sample(server.url, 'ft_blobs'), before.blobs + 1);
  assert.ok((await sample(server.url, 'ft_blob_bytes')) > 0);
  assert.ok((await sample(server.url, 'ft_http_received_bytes_total')) > before.bytesIn);

  // Same content under another name: one more dedup hit, no new blob.
  assert.equal((await put(server.url, '/m/b.txt', 'metric content')).status, 200);
  assert.equal(await sample(server.url, 'ft_dedup_hits_total'), before.dedup + 1);
  assert.equal(await sample(server.url, 'ft_blobs'), before.blobs + 1);
  // The hit saved what the blob takes on disk (its gzip), not the body's length.
  const blobSize = (await stat(path.join(server.dir, 'links', 'm', 'a.txt'))).size;
  assert.notEqual(blobSize, 'metric content'.length);
  assert.equal(await sample(server.url, 'ft_dedup_saved_bytes_total'), before.saved + blobSize);
  // A new version of a name with the content it holds is no hit and saves nothing.
  const v2 = 1_700_000_001;
  assert.equal((await put(server.url, '/m/b.txt', 'metric content', v2)).status, 200);
  assert.equal(await sample(server.url, 'ft_dedup_hits_total'), before.dedup + 1);
  assert.equal(await sample(server.url, 'ft_dedup_saved_bytes_total'), before.saved + blobSize);

  // GETs count whether answered from memory or through the router.
  const getsBefore = await sample(server.url, gets);
  for (let i = 0; i < 3; i++) {
    const res = await fetch(server.url + '/files/m/a.txt', {
      headers: { 'accept-encoding': 'gzip' },
    });
    await res.arrayBuffer();
  }
  await (
    await fetch(server.url + '/files/m/a.txt', { headers: { 'accept-encoding': 'identity' } })
  ).arrayBuffer();
  assert.equal(await sampleReaches(server.url, gets, getsBefore + 4), getsBefore + 4);
  const missesBefore = await sample(server.url, misses);
  await (await fetch(server.url + '/files/m/none.txt')).arrayBuffer();
  assert.equal(await sampleReaches(server.url, misses, missesBefore + 1), missesBefore + 1);

  // Deleting both names drops the blob.
  const q = '?last_modified=' + encodeURIComponent(formatHttpDate(1_800_000_000));
  await fetch(server.url + '/files/m/a.txt' + q, { method: 'DELETE' });
  await fetch(server.url + '/files/m/b.txt' + q, { method: 'DELETE' });
  assert.equal(await sample(server.url, 'ft_blobs'), before.blobs);
  assert.equal(await sample(server.url, 'ft_uploads_in_flight'), 0);
  assert.ok(
    (await sample(
      server.url,
      'ft_http_request_duration_seconds_count{endpoint="files",method="PUT"}',
    )) >= 2,
  );
});

test('/metrics counts blobs already in the store when it opens', async (t) => {
  const dir = await tempDir();
  t.after(() => rm(dir, { recursive: true, force: true }));
  const first = await startServer({ dir });
  await put(first.url, '/x/1', 'one');
  await put(first.url, '/x/2', 'two');
  await first.close();
  const second = await startServer({ dir });
  t.after(() => second.close());
  for (let i = 0; i < 50 && (await sample(second.url, 'ft_store_counts_ready')) !== 1; i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(await sample(second.url, 'ft_blobs'), 2);
});

test('/healthz is 200 while the store takes writes and 503 once it cannot', async (t) => {
  const server = await startServer();
  t.after(() => server.close());
  const tmp = `${server.dir}/ft-tmp`;
  assert.equal((await fetch(server.url + '/healthz')).status, 200);
  // An immutable ft-tmp/ refuses new files even to root, like a read-only mount would
  // (a remount is refused while the database holds files open for writing).
  try {
    await run('chattr', ['+i', tmp]);
  } catch (err) {
    t.skip(`chattr +i is not supported here (${(err as Error).message.split('\n')[0]})`);
    return;
  }
  t.after(() => run('chattr', ['-i', tmp]).catch(() => {}));
  const res = await fetch(server.url + '/healthz');
  assert.equal(res.status, 503);
  assert.match(res.headers.get('x-exception') ?? '', /writable/);
  assert.equal(res.headers.get('x-error-code'), 'STORE_NOT_WRITABLE');
  // Reads keep working meanwhile.
  assert.equal((await fetch(server.url + '/version')).status, 200);
  await run('chattr', ['-i', tmp]);
  assert.equal((await fetch(server.url + '/healthz')).status, 200);
});

/** The identity a server answers, checked to agree across `/status`, its header and `/version`. */
async function answeredStoreId(url: string): Promise<string> {
  const status = await fetch(url + '/status');
  const body = (await status.json()) as Record<string, unknown>;
  const id = body[STATUS_FIELD.storeId];
  assert.equal(typeof id, 'string');
  assert.equal(status.headers.get(HEADER.storeId), id);
  const client = new FiletrackerClient(url);
  try {
    assert.deepEqual(await client.versionInfo(), { protocolVersions: [2], storeId: id });
  } finally {
    client.close();
  }
  return id as string;
}

test('a store has one identity, made at its first open, kept across restarts and ft-recover, answered in /status and a header (issue 18)', async (t) => {
  const dir = await tempDir();
  const other = await tempDir();
  t.after(() => Promise.all([dir, other].map((d) => rm(d, { recursive: true, force: true }))));
  const reopen = async (d: string): Promise<string> => {
    const server = await startServer({ dir: d });
    try {
      return await answeredStoreId(server.url);
    } finally {
      await server.close();
    }
  };

  const first = await reopen(dir);
  assert.match(first, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  assert.equal((await readFile(path.join(dir, 'ft-store-id'), 'utf8')).trim(), first);
  assert.equal(await reopen(dir), first, 'the same store after a restart');
  assert.notEqual(await reopen(other), first, 'another store');

  // ft-recover rebuilds meta/ (as after losing it) and leaves the identity alone.
  await rm(path.join(dir, 'meta'), { recursive: true });
  await recoverStore(dir);
  assert.equal(await reopen(dir), first, 'after ft-recover rebuilt meta/');

  // A store from before identities (or adopted from the Python server) gets one at its
  // first open, which then stays.
  await rm(path.join(dir, 'ft-store-id'));
  const made = await reopen(dir);
  assert.notEqual(made, first);
  assert.equal(await reopen(dir), made);

  // A hand-edited file that holds no identity is replaced, not a reason to refuse to start.
  await writeFile(path.join(dir, 'ft-store-id'), 'not an id!\n');
  const replaced = await reopen(dir);
  assert.notEqual(replaced, made);
  assert.equal(await reopen(dir), replaced);
  assert.deepEqual(await readdir(path.join(dir, 'ft-tmp')), []);
});
