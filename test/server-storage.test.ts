import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { lstat, readFile, readdir, readlink, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { startServer, tempDir, type TestServer } from './helpers/server.js';
import { checkStore } from './helpers/store-check.js';
import {
  deleteFile,
  fileUrl,
  getFile,
  putFile,
  sha256,
  slowRequest,
  versionOf,
  waitFor,
} from './helpers/store-traffic.js';

const V = 1_600_000_000;

async function server(t: TestContext): Promise<TestServer> {
  const srv = await startServer();
  t.after(() => srv.close());
  return srv;
}

const blobFile = (srv: TestServer, digest: string): string =>
  path.join(srv.dir, 'blobs', digest.slice(0, 2), digest);

const linkFile = (srv: TestServer, name: string): string =>
  path.join(srv.dir, 'links', ...name.split('/').filter(Boolean));

async function blobSet(srv: TestServer): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(path.join(srv.dir, 'blobs'))) {
    out.push(...(await readdir(path.join(srv.dir, 'blobs', d))));
  }
  return out.sort();
}

const tmpEntries = (srv: TestServer): Promise<string[]> => readdir(path.join(srv.dir, 'ft-tmp'));

async function assertClean(srv: TestServer): Promise<void> {
  const check = await checkStore(srv.dir, { meta: srv.store.metadata.db });
  assert.deepEqual(check.problems, []);
}

/**
 * After rejected requests: the blobs are those before them, `/kept` (stored at V before
 * them) reads back whole with its one reference, and the store checks clean.
 */
async function assertOnlyKept(srv: TestServer, kept: Buffer, blobsBefore: string[]): Promise<void> {
  assert.deepEqual(await blobSet(srv), blobsBefore);
  assert.equal((await srv.store.metadata.db.getBlob(sha256(kept)))?.refs, 1);
  const got = await getFile(srv.url, '/kept');
  assert.equal(got.version, V);
  assert.ok(got.body.equals(kept));
  await assertClean(srv);
}

/** Some compressible bytes that still differ from call to call. */
const sample = (size: number): Buffer =>
  Buffer.concat([randomBytes(32), Buffer.from('abcdefgh\n'.repeat(Math.ceil(size / 9)))]).subarray(
    0,
    size,
  );

test('a blob on disk is the gzip of the content and is named by its sha256, for plain and gzip uploads (invariant 3)', async (t) => {
  const srv = await server(t);
  const plain = sample(100_000);
  const gz = sample(70_000);
  assert.equal((await putFile(srv.url, '/inv3/plain.txt', plain, V, 'plain')).status, 200);
  assert.equal((await putFile(srv.url, '/inv3/gz.bin', gz, V, 'gzip-hints')).status, 200);

  for (const [name, data] of [
    ['/inv3/plain.txt', plain],
    ['/inv3/gz.bin', gz],
  ] as const) {
    const digest = sha256(data);
    assert.equal(path.basename(await readlink(linkFile(srv, name))), digest);
    const onDisk = await readFile(blobFile(srv, digest));
    assert.ok(gunzipSync(onDisk).equals(data), `${name}: blob does not gunzip to the content`);
    const record = await srv.store.metadata.db.getBlob(digest);
    assert.equal(record?.refs, 1);
    assert.equal(record?.logicalSize, data.length);
    assert.equal(record?.storedSize, onDisk.length);
    const got = await fetch(fileUrl(srv.url, name), { headers: { 'Accept-Encoding': 'gzip' } });
    assert.equal(got.headers.get('etag'), `"${digest}"`);
    assert.equal(got.headers.get('logical-size'), String(data.length));
  }
  // A gzip body is stored as it came (PROTOCOL.md: GET serves "the stored gzip as is").
  assert.ok((await readFile(blobFile(srv, sha256(gz)))).equals(gzipSync(gz)));

  // The same content under another name is the same blob, counted twice.
  assert.equal((await putFile(srv.url, '/inv3/again.txt', plain, V + 1, 'gzip')).status, 200);
  assert.equal((await srv.store.metadata.db.getBlob(sha256(plain)))?.refs, 2);
  assert.deepEqual(await blobSet(srv), [sha256(gz), sha256(plain)].sort());
  await assertClean(srv);
  // meta/ records hold what BlobRecord says and nothing else (no paths of temp files).
  for await (const [digest, record] of srv.store.metadata.db.blobs()) {
    assert.deepEqual(Object.keys(record).sort(), ['logicalSize', 'refs', 'storedSize'], digest);
  }
});

