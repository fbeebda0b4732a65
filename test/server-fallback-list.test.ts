import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { encodeName, formatHttpDate } from '@filetracker/shared-protocol';
import { httpRequest, startLegacy, type LegacyProcess } from './helpers/legacy-static.js';
import { writeTree } from './helpers/migrate-tree.js';
import { startProcess, startServer, tempDir, type TestServer } from './helpers/server.js';

// Issue 17, item 5: in migration mode /list merges the fallback's listing into ours.

const LEGACY_MTIME = 1_500_000_000;
const LATER = LEGACY_MTIME + 1000;

/** A 1.x tree: ft_root/files/{name} with the given mtime. */
function legacyTree(root: string, files: Record<string, number>): Promise<void> {
  return writeTree(
    path.join(root, 'files'),
    Object.entries(files).map(([name, mtime]) => ({
      name: name.slice(1),
      content: Buffer.from(`legacy ${name}`),
      mtime,
    })),
  );
}

function q(version: number): string {
  return '?last_modified=' + encodeURIComponent(formatHttpDate(version));
}

async function put(base: string, name: string, version: number): Promise<number> {
  const res = await fetch(base + '/files' + encodeName(name) + q(version), {
    method: 'PUT',
    body: `new ${name}`,
  });
  await res.arrayBuffer();
  return res.status;
}

async function del(base: string, name: string, version: number): Promise<number> {
  const res = await fetch(base + '/files' + encodeName(name) + q(version), { method: 'DELETE' });
  await res.arrayBuffer();
  return res.status;
}

/** The names of a listing, in the order sent, each line checked to end in `\n`. */
async function list(base: string, target: string): Promise<{ status: number; names: string[] }> {
  const res = await httpRequest(base, target, { timeoutMs: 10_000 });
  const text = res.body.toString('utf8');
  if (res.status === 200) assert.ok(text === '' || text.endsWith('\n'), text);
  return {
    status: res.status,
    names: res.status === 200 ? text.split('\n').filter(Boolean) : [],
  };
}

