import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile, rm } from 'node:fs/promises';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { test, type TestContext } from 'node:test';
import { FiletrackerClient, nowVersion } from '@filetracker/shared-protocol';
import type { MigrationSummary } from '@filetracker/migrate';
import { runMigrate } from './helpers/migrate-tree.js';
import { startProcess, startServer, tempDir, type TestServer } from './helpers/server.js';

/** A file put on the source server: how it is sent decides how the server got it. */
interface SourceFile {
  name: string;
  content: Buffer;
  version: number;
  /** Sent gzip (with hints, as the Python client does) or plain (stored gzipped by the server). */
  compress: boolean;
}

const FUTURE = nowVersion() + 30 * 86_400;

function sourceFiles(): SourceFile[] {
  const big = Buffer.alloc(3 * 1024 * 1024 + 17);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7919) % 251;
  return [
    { name: '/top.txt', content: Buffer.from('top\n'), version: 1_500_000_000, compress: true },
    {
      name: '/problems/12/tests/in/1a.in',
      content: Buffer.from('1 2 3\n'.repeat(200)),
      version: 1_600_000_000,
      compress: true,
    },
    {
      name: '/problems/12/tests/out/1a.out',
      content: Buffer.from('6\n'),
      version: 1_600_000_001,
      compress: false,
    },
    {
      name: '/dir one/zażółć #1?.txt',
      content: Buffer.from('non-ascii name\n'),
      version: 1_700_000_000,
      compress: false,
    },
    { name: '/empty', content: Buffer.alloc(0), version: 1_650_000_000, compress: true },
    { name: '/big/blob.bin', content: big, version: 1_680_000_000, compress: true },
    // A client with a fast clock: a default /list would hide it.
    { name: '/future.txt', content: Buffer.from('later\n'), version: FUTURE, compress: true },
  ];
}

type Report = MigrationSummary;

function clientFor(t: TestContext, url: string): FiletrackerClient {
  const client = new FiletrackerClient(url);
  t.after(() => client.close());
  return client;
}

async function populate(url: string, files: readonly SourceFile[]): Promise<void> {
  const client = new FiletrackerClient(url);
  try {
    for (const f of files) {
      await client.put(f.name, f.content, { version: f.version, compress: f.compress });
    }
  } finally {
    client.close();
  }
}