test('gzip bodies are stored as sent whether read whole (up to 64 KiB), inflating past 1 MiB, or streamed', async (t) => {
  const srv = await server(t);
  const cases: [string, Buffer][] = [
    ['/gzsize/small.txt', sample(5_000)], // read whole, inflated in one call
    ['/gzsize/zeros.bin', Buffer.alloc(3 * 1024 * 1024)], // 3 KiB of gzip that inflates to 3 MiB
    ['/gzsize/random.bin', randomBytes(100_000)], // over 64 KiB of gzip: streamed
  ];
  const blobsBefore = await blobSet(srv);
  for (const [name, data] of cases) {
    // A wrong checksum is refused on every path, and leaves nothing behind.
    const wrong = await putFile(srv.url, name, data, V, 'gzip-hints', {
      'SHA256-Checksum': sha256(Buffer.from('other')),
    });
    assert.equal(wrong.status, 400, name);
    assert.deepEqual(await blobSet(srv), blobsBefore);
  }
  for (const [name, data] of cases) {
    assert.equal((await putFile(srv.url, name, data, V, 'gzip-hints')).status, 200, name);
    const digest = sha256(data);
    assert.ok((await readFile(blobFile(srv, digest))).equals(gzipSync(data)), name);
    const record = await srv.store.metadata.db.getBlob(digest);
    assert.deepEqual(record, {
      refs: 1,
      logicalSize: data.length,
      storedSize: gzipSync(data).length,
    });
    const got = await getFile(srv.url, name);
    assert.ok(got.body.equals(data), name);
  }
  assert.deepEqual(await tmpEntries(srv), []);
  await assertClean(srv);
});

test('links point at their blob relatively, one ../ per directory level as the Python server makes them, and a link’s own mtime is its version', async (t) => {
  const srv = await server(t);
  const names = ['/top.txt', '/a/b.txt', '/a/b/c/d.txt', '/zażółć gęślą/jaźń +%.txt'];
  for (const [i, name] of names.entries()) {
    const data = Buffer.from(`content of ${name}`);
    assert.equal((await putFile(srv.url, name, data, V + i)).status, 200);
    const digest = sha256(data);
    const link = linkFile(srv, name);
    const depth = name.split('/').length - 1;
    assert.equal(
      await readlink(link),
      '../'.repeat(depth) + `blobs/${digest.slice(0, 2)}/${digest}`,
    );
    const own = await lstat(link);
    assert.ok(own.isSymbolicLink());
    assert.equal(own.mtimeMs / 1000, V + i);
    assert.equal((await stat(link)).ino, (await stat(blobFile(srv, digest))).ino);
  }
  // A replace with the same content and a newer version only moves the mtime.
  assert.equal(
    (await putFile(srv.url, '/a/b.txt', Buffer.from('content of /a/b.txt'), V + 50)).status,
    200,
  );
  assert.equal((await lstat(linkFile(srv, '/a/b.txt'))).mtimeMs / 1000, V + 50);
  assert.equal((await getFile(srv.url, '/a/b.txt')).version, V + 50);
  await assertClean(srv);
});