describe('ft-server /list in migration mode, in front of ft-legacy-static', () => {
  let root: string;
  let legacy: LegacyProcess;
  let server: TestServer;

  before(async () => {
    root = await tempDir('ft-legacy-');
    await legacyTree(root, {
      '/misc/old-a.txt': LEGACY_MTIME,
      '/misc/sub/old-b.txt': LEGACY_MTIME,
      '/misc/sp ace #?.txt': LEGACY_MTIME,
      '/misc/deleted.txt': LEGACY_MTIME,
      '/misc/rewritten.txt': LEGACY_MTIME,
      '/misc/rewritten-later.txt': LEGACY_MTIME,
      '/misc/legacy-later.txt': LATER,
      '/only-legacy/x.txt': LEGACY_MTIME,
    });
    legacy = await startLegacy(['--root', root, '--port', '0']);
    server = await startServer({ fallbackUrl: legacy.url });
    assert.equal(await put(server.url, '/misc/new.txt', LEGACY_MTIME + 5), 200);
    assert.equal(await put(server.url, '/misc/rewritten.txt', LEGACY_MTIME + 5), 200);
    assert.equal(await put(server.url, '/misc/rewritten-later.txt', LATER + 5), 200);
    assert.equal(await put(server.url, '/only-new/y.txt', LEGACY_MTIME), 200);
    assert.equal(await del(server.url, '/misc/deleted.txt', LEGACY_MTIME + 5), 200);
  });

  after(async () => {
    await server?.close();
    await legacy?.kill();
    await rm(root, { recursive: true, force: true });
  });

  test('lists the old tree beside the new names, each once, minus names deleted during the migration', async () => {
    const { status, names } = await list(server.url, '/list/misc' + q(LATER + 10));
    assert.equal(status, 200);
    assert.deepEqual([...names].sort(), [
      'legacy-later.txt',
      'new.txt',
      'old-a.txt',
      'rewritten-later.txt',
      'rewritten.txt',
      'sp ace #?.txt',
      'sub/old-b.txt',
    ]);
    // The whole store, and a subdirectory only the old tree has.
    const all = await list(server.url, '/list/' + q(LATER + 10));
    assert.ok(all.names.includes('only-legacy/x.txt'));
    assert.ok(all.names.includes('only-new/y.txt'));
    assert.ok(all.names.includes('misc/sub/old-b.txt'));
    assert.ok(!all.names.includes('misc/deleted.txt'));
    assert.equal(new Set(all.names).size, all.names.length, 'no name twice');
    assert.deepEqual((await list(server.url, '/list/misc/sub' + q(LATER))).names, ['old-b.txt']);
  });

  test('the cutoff holds on both sides, and our version wins on a name both have', async () => {
    const { names } = await list(server.url, '/list/misc' + q(LEGACY_MTIME + 5));
    // legacy-later.txt (the fallback's, after the cutoff) is hidden; rewritten-later.txt is
    // the fallback's at LEGACY_MTIME but ours after the cutoff: ours wins, hidden too.
    assert.deepEqual([...names].sort(), [
      'new.txt',
      'old-a.txt',
      'rewritten.txt',
      'sp ace #?.txt',
      'sub/old-b.txt',
    ]);
    assert.deepEqual([...(await list(server.url, '/list/misc' + q(LEGACY_MTIME))).names].sort(), [
      'old-a.txt',
      'sp ace #?.txt',
      'sub/old-b.txt',
    ]);
  });

  test('a directory only one side has is listed; one neither has is 400 NOT_A_DIRECTORY', async () => {
    assert.deepEqual((await list(server.url, '/list/only-legacy')).names, ['x.txt']);
    assert.deepEqual((await list(server.url, '/list/only-new')).names, ['y.txt']);
    const res = await httpRequest(server.url, '/list/nowhere');
    assert.equal(res.status, 400);
    assert.equal(res.headers['x-error-code'], 'NOT_A_DIRECTORY');
    const head = await httpRequest(server.url, '/list/only-legacy', { method: 'HEAD' });
    assert.equal(head.status, 200);
  });

  test('a listing of more old names than one batch has each exactly once', async () => {
    const files: Record<string, number> = {};
    for (let i = 0; i < 300; i++) files[`/bulk/d${i % 5}/f${i}`] = LEGACY_MTIME;
    await legacyTree(root, files);
    for (let i = 0; i < 300; i += 3) {
      assert.equal(await put(server.url, `/bulk/d${i % 5}/f${i}`, LEGACY_MTIME), 200);
    }
    const { names } = await list(server.url, '/list/bulk');
    assert.equal(names.length, 300);
    assert.deepEqual(
      [...names].sort(),
      Object.keys(files)
        .map((n) => n.slice('/bulk/'.length))
        .sort(),
    );
  });
});

