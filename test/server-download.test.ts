import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { connect } from 'node:net';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { formatHttpDate } from '@filetracker/shared-protocol';
import { describeEachBackend, type Backend } from './helpers/backends.js';
import { processStore, serverProcess } from './helpers/fallback.js';
import { startLegacy } from './helpers/legacy-static.js';
import { tempDir } from './helpers/server.js';
import { httpRequest } from './helpers/server-http.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function openFds(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length;
}

/** GETs `path` on a raw socket, takes `bytes` of the answer, then hangs up. */
async function getThenHangUp(url: string, path: string, bytes: number): Promise<void> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  await once(socket, 'connect');
  socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n`);
  let got = 0;
  for await (const chunk of socket) {
    got += (chunk as Buffer).length;
    if (got >= bytes) break; // leaving the loop destroys the socket
  }
  socket.destroy();
}

// Every download test on every backend (helpers/backends.ts): blobs read from files, or
// ranged GETs from the object store.
describeEachBackend('ft-server downloads', downloadSuite);

function downloadSuite(backend: Backend): void {
  test('large downloads arrive whole, and clients that hang up mid-way leave no blob open', async (t) => {
    const server = await serverProcess(t, await processStore(t, backend), ['-l', '127.0.0.1']);
    // Incompressible, so the stored gzip is as large as the content: several 1 MiB reads.
    const content = randomBytes(12 * 1024 * 1024 + 12345);
    const version = encodeURIComponent(formatHttpDate(1_700_000_000));
    const put = await fetch(`${server.url}/files/big/blob.bin?last_modified=${version}`, {
      method: 'PUT',
      body: content,
    });
    assert.equal(put.status, 200, await put.text());

    const gz = await httpRequest(server.url, '/files/big/blob.bin', {
      headers: { 'accept-encoding': 'gzip' },
    });
    assert.equal(gz.headers['content-encoding'], 'gzip');
    const stored = gz.body;
    assert.equal(stored.length, Number(gz.headers['content-length']));
    assert.equal(sha(gunzipSync(stored)), sha(content));
    const plain = await httpRequest(server.url, '/files/big/blob.bin', {
      headers: { 'accept-encoding': 'identity' },
    });
    assert.equal(plain.headers['content-encoding'], undefined);
    assert.equal(sha(plain.body), sha(content));

    const pid = server.child.pid!;
    const baseline = await openFds(pid);
    for (let i = 0; i < 20; i++) {
      await getThenHangUp(server.url, '/files/big/blob.bin', 256 * 1024 + i * 100_000);
    }
    // Each download held the blob open; all of them are closed once the server notices
    // (a little slack: the database may open a file of its own meanwhile).
    const deadline = Date.now() + 10_000;
    while ((await openFds(pid)) > baseline + 3 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok((await openFds(pid)) <= baseline + 3, `fds: ${await openFds(pid)} vs ${baseline}`);
    // A handle left to the garbage collector would be closed late, with this warning.
    assert.doesNotMatch(server.stderr(), /garbage collection/);
    // Clients hanging up are no fault of the server's: nothing above debug is logged.
    assert.deepEqual(
      server.lines.filter((l) => l.includes('response stream failed')),
      [],
    );
    // And it still serves.
    const again = await httpRequest(server.url, '/files/big/blob.bin', {
      headers: { 'accept-encoding': 'gzip' },
    });
    assert.deepEqual(again.body, stored);
  });

  test('a blob found shorter than its record cuts the download off instead of hanging it', async (t) => {
    const store = await processStore(t, backend);
    const server = await serverProcess(t, store);
    const content = randomBytes(3 * 1024 * 1024);
    const version = encodeURIComponent(formatHttpDate(1_700_000_000));
    const put = await fetch(`${server.url}/files/cut/blob.bin?last_modified=${version}`, {
      method: 'PUT',
      body: content,
    });
    assert.equal(put.status, 200);
    // Damage the blob behind the server's back (a bad disk, a careless operator).
    const full = await (await store.view()).damageBlob(sha(content));

    const { hostname, port } = new URL(server.url);
    const socket = connect(Number(port), hostname);
    await once(socket, 'connect');
    socket.write('GET /files/cut/blob.bin HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n');
    const started = Date.now();
    let received = 0;
    let raw = '';
    for await (const chunk of socket) {
      received += (chunk as Buffer).length;
      if (raw.length < 2000) raw += (chunk as Buffer).toString('latin1');
    }
    const promised = Number(/content-length: (\d+)/i.exec(raw)?.[1]);
    assert.equal(promised, full);
    assert.ok(received < promised, `got ${received} of ${promised} bytes`);
    assert.ok(Date.now() - started < 3_000, 'closed at once, not after the keep-alive timeout');
    // The reason is logged (once the answer is under way, only the connection can say it).
    await waitForLine(server.lines, 'file ended at');
  });

  /**
   * GETs `target` over a raw socket and reads the answer slowly (a pause after every
   * 64 KiB), so the server's writes queue up behind a full socket buffer. Returns the
   * Content-Length and the body bytes that came.
   */
  async function slowGet(
    url: string,
    target: string,
    headers: string,
  ): Promise<{ length: number; body: Buffer }> {
    const { hostname, port } = new URL(url);
    const socket = connect(Number(port), hostname);
    await once(socket, 'connect');
    socket.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${headers}\r\n`);
    const chunks: Buffer[] = [];
    let sinceRest = 0;
    for await (const chunk of socket) {
      chunks.push(chunk as Buffer);
      sinceRest += (chunk as Buffer).length;
      if (sinceRest >= 64 * 1024) {
        sinceRest = 0;
        await new Promise((r) => setTimeout(r, 2));
      }
    }
    const raw = Buffer.concat(chunks);
    const end = raw.indexOf('\r\n\r\n');
    const head = raw.subarray(0, end).toString('latin1');
    assert.match(head, /^HTTP\/1\.1 200 /);
    const length = Number(/content-length: (\d+)/i.exec(head)?.[1]);
    return { length, body: raw.subarray(end + 4) };
  }

  test('slow clients of concurrent large downloads get every byte right, from both servers', async (t) => {
    // Both servers send large files from a few buffers they reuse; a buffer reused before
    // the socket was done with it would show as wrong bytes here.
    const root = await tempDir('ft-root-');
    await mkdir(path.join(root, 'files', 'big'), { recursive: true });
    const server = await serverProcess(t, await processStore(t, backend));
    const legacy = await startLegacy(['--root', root, '--port', '0', '--workers', '1']);
    t.after(async () => {
      await legacy.kill();
      await rm(root, { recursive: true, force: true });
    });
    const version = encodeURIComponent(formatHttpDate(1_700_000_000));
    const contents = [0, 1, 2].map((i) => randomBytes(20 * 1024 * 1024 + i * 777_777));
    for (const [i, content] of contents.entries()) {
      await writeFile(path.join(root, 'files', 'big', `f${i}.bin`), content);
      const put = await fetch(`${server.url}/files/big/f${i}.bin?last_modified=${version}`, {
        method: 'PUT',
        body: content,
      });
      assert.equal(put.status, 200, await put.text());
    }
    const downloads = [0, 1, 2, 0, 1, 2].flatMap((i) => [
      slowGet(server.url, `/files/big/f${i}.bin`, 'Accept-Encoding: gzip\r\n').then((got) => {
        assert.equal(got.body.length, got.length, `ft-server f${i}: all of Content-Length`);
        assert.equal(sha(gunzipSync(got.body)), sha(contents[i]!), `ft-server f${i}: bytes`);
      }),
      slowGet(legacy.url, `/files/big/f${i}.bin`, '').then((got) => {
        assert.equal(got.length, contents[i]!.length);
        assert.equal(got.body.length, got.length, `legacy f${i}: all of Content-Length`);
        assert.equal(sha(got.body), sha(contents[i]!), `legacy f${i}: bytes`);
      }),
    ]);
    await Promise.all(downloads);
  });
}

async function waitForLine(lines: string[], text: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!lines.some((l) => l.includes(text))) {
    if (Date.now() > deadline) throw new Error(`no log line with ${text}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