test('an upload in flight keeps its bytes in ft-tmp/ only: no link, no new blob and a 404 until it completes', async (t) => {
  const srv = await server(t);
  assert.equal((await putFile(srv.url, '/other', Buffer.from('x'), V)).status, 200);
  const blobsBefore = await blobSet(srv);
  const data = randomBytes(4 * 1024 * 1024);
  const upload = slowRequest(fileUrl(srv.url, '/inflight/big.bin', V), {
    headers: { 'SHA256-Checksum': sha256(data), 'Logical-Size': String(data.length) },
  });
  t.after(() => upload.req.destroy());
  await upload.write(data.subarray(0, 2 * 1024 * 1024));
  const [tmp] = await waitFor('bytes of the upload in ft-tmp/', async () => {
    for (const e of await tmpEntries(srv)) {
      if ((await stat(path.join(srv.dir, 'ft-tmp', e))).size > 0) return [e];
    }
    return undefined;
  });
  assert.ok(tmp);
  assert.equal(await lstat(linkFile(srv, '/inflight/big.bin')).catch(() => null), null);
  assert.deepEqual(await blobSet(srv), blobsBefore);
  assert.equal((await getFile(srv.url, '/inflight/big.bin')).status, 404);

  await upload.write(data.subarray(2 * 1024 * 1024));
  const answer = await upload.end();
  assert.equal(answer.status, 200);
  assert.equal(versionOf(answer.headers['last-modified'] as string), V);
  assert.deepEqual(await tmpEntries(srv), []);
  assert.deepEqual(await blobSet(srv), [...blobsBefore, sha256(data)].sort());
  const got = await getFile(srv.url, '/inflight/big.bin', { plain: true });
  assert.ok(got.body.equals(data));
  await assertClean(srv);
});

test('an aborted upload leaves nothing: no link, no blob, an empty ft-tmp/ and unchanged refcounts, also when it claimed a stored digest or replaced a name', async (t) => {
  const srv = await server(t);
  const kept = sample(50_000);
  assert.equal((await putFile(srv.url, '/kept', kept, V)).status, 200);
  const blobsBefore = await blobSet(srv);

  const cases: { name: string; headers: Record<string, string> }[] = [
    { name: '/aborted/new', headers: {} },
    // Claims the digest of a stored blob: the server only verifies the body (pinned path).
    { name: '/aborted/claims-stored', headers: { 'SHA256-Checksum': sha256(kept) } },
    // Would replace an existing name.
    { name: '/kept', headers: {} },
  ];
  for (const c of cases) {
    const upload = slowRequest(fileUrl(srv.url, c.name, V + 10), { headers: c.headers });
    await upload.write(
      c.name === '/aborted/claims-stored' ? kept.subarray(0, 20_000) : randomBytes(1 << 20),
    );
    await waitFor('the upload to start', () => srv.store.stats.uploadsInFlight > 0);
    upload.req.destroy();
    await waitFor('the server to drop the upload', async () => {
      return srv.store.stats.uploadsInFlight === 0 && (await tmpEntries(srv)).length === 0;
    });
  }
  assert.equal(await lstat(path.join(srv.dir, 'links', 'aborted', 'new')).catch(() => null), null);
  assert.equal(
    await lstat(path.join(srv.dir, 'links', 'aborted', 'claims-stored')).catch(() => null),
    null,
  );
  await assertOnlyKept(srv, kept, blobsBefore);
});