/** A fallback answering every request with `handler`; its sockets are destroyed on close. */
async function fakeFallback(
  handler: (
    req: import('node:http').IncomingMessage,
    res: import('node:http').ServerResponse,
  ) => void,
): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer(handler);
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('ft-server /list in migration mode when the fallback cannot list', () => {
  test('a fallback that is down: 502 FALLBACK_UNREACHABLE, not ours alone', async (t) => {
    const gone = await fakeFallback(() => {});
    const url = gone.url;
    await gone.close();
    const server = await startServer({ fallbackUrl: url });
    t.after(() => server.close());
    assert.equal(await put(server.url, '/misc/new.txt', LEGACY_MTIME), 200);
    const res = await httpRequest(server.url, '/list/misc');
    assert.equal(res.status, 502);
    assert.equal(res.headers['x-error-code'], 'FALLBACK_UNREACHABLE');
    assert.ok(res.headers['x-exception']);
  });

  test('a fallback that hangs: 504 FALLBACK_TIMEOUT after the timeout, not a hang', async (t) => {
    const hung = await fakeFallback(() => {});
    t.after(() => hung.close());
    const server = await startServer({ fallbackUrl: hung.url, fallbackTimeoutMs: 300 });
    t.after(() => server.close());
    assert.equal(await put(server.url, '/misc/new.txt', LEGACY_MTIME), 200);
    const res = await httpRequest(server.url, '/list/misc', { timeoutMs: 5000 });
    assert.equal(res.status, 504);
    assert.equal(res.headers['x-error-code'], 'FALLBACK_TIMEOUT');
  });

  test('a fallback that stops mid-listing cuts the answer instead of ending it short', async (t) => {
    const stalls = await fakeFallback((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.write('old-a.txt\nold-b.txt\n'); // and nothing more, never the end
    });
    t.after(() => stalls.close());
    const server = await startServer({ fallbackUrl: stalls.url, fallbackTimeoutMs: 300 });
    t.after(() => server.close());
    assert.equal(await put(server.url, '/misc/new.txt', LEGACY_MTIME), 200);
    await assert.rejects(httpRequest(server.url, '/list/misc', { timeoutMs: 5000 }));
  });

  test('a static server without /list (lighttpd): 502 FALLBACK_CANNOT_LIST, warned once in the log', async (t) => {
    const lighttpd = await fakeFallback((_req, res) => {
      res.writeHead(404, { 'Content-Type': 'text/html' });
      res.end('<h1>404 Not Found</h1>');
    });
    t.after(() => lighttpd.close());
    const dir = await tempDir('ft-store-');
    t.after(() => rm(dir, { recursive: true, force: true }));
    const proc = await startProcess('packages/server/bin/ft-server.mjs', [
      '-d',
      dir,
      '-p',
      '0',
      '--fallback-url',
      lighttpd.url,
    ]);
    t.after(() => proc.stop());
    assert.equal(await put(proc.url, '/misc/new.txt', LEGACY_MTIME), 200);
    for (let i = 0; i < 3; i++) {
      const res = await httpRequest(proc.url, '/list/misc');
      assert.equal(res.status, 502);
      assert.equal(res.headers['x-error-code'], 'FALLBACK_CANNOT_LIST');
      // The reason names the fix: a static server cannot list, ft-legacy-static can.
      assert.match(String(res.headers['x-exception']), /lighttpd cannot; .*ft-legacy-static/);
    }
    // Every failed listing is counted, though warned of once.
    const metrics = await httpRequest(proc.url, '/metrics');
    assert.match(
      metrics.body.toString(),
      /^ft_fallback_request_errors_total\{code="FALLBACK_CANNOT_LIST"\} 3$/m,
    );
    // One warning for the cause (each failed request still has its own request line).
    const warnings = () =>
      proc.lines.filter(
        (l) => l.includes('cannot merge the fallback') && l.includes('FALLBACK_CANNOT_LIST'),
      );
    // The log is written asynchronously: wait for the request lines before counting.
    for (let waited = 0; warnings().length === 0 && waited < 5000; waited += 50) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(warnings().length, 1, proc.lines.join('\n'));
  });

  test('names of the fallback that no client could ask for ("..", empty components) are dropped', async (t) => {
    const odd = await fakeFallback((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('../../escape.txt\nok.txt\na//b.txt\nsub/./fine.txt\n');
    });
    t.after(() => odd.close());
    const server = await startServer({ fallbackUrl: odd.url });
    t.after(() => server.close());
    assert.equal(await put(server.url, '/misc/new.txt', LEGACY_MTIME), 200);
    const { status, names } = await list(server.url, '/list/misc');
    assert.equal(status, 200);
    assert.deepEqual([...names].sort(), ['new.txt', 'ok.txt', 'sub/fine.txt']);
  });

  test('a fallback that lacks the directory leaves ours alone, without a warning', async (t) => {
    const empty = await fakeFallback((_req, res) => {
      res.writeHead(400, { 'X-Error-Code': 'NOT_A_DIRECTORY' });
      res.end("Path doesn't exist or is not a directory\n");
    });
    t.after(() => empty.close());
    const server = await startServer({ fallbackUrl: empty.url });
    t.after(() => server.close());
    assert.equal(await put(server.url, '/misc/new.txt', LEGACY_MTIME), 200);
    assert.deepEqual((await list(server.url, '/list/misc')).names, ['new.txt']);
  });
});