/** The body a server answers with gzip accepted, as stored. */
async function storedBytes(client: FiletrackerClient, name: string): Promise<Buffer> {
  const stored = await client.getStored(name);
  const chunks: Buffer[] = [];
  for await (const chunk of stored.data) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function assertCopied(
  target: FiletrackerClient,
  source: FiletrackerClient,
  files: readonly SourceFile[],
): Promise<void> {
  const listed: string[] = [];
  for await (const name of target.listNames()) listed.push(name);
  assert.deepEqual(listed.sort(), files.map((f) => f.name).sort());
  for (const f of files) {
    const { data, version } = await target.getBuffer(f.name);
    assert.equal(version, f.version, `version of ${f.name}`);
    assert.ok(data.equals(f.content), `content of ${f.name}`);
    // The stored gzip passed through: not re-compressed by the migrator.
    assert.ok(
      (await storedBytes(target, f.name)).equals(await storedBytes(source, f.name)),
      `stored gzip of ${f.name}`,
    );
  }
}

async function readReport(file: string): Promise<Report> {
  return JSON.parse(await readFile(file, 'utf8')) as Report;
}

async function serverProcess(t: TestContext, dir: string) {
  const server = await startProcess('packages/server/bin/ft-server.mjs', ['-d', dir, '-p', '0']);
  t.after(() => server.stop());
  return server;
}

async function inProcessServer(t: TestContext): Promise<TestServer> {
  const server = await startServer();
  t.after(() => server.close());
  return server;
}

/**
 * A reverse proxy that serves `upstream` under `/ft` only, stripping the prefix as the
 * deployment's front end does; any other path is 404.
 */
async function prefixProxy(t: TestContext, upstream: string): Promise<string> {
  const target = new URL(upstream);
  const seen: string[] = [];
  const server: Server = createServer((req, res) => {
    const raw = req.url ?? '/';
    seen.push(raw);
    if (!raw.startsWith('/ft/')) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not under /ft\n');
      return;
    }
    const forward = request({
      host: target.hostname,
      port: target.port,
      method: req.method,
      path: raw.slice('/ft'.length),
      headers: req.headers,
    });
    void Promise.all([once(forward, 'response'), pipeline(req, forward)])
      .then(async ([[response]]) => {
        const answer = response as IncomingMessage;
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        await pipeline(answer, res);
      })
      .catch(() => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    assert.ok(
      seen.length > 0 && seen.every((p) => p.startsWith('/ft/')),
      'every request under /ft',
    );
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/ft`;
}

test('--from copies every file of a running ft-server into another: each name byte-exact, with its version and its stored gzip; a rerun copies nothing; a newer version on the target wins', async (t) => {
  const dirA = await tempDir('ft-from-a-');
  const dirB = await tempDir('ft-from-b-');
  const work = await tempDir('ft-from-work-');
  t.after(() =>
    Promise.all([dirA, dirB, work].map((d) => rm(d, { recursive: true, force: true }))),
  );
  const a = await serverProcess(t, dirA);
  const b = await serverProcess(t, dirB);
  const files = sourceFiles();
  await populate(a.url, files);
  const source = clientFor(t, a.url);
  const target = clientFor(t, b.url);

  const report = path.join(work, 'report.json');
  const state = path.join(work, 'state');
  const args = ['--from', a.url, b.url, '--state', state, '--report', report];
  const run = await runMigrate(args);
  assert.equal(run.code, 0, run.stderr);
  await assertCopied(target, source, files);
  const first = await readReport(report);
  assert.equal(first.uploaded.files, files.length);
  assert.equal(
    first.uploaded.bytes,
    files.reduce((sum, f) => sum + f.content.length, 0),
  );
  assert.equal(first.failed.files, 0);

  // Rerun: nothing copied.
  const again = await runMigrate(args);
  assert.equal(again.code, 0, again.stderr);
  const second = await readReport(report);
  assert.equal(second.uploaded.files, 0);
  assert.equal(second.skipped.byReason['already-done'], files.length);

  // Meanwhile: a client writes a newer version on the target, the source changes (a newer
  // version older than the target's, a new name). The target's newer version wins.
  const changed = files[1]!;
  await target.put(changed.name, Buffer.from('newer on B\n'), { version: 1_800_000_000 });
  await source.put(changed.name, Buffer.from('newer on A\n'), { version: 1_750_000_000 });
  await source.put('/added/later.txt', Buffer.from('added\n'), { version: 1_760_000_000 });
  const third = await runMigrate(args);
  assert.equal(third.code, 0, third.stderr);
  const after = await target.getBuffer(changed.name);
  assert.equal(after.version, 1_800_000_000);
  assert.equal(after.data.toString(), 'newer on B\n');
  const added = await target.getBuffer('/added/later.txt');
  assert.equal(added.version, 1_760_000_000);
  assert.equal(added.data.toString(), 'added\n');
  const thirdReport = await readReport(report);
  assert.equal(thirdReport.uploaded.files, 1);
  assert.equal(thirdReport.skipped.byReason['server-newer'], 1);

  // --verify compares every source file with the target: the one B overwrote differs.
  const verify = await runMigrate(['--from', a.url, b.url, '--verify=digest', '--report', report]);
  assert.equal(verify.code, 1, verify.stderr);
  const verified = await readReport(report);
  assert.deepEqual(
    verified.differences.map((d) => [d.name, d.kind]),
    [[changed.name, 'version']],
  );
  assert.equal(verified.verified.files, files.length);
});

test('--from with a base URL under a path prefix (a proxy serving the server at /ft) copies everything; --dry-run first copies nothing', async (t) => {
  const files = sourceFiles();
  const a = await inProcessServer(t);
  await populate(a.url, files);
  const proxied = await prefixProxy(t, a.url);
  const b = await inProcessServer(t);
  const work = await tempDir('ft-from-work-');
  t.after(() => rm(work, { recursive: true, force: true }));

  const dry = await runMigrate(['--from', proxied, b.url, '--dry-run', '--no-state'], {
    cwd: work,
  });
  assert.equal(dry.code, 0, dry.stderr);
  const target = clientFor(t, b.url);
  const none: string[] = [];
  for await (const name of target.listNames()) none.push(name);
  assert.deepEqual(none, []);

  const run = await runMigrate(['--from', proxied, b.url], { cwd: work });
  assert.equal(run.code, 0, run.stderr);
  await assertCopied(target, clientFor(t, a.url), files);
});

test("--from-store copies every file of a stopped ft-server's store directory, each with its version", async (t) => {
  const dirA = await tempDir('ft-from-store-');
  t.after(() => rm(dirA, { recursive: true, force: true }));
  const files = sourceFiles();
  const a = await serverProcess(t, dirA);
  await populate(a.url, files);
  assert.equal(await a.stop(), 0);
  const b = await inProcessServer(t);
  const work = await tempDir('ft-from-work-');
  t.after(() => rm(work, { recursive: true, force: true }));

  const report = path.join(work, 'report.json');
  const run = await runMigrate(['--from-store', dirA, b.url, '--report', report], { cwd: work });
  assert.equal(run.code, 0, run.stderr);
  // The source server again, read-only here, to compare stored bytes.
  const again = await serverProcess(t, dirA);
  await assertCopied(clientFor(t, b.url), clientFor(t, again.url), files);
  const summary = await readReport(report);
  assert.equal(summary.uploaded.files, files.length);
  const rerun = await runMigrate(['--from-store', dirA, b.url, '--report', report], { cwd: work });
  assert.equal(rerun.code, 0, rerun.stderr);
  assert.equal((await readReport(report)).uploaded.files, 0);
});

test('a source that cannot work says so on one line and exits 1; --from with FILES too exits 2', async (t) => {
  const b = await inProcessServer(t);
  const work = await tempDir('ft-from-work-');
  t.after(() => rm(work, { recursive: true, force: true }));

  const unreachable = await runMigrate(['--from', 'http://127.0.0.1:1', b.url], { cwd: work });
  assert.equal(unreachable.code, 1);
  assert.match(
    unreachable.stderr,
    /^ft-migrate: Cannot reach the filetracker server at http:\/\/127\.0\.0\.1:1.*\n$/,
  );

  // An HTTP server that is not a filetracker (404 everywhere).
  const other = createServer((_req, res) => {
    res.writeHead(404);
    res.end();
  });
  other.listen(0, '127.0.0.1');
  await once(other, 'listening');
  t.after(() => new Promise<void>((resolve) => other.close(() => resolve())));
  const otherUrl = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
  const notFt = await runMigrate(['--from', otherUrl, b.url], { cwd: work });
  assert.equal(notFt.code, 1);
  assert.match(notFt.stderr, /^ft-migrate: .* is not a filetracker 2\.x server.*\n$/);

  const notStore = await runMigrate(['--from-store', work, b.url], { cwd: work });
  assert.equal(notStore.code, 1);
  assert.match(
    notStore.stderr,
    /^ft-migrate: --from-store .* is not a filetracker 2\.x store.*\n$/,
  );

  // The same store as source and target.
  const same = await runMigrate(['--from', b.url, b.url], { cwd: work });
  assert.equal(same.code, 1);
  assert.match(same.stderr, /^ft-migrate: .*same store.*\n$/);

  assert.equal((await runMigrate(['--from', b.url, './files', b.url], { cwd: work })).code, 2);
  assert.equal((await runMigrate(['--from', b.url, '--root', '.', b.url], { cwd: work })).code, 2);
});