test('a rejected upload (wrong checksum or size, bad or truncated gzip) is 400 and stores nothing', async (t) => {
  const srv = await server(t);
  const kept = sample(30_000);
  assert.equal((await putFile(srv.url, '/kept', kept, V)).status, 200);
  const blobsBefore = await blobSet(srv);
  const data = sample(40_000);
  const gz = gzipSync(data);
  const wrongDigest = sha256(Buffer.from('something else'));
  const cases: { what: string; name: string; body: Buffer; headers: Record<string, string> }[] = [
    {
      what: 'plain, wrong checksum',
      name: '/bad/a',
      body: data,
      headers: { 'SHA256-Checksum': wrongDigest },
    },
    {
      what: 'gzip, wrong checksum',
      name: '/bad/b',
      body: gz,
      headers: {
        'Content-Encoding': 'gzip',
        'SHA256-Checksum': wrongDigest,
        'Logical-Size': String(data.length),
      },
    },
    {
      what: 'gzip, wrong Logical-Size',
      name: '/bad/c',
      body: gz,
      headers: {
        'Content-Encoding': 'gzip',
        'SHA256-Checksum': sha256(data),
        'Logical-Size': String(data.length + 1),
      },
    },
    {
      what: 'claims gzip, is not',
      name: '/bad/d',
      body: data,
      headers: { 'Content-Encoding': 'gzip' },
    },
    {
      what: 'truncated gzip',
      name: '/bad/e',
      body: gz.subarray(0, gz.length - 12),
      headers: { 'Content-Encoding': 'gzip', 'SHA256-Checksum': sha256(data) },
    },
    {
      what: 'checksum not 64 hex',
      name: '/bad/f',
      body: data,
      headers: { 'SHA256-Checksum': 'abc' },
    },
    {
      what: 'claims a stored digest, sends other bytes',
      name: '/bad/g',
      body: gzipSync(data),
      headers: {
        'Content-Encoding': 'gzip',
        'SHA256-Checksum': sha256(kept),
        'Logical-Size': String(kept.length),
      },
    },
    {
      what: 'replacing a name with a wrong checksum',
      name: '/kept',
      body: data,
      headers: { 'SHA256-Checksum': wrongDigest },
    },
  ];
  for (const c of cases) {
    const res = await fetch(fileUrl(srv.url, c.name, V + 1), {
      method: 'PUT',
      headers: c.headers,
      body: c.body,
    });
    await res.arrayBuffer();
    assert.equal(res.status, 400, c.what);
    assert.deepEqual(await tmpEntries(srv), [], `${c.what}: ft-tmp/ not empty`);
  }
  assert.deepEqual(await readdir(path.join(srv.dir, 'links', 'bad')).catch(() => []), []);
  await assertOnlyKept(srv, kept, blobsBefore);
});

