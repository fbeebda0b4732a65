import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, constants, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, open, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { Agent, createServer, get, type RequestListener, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { createLegacyApp, createLegacyListener } from '@filetracker/legacy-static';
import { httpRequest, startLegacy, type LegacyProcess } from './helpers/legacy-static.js';

// Issue 16: a race that served files from outside FT_ROOT, FIFOs that froze the server
// while /status said 200, and a primary that crashed on EPIPE sending to a dead worker.

/** Long enough for a loaded machine; a hang shows as this, not as a stuck test. */
const ANSWER_MS = 15_000;

interface Tree {
  dir: string;
  root: string;
  files: string;
  outside: string;
}

/** FT_ROOT with files/ in a temp dir, an `outside` directory beside it; removed after `t`. */
async function makeTree(t: TestContext): Promise<Tree> {
  const dir = await mkdtemp(join(tmpdir(), 'ft-legacy-hardening-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const root = join(dir, 'ft_root');
  const files = join(root, 'files');
  const outside = join(dir, 'outside');
  await mkdir(files, { recursive: true });
  await mkdir(outside);
  await writeFile(join(files, 'plain.txt'), 'plain\n');
  return { dir, root, files, outside };
}

async function serve(t: TestContext, listener: RequestListener): Promise<string> {
  const server: Server = createServer(listener);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function start(t: TestContext, args: string[]): Promise<LegacyProcess> {
  const proc = await startLegacy(['--port', '0', ...args]);
  t.after(() => proc.kill());
  return proc;
}

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 10_000) {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Swaps `target` between a hard link of `inside` and a symlink to `outside`, each by an
 * atomic rename, as fast as it can for `ms`; prints the number of swaps.
 */
const RACER = `
const fs = require('node:fs');
const [target, inside, outside, ms] = process.argv.slice(1);
const link = target + '.link', file = target + '.file';
const end = Date.now() + Number(ms);
let swaps = 0;
while (Date.now() < end) {
  fs.rmSync(link, { force: true });
  fs.symlinkSync(outside, link);
  fs.renameSync(link, target);
  fs.rmSync(file, { force: true });
  fs.linkSync(inside, file);
  fs.renameSync(file, target);
  swaps++;
}
process.stdout.write(String(swaps));
`;

describe('ft-legacy-static never serves a file from outside FT_ROOT through a race', () => {
  test('GETs of a file swapped with a symlink to an outside file in a loop never get the outside bytes, at every size', async (t) => {
    const tree = await makeTree(t);
    const base = await serve(t, createLegacyListener({ root: tree.root }));
    // Served from memory (to 256 KiB), and from the disk in 64 KiB reads (to 1 MiB) and in
    // 1 MiB reads: koa-send's stream and sendFile before the fix.
    for (const size of [10 * 1024, 300 * 1024, 2 * 1024 * 1024]) {
      const inside = Buffer.alloc(size, 'i');
      const outside = Buffer.alloc(size, 'O');
      const backing = join(tree.files, `backing-${size}`);
      const secret = join(tree.outside, `secret-${size}`);
      await writeFile(backing, inside);
      await writeFile(secret, outside);
      // Same size and mtime: nothing but the bytes tells them apart.
      await utimes(backing, 1_500_000_000, 1_500_000_000);
      await utimes(secret, 1_500_000_000, 1_500_000_000);
      const target = join(tree.files, `race-${size}`);
      const racer = spawn(process.execPath, ['-e', RACER, target, backing, secret, '4000'], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      t.after(() => racer.kill('SIGKILL'));
      let swaps = '';
      racer.stdout.on('data', (d: Buffer) => (swaps += d.toString()));
      const racerDone = once(racer, 'exit');
      let running = true;
      void racerDone.then(() => (running = false));

      const seen = { inside: 0, absent: 0, outside: 0, other: [] as string[] };
      let sent = 0;
      const client = async () => {
        while (running && sent < 3000) {
          sent++;
          const answer = await httpRequest(base, `/files/race-${size}`, {
            timeoutMs: ANSWER_MS,
          }).catch((err: Error) => ({ status: 0, body: Buffer.from(err.message) }));
          if (answer.status === 404) seen.absent++;
          else if (answer.status === 200 && answer.body.equals(inside)) seen.inside++;
          else if (answer.body.includes('OOOO')) seen.outside++;
          else seen.other.push(`${answer.status} ${answer.body.length} bytes`);
        }
      };
      await Promise.all([client(), client(), client(), client()]);
      await racerDone;
      const label = `${size} bytes: ${JSON.stringify({ ...seen, swaps })}`;
      t.diagnostic(label);
      assert.equal(seen.outside, 0, label);
      assert.deepEqual(seen.other, [], label);
      assert.ok(seen.inside > 0 && Number(swaps) > 0, label);
    }
  });
});

describe('ft-legacy-static serves regular files only, and never hangs on others', () => {
  test('GETs of a FIFO and a socket are 404 at once, and files, /healthz and /status go on', async (t) => {
    const tree = await makeTree(t);
    await mkdir(join(tree.files, 'misc'));
    execFileSync('mkfifo', [join(tree.files, 'misc', 'a.fifo')]);
    const socketServer = createNetServer();
    socketServer.listen(join(tree.files, 'misc', 'a.sock'));
    await once(socketServer, 'listening');
    t.after(() => socketServer.close());
    const big = Buffer.alloc(1024 * 1024, 'b');
    await writeFile(join(tree.files, 'big.bin'), big);
    // One process: its thread pool is the one the FIFO opens held.
    const proc = await start(t, ['--root', tree.root, '--workers', '1']);
    const ask = (path: string, method = 'GET') =>
      httpRequest(proc.url, path, { method, timeoutMs: ANSWER_MS });
    const fifo = await Promise.all(
      Array.from({ length: 5 }, (_, i) => ask('/files/misc/a.fifo', i % 2 ? 'HEAD' : 'GET')),
    );
    assert.deepEqual(
      fifo.map((a) => a.status),
      [404, 404, 404, 404, 404],
    );
    assert.equal((await ask('/files/misc/a.sock')).status, 404);
    assert.equal((await ask('/files/misc')).status, 404);
    // Not in memory yet: resolved and read through the thread pool.
    const answer = await ask('/files/big.bin');
    assert.equal(answer.status, 200);
    assert.ok(answer.body.equals(big));
    assert.equal((await ask('/healthz')).status, 200);
    assert.equal((await ask('/status')).status, 200);
  });
});

describe('/status says when files cannot be read', () => {
  for (const [label, make] of [
    ['createLegacyApp', (root: string) => createLegacyApp({ root }).callback()],
    ['createLegacyListener', (root: string) => createLegacyListener({ root })],
  ] as const) {
    test(`${label}: /status is 503 with the reason while FT_ROOT/files is gone, 200 once back`, async (t) => {
      const tree = await makeTree(t);
      const base = await serve(t, make(tree.root));
      assert.equal((await httpRequest(base, '/status')).status, 200);
      await rename(tree.files, tree.files + '.away');
      const down = await httpRequest(base, '/status', { timeoutMs: ANSWER_MS });
      assert.equal(down.status, 503);
      assert.ok(down.headers['x-exception']);
      const body = JSON.parse(down.body.toString()) as { requests: number; problem?: string };
      assert.equal(typeof body.requests, 'number');
      assert.equal(typeof body.problem, 'string');
      await rename(tree.files + '.away', tree.files);
      assert.equal((await httpRequest(base, '/status')).status, 200);
    });
  }

  test('--workers 2: /status summed over the workers is 503 while FT_ROOT/files is gone', async (t) => {
    const tree = await makeTree(t);
    const proc = await start(t, ['--root', tree.root, '--workers', '2']);
    assert.equal((await httpRequest(proc.url, '/status')).status, 200);
    await rename(tree.files, tree.files + '.away');
    const down = await httpRequest(proc.url, '/status', { timeoutMs: ANSWER_MS });
    assert.equal(down.status, 503);
    assert.equal(
      typeof (JSON.parse(down.body.toString()) as { problem?: string }).problem,
      'string',
    );
    await rename(tree.files + '.away', tree.files);
    assert.equal((await httpRequest(proc.url, '/status')).status, 200);
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0);
  });

  test('while every thread of the pool is stuck, /status and /healthz answer 503 in bounded time', async (t) => {
    const tree = await makeTree(t);
    const base = await serve(t, createLegacyListener({ root: tree.root }));
    assert.equal((await httpRequest(base, '/status')).status, 200);
    // Each open of a FIFO without a writer holds one thread of this process's pool, the
    // one the server in this process reads through, as a hung disk would.
    const threads = Number(process.env.UV_THREADPOOL_SIZE) || 4;
    const fifos = Array.from({ length: threads }, (_, i) => join(tree.dir, `stuck-${i}.fifo`));
    for (const fifo of fifos) execFileSync('mkfifo', [fifo]);
    const stuck = fifos.map((fifo) => open(fifo, 'r'));
    const release = async () => {
      // A writer lets each blocked open return.
      for (const fifo of fifos)
        closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
      for (const handle of await Promise.all(stuck)) await handle.close();
    };
    // Not in t.after: hooks run in order, and removing the temp dir needs the pool.
    try {
      // Let the opens take the threads before the probe asks for one.
      await new Promise((resolve) => setTimeout(resolve, 200));
      const status = await httpRequest(base, '/status', { timeoutMs: ANSWER_MS });
      assert.equal(status.status, 503);
      assert.equal(status.headers['x-error-code'], 'BACKEND_UNAVAILABLE');
      assert.match(String(status.headers['content-type']), /^application\/json/);
      assert.match(
        String((JSON.parse(status.body.toString()) as { problem?: string }).problem),
        /not finished/,
      );
      const health = await httpRequest(base, '/healthz', { timeoutMs: ANSWER_MS });
      assert.equal(health.status, 503);
      assert.equal(health.headers['x-error-code'], 'BACKEND_UNAVAILABLE');
    } finally {
      await release();
    }
    await waitFor(async () => (await httpRequest(base, '/status')).status === 200);
    assert.equal((await httpRequest(base, '/healthz')).status, 200);
  });
});

describe('the primary of --workers N survives sending to a worker that is gone', () => {
  test('a /status asked while another worker dies unnoticed is answered, and the primary stays', async (t) => {
    const tree = await makeTree(t);
    // Two rounds: each sets up the same order of events, the second after a restart.
    for (let round = 0; round < 2; round++) {
      const proc = await start(t, ['--root', tree.root, '--workers', '2']);
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      t.after(() => agent.destroy());
      const onKept = (path: string) =>
        new Promise<number>((resolve, reject) => {
          const req = get(`${proc.url}${path}`, { agent }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          });
          req.on('error', reject);
          req.setTimeout(ANSWER_MS, () => req.destroy(new Error(`no answer to ${path}`)));
        });
      // A kept-alive connection stays with the worker that took it: find out which one.
      assert.equal(await onKept('/files/plain.txt'), 200);
      await waitFor(() => proc.lines.some((l) => l.msg === 'request'));
      const holder = proc.lines.find((l) => l.msg === 'request')!.pid as number;
      const other = proc.workers.find((pid) => pid !== holder)!;
      // With the primary stopped, the holder's `status?` waits in its channel; then the
      // other worker dies. Resumed, the primary reads the `status?` before the end of the
      // dead worker's channel and asks that worker too: EPIPE, which crashed it.
      proc.child.kill('SIGSTOP');
      t.after(() => proc.child.kill('SIGCONT'));
      const status = onKept('/status');
      await new Promise((resolve) => setTimeout(resolve, 300));
      process.kill(other, 'SIGKILL');
      await new Promise((resolve) => setTimeout(resolve, 300));
      proc.child.kill('SIGCONT');
      assert.equal(await status, 200);
      await waitFor(() => proc.lines.some((l) => l.msg === 'worker died; starting another'));
      assert.equal(proc.child.exitCode, null);
      assert.equal(await onKept('/files/plain.txt'), 200);
      agent.destroy();
      proc.child.kill('SIGTERM');
      assert.equal(await proc.exited, 0);
      assert.equal(proc.stderr(), '');
    }
  });

  test('SIGTERM while a replacement worker is still starting stops it too, and exits 0', async (t) => {
    const tree = await makeTree(t);
    const proc = await start(t, ['--root', tree.root, '--workers', '2']);
    const pid = proc.child.pid!;
    const childrenFile = `/proc/${pid}/task/${pid}/children`;
    if (!existsSync(childrenFile)) {
      t.skip('no /proc/PID/task/PID/children to see the new worker by');
      return;
    }
    const children = () =>
      readFileSync(childrenFile, 'utf8').split(' ').filter(Boolean).map(Number);
    process.kill(proc.workers[0]!, 'SIGKILL');
    // The replacement is forked a second later; signal as soon as its process exists,
    // while Node is still loading it, long before it listens.
    let fresh: number | undefined;
    const end = Date.now() + ANSWER_MS;
    while (fresh === undefined && Date.now() < end) {
      fresh = children().find((p) => !proc.workers.includes(p));
      if (fresh === undefined) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.ok(fresh !== undefined, 'no replacement worker started');
    proc.workers.push(fresh); // for proc.kill() in t.after
    proc.child.kill('SIGTERM');
    const code = await Promise.race([
      proc.exited,
      new Promise((resolve) => setTimeout(() => resolve('still running'), ANSWER_MS)),
    ]);
    assert.equal(code, 0);
  });
});