test('replacing a name is atomic: readers polling during 200 replaces never get a 404 and always get a body and version of one PUT', async (t) => {
  const srv = await server(t);
  const name = '/atomic/replaced';
  /** digest -> versions it was sent with (registered before each PUT is sent). */
  const versionsOf = new Map<string, Set<number>>();
  const contentOf = (i: number): Buffer =>
    i % 10 === 9
      ? Buffer.concat([Buffer.from(`big ${i};`), randomBytes(300_000)])
      : Buffer.from(`replace number ${Math.floor(i / 2)};`.repeat(20));
  const register = (data: Buffer, version: number): void => {
    const d = sha256(data);
    if (!versionsOf.has(d)) versionsOf.set(d, new Set());
    versionsOf.get(d)!.add(version);
  };
  register(contentOf(0), V);
  assert.equal((await putFile(srv.url, name, contentOf(0), V)).status, 200);

  let writing = true;
  const problems: string[] = [];
  let reads = 0;
  const reader = async (mode: 'gzip' | 'plain' | 'head'): Promise<void> => {
    let last = V;
    while (writing) {
      const res = await fetch(fileUrl(srv.url, name), {
        method: mode === 'head' ? 'HEAD' : 'GET',
        headers: mode === 'plain' ? { 'Accept-Encoding': 'identity' } : {},
      });
      const body = Buffer.from(await res.arrayBuffer());
      reads++;
      if (res.status !== 200) {
        problems.push(`${mode}: status ${res.status}`);
        continue;
      }
      const version = versionOf(res.headers.get('last-modified'))!;
      const digest = mode === 'head' ? res.headers.get('etag')!.replace(/"/g, '') : sha256(body);
      if (mode !== 'head' && res.headers.get('etag') !== `"${digest}"`)
        problems.push(`${mode}: ETag is not the body's`);
      if (!versionsOf.get(digest)?.has(version))
        problems.push(
          `${mode}: version ${version} never sent with this body (sent with ${[...(versionsOf.get(digest) ?? [])].join(',') || 'nothing'}; ${body.length} bytes)`,
        );
      if (version < last) problems.push(`${mode}: version went back from ${last} to ${version}`);
      last = version;
    }
  };
  const readers = [reader('gzip'), reader('plain'), reader('head'), reader('gzip')];
  for (let i = 1; i <= 200; i++) {
    const data = contentOf(i);
    register(data, V + i);
    const r = await putFile(srv.url, name, data, V + i, i % 2 ? 'gzip-hints' : 'plain');
    assert.equal(r.status, 200);
  }
  writing = false;
  await Promise.all(readers);
  t.diagnostic(`${reads} reads during 200 replaces`);
  assert.deepEqual(problems.slice(0, 10), []);
  assert.ok(reads >= 50, `only ${reads} reads`);
  assert.equal((await getFile(srv.url, name)).version, V + 200);
  await assertClean(srv);
});

test('versions before 1970 (negative) are stored on the link, survive a restart and are compared like any other', async (t) => {
  const dir = await tempDir();
  let srv = await startServer({ dir });
  t.after(async () => {
    await srv.close();
    await rm(dir, { recursive: true, force: true });
  });
  const versions = [-315_619_200, -1];
  const dataOf = (v: number): Buffer => Buffer.from(`from ${new Date(v * 1000).toUTCString()}`);
  for (const version of versions) {
    const put = await putFile(srv.url, `/neg/${-version}`, dataOf(version), version);
    assert.equal(put.status, 200);
    assert.equal(put.version, version, 'PUT Last-Modified');
  }
  // A restart drops every cache: what a GET says now comes from the disk.
  await srv.close();
  srv = await startServer({ dir });
  for (const version of versions) {
    const name = `/neg/${-version}`;
    const got = await getFile(srv.url, name);
    assert.equal(got.status, 200);
    assert.equal(got.version, version, `${name}: GET Last-Modified after a restart`);
    assert.ok(got.body.equals(dataOf(version)));
    assert.equal((await lstat(linkFile(srv, name))).mtimeMs / 1000, version, `${name}: link mtime`);

    const older = await putFile(srv.url, name, Buffer.from('older'), version - 100);
    assert.equal(older.status, 200);
    assert.equal(older.version, version, 'an older PUT leaves the version');
    assert.equal(await deleteFile(srv.url, name, version - 1), 200);
    assert.equal((await getFile(srv.url, name)).status, 200, 'an older DELETE leaves the name');
    assert.equal(await deleteFile(srv.url, name, version), 200);
    assert.equal((await getFile(srv.url, name)).status, 404, 'an equal DELETE removes the name');
  }
  await assertClean(srv);
});

test('a blob shared by two names outlives the first DELETE; the last DELETE removes the blob file and its record', async (t) => {
  const srv = await server(t);
  const data = sample(20_000);
  const digest = sha256(data);
  assert.equal((await putFile(srv.url, '/shared/one', data, V)).status, 200);
  assert.equal((await putFile(srv.url, '/shared/two', data, V, 'plain')).status, 200);
  assert.equal((await srv.store.metadata.db.getBlob(digest))?.refs, 2);
  assert.equal(await deleteFile(srv.url, '/shared/one', V), 200);
  assert.equal((await srv.store.metadata.db.getBlob(digest))?.refs, 1);
  assert.ok((await getFile(srv.url, '/shared/two')).body.equals(data));
  await assertClean(srv);
  assert.equal(await deleteFile(srv.url, '/shared/two', V), 200);
  assert.equal(await srv.store.metadata.db.getBlob(digest), undefined);
  assert.equal(await stat(blobFile(srv, digest)).catch(() => null), null);
  // Empty directories stay (compat: /list of an emptied directory is 200).
  assert.deepEqual(await readdir(path.join(srv.dir, 'links', 'shared')), []);
  await assertClean(srv);
});

test('content stored before a restart is deduplicated after it: the filter of stored digests starts from meta/', async (t) => {
  const dir = await tempDir();
  t.after(() => rm(dir, { recursive: true, force: true }));
  const contents = Array.from({ length: 20 }, () => sample(3_000));
  const first = await startServer({ dir });
  for (const [i, data] of contents.entries()) {
    assert.equal((await putFile(first.url, `/before/${i}`, data, V)).status, 200);
  }
  await first.close();

  const srv = await startServer({ dir });
  t.after(() => srv.close());
  // Once the filter answers, a "not stored" from it skips the database: it must know them.
  await waitFor('the filter to be built', () => srv.store.metadata.digestFilter.ready);
  for (const [i, data] of contents.entries()) {
    assert.equal((await putFile(srv.url, `/after/${i}`, data, V)).status, 200);
    assert.equal((await srv.store.metadata.db.getBlob(sha256(data)))?.refs, 2, `content ${i}`);
  }
  assert.equal(srv.store.stats.dedupHits, contents.length);
  // The first names go; their blobs stay for the second ones.
  for (const i of contents.keys()) assert.equal(await deleteFile(srv.url, `/before/${i}`, V), 200);
  for (const [i, data] of contents.entries()) {
    assert.ok((await getFile(srv.url, `/after/${i}`)).body.equals(data), `content ${i}`);
  }
  await assertClean(srv);
});

test('the filter of stored digests grows past its size while uploads go on, and forgets none', async (t) => {
  // With one record in memory, nearly every upload asks the filter before the database.
  const srv = await startServer({ store: { digestFilterCapacity: 16, blobRecordCacheSize: 1 } });
  t.after(() => srv.close());
  await waitFor('the filter to be built', () => srv.store.metadata.digestFilter.ready);
  assert.equal(srv.store.metadata.digestFilter.capacity, 16);
  // 300 new contents, 8 at a time: the filter is rebuilt (from a scan of meta/) while
  // records are still being written, several times over.
  const contents = Array.from({ length: 300 }, () => sample(2_000));
  const putAll = async (dirName: string): Promise<void> => {
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = next++; i < contents.length; i = next++) {
          const res = await putFile(srv.url, `/${dirName}/${i}`, contents[i]!, V);
          assert.equal(res.status, 200);
        }
      }),
    );
  };
  await putAll('grow');
  await waitFor(
    'the filter to grow',
    () => srv.store.metadata.digestFilter.capacity >= contents.length,
  );
  assert.equal(srv.store.stats.dedupHits, 0);
  // Every one of them is found stored again: none was lost across the rebuilds.
  await putAll('again');
  assert.equal(srv.store.stats.dedupHits, contents.length);
  for (const data of contents)
    assert.equal((await srv.store.metadata.db.getBlob(sha256(data)))?.refs, 2);
  await assertClean(srv);
});

test('a build of the filter of stored digests that runs while uploads land keeps every digest they write', async (t) => {
  const srv = await startServer({ store: { blobRecordCacheSize: 1 } });
  t.after(() => srv.close());
  await waitFor('the filter to be built', () => srv.store.metadata.digestFilter.ready);
  // 100,000 records (of no real blob) make a scan of meta/ long enough for uploads to land
  // during it: their digests are not in the scan's snapshot and must still be kept.
  const db = srv.store.metadata.db.db;
  for (let batch = 0; batch < 20; batch++) {
    await db.batch(
      Array.from({ length: 5_000 }, () => ({
        type: 'put' as const,
        key: `b:${randomBytes(32).toString('hex')}`,
        value: JSON.stringify({ refs: 1, logicalSize: 1, storedSize: 1 }),
      })),
    );
  }
  const written: string[] = [];
  let building = true;
  const uploads = Array.from({ length: 4 }, async (_, w) => {
    for (let i = 0; building; i++) {
      const data = sample(1_000);
      assert.equal((await putFile(srv.url, `/race/${w}-${i}`, data, V)).status, 200);
      written.push(sha256(data));
    }
  });
  await new Promise((r) => setTimeout(r, 20));
  const before = written.length;
  await srv.store.metadata.digestFilter.build(200_000);
  const during = written.length - before;
  building = false;
  await Promise.all(uploads);
  t.diagnostic(`${written.length} uploads, ${during} of them while the build ran`);
  assert.ok(during > 0, 'some uploads landed while the build ran');
  assert.deepEqual(
    written.filter((d) => !srv.store.metadata.digestFilter.mayHold(d)),
    [],
  );
});

test('an upload that claims a stored digest keeps that blob alive while the only name holding it is deleted, whether it completes or is aborted', async (t) => {
  const srv = await server(t);
  const data = sample(60_000);
  const digest = sha256(data);
  for (const outcome of ['completes', 'aborted'] as const) {
    assert.equal((await putFile(srv.url, '/holder', data, V)).status, 200);
    const upload = slowRequest(fileUrl(srv.url, `/claimer-${outcome}`, V), {
      headers: { 'SHA256-Checksum': digest, 'Logical-Size': String(data.length) },
    });
    t.after(() => upload.req.destroy());
    await upload.write(data.subarray(0, 30_000));
    await waitFor('the upload to start', () => srv.store.stats.uploadsInFlight > 0);
    assert.equal(await deleteFile(srv.url, '/holder', V), 200);
    assert.equal((await getFile(srv.url, '/holder')).status, 404);
    if (outcome === 'completes') {
      await upload.write(data.subarray(30_000));
      assert.equal((await upload.end()).status, 200);
      const got = await getFile(srv.url, `/claimer-${outcome}`, { plain: true });
      assert.ok(got.body.equals(data));
      assert.equal((await srv.store.metadata.db.getBlob(digest))?.refs, 1);
      assert.equal(await deleteFile(srv.url, `/claimer-${outcome}`, V), 200);
    } else {
      upload.req.destroy();
      await waitFor('the server to drop the upload', () => srv.store.stats.uploadsInFlight === 0);
    }
    await waitFor('the blob to go once nothing holds it', async () => {
      return (await stat(blobFile(srv, digest)).catch(() => null)) === null;
    });
    assert.equal(await srv.store.metadata.db.getBlob(digest), undefined);
    await assertClean(srv);
  }
});

test('a PUT refused with 409 (a parent is a file, or the name is a directory) stores nothing', async (t) => {
  const srv = await server(t);
  assert.equal((await putFile(srv.url, '/file', Buffer.from('f'), V)).status, 200);
  assert.equal((await putFile(srv.url, '/dir/inner', Buffer.from('i'), V)).status, 200);
  const blobsBefore = await blobSet(srv);
  assert.equal((await putFile(srv.url, '/file/below', sample(10_000), V)).status, 409);
  assert.equal((await putFile(srv.url, '/dir', sample(10_000), V, 'plain')).status, 409);
  assert.deepEqual(await blobSet(srv), blobsBefore);
  assert.deepEqual(await tmpEntries(srv), []);
  assert.equal((await getFile(srv.url, '/file')).body.toString(), 'f');
  await assertClean(srv);
});

test('an upload whose blob cannot be renamed into blobs/ fails and leaves nothing: its record, written meanwhile, is undone', async (t) => {
  const srv = await server(t);
  const data = sample(5_000);
  const digest = sha256(data);
  // A file where the blob's directory goes: the blob's rename fails (ENOTDIR), while its
  // record, written at the same time, lands.
  const blocker = path.join(srv.dir, 'blobs', digest.slice(0, 2));
  await writeFile(blocker, 'in the way');
  const failed = await putFile(srv.url, '/blocked', data, V);
  assert.ok(failed.status >= 500, `status ${failed.status}`);
  assert.equal(await srv.store.metadata.db.getBlob(digest), undefined, 'no record left');
  assert.equal((await getFile(srv.url, '/blocked')).status, 404);
  assert.equal(await lstat(linkFile(srv, '/blocked')).catch(() => null), null);
  assert.deepEqual(await tmpEntries(srv), []);

  await rm(blocker);
  assert.deepEqual(await blobSet(srv), []);
  assert.equal((await putFile(srv.url, '/blocked', data, V)).status, 200);
  assert.equal((await srv.store.metadata.db.getBlob(digest))?.refs, 1);
  assert.ok((await getFile(srv.url, '/blocked')).body.equals(data));
  await assertClean(srv);
});
