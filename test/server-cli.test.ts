import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import {
  access,
  mkdir,
  readFile,
  readdir,
  realpath,
  rename,
  rm,
  writeFile,
} from 'node:fs/promises';
import { connect, createServer, type AddressInfo } from 'node:net';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { HOLDER_FILE } from '@filetracker/server';
import { REPO_ROOT, startProcess, tempDir, type RunningProcess } from './helpers/server.js';
import { checkStore } from './helpers/store-check.js';
import {
  exitWithin,
  fileUrl,
  freePort,
  getFile,
  listeningUrl,
  putFile,
  sleep,
  slowRequest,
  spawnBin,
  waitFor,
  type Spawned,
} from './helpers/store-traffic.js';

const BIN = 'packages/server/bin/ft-server.mjs';
const V = 1_650_000_000;
const run = promisify(execFile);

/**
 * What one test starts: processes are killed (SIGKILL if still alive) and then dirs removed
 * when the test ends, whether it passed or not.
 */
function scope(t: TestContext) {
  const dirs: string[] = [];
  const procs: { kill(): Promise<unknown> }[] = [];
  t.after(async () => {
    await Promise.all(procs.map((p) => p.kill()));
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });
  return {
    async dir(): Promise<string> {
      const dir = await tempDir('ft-cli-');
      dirs.push(dir);
      return dir;
    },
    /** startProcess: waits for the listening line on stdout. */
    async serve(args: string[]): Promise<RunningProcess> {
      const p = await startProcess(BIN, args);
      procs.push({ kill: () => p.stop('SIGKILL') });
      return p;
    },
    spawn(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Spawned {
      const p = spawnBin(BIN, args, options);
      procs.push(p);
      return p;
    },
  };
}

/** Sends `signal` (if given) and resolves with the exit code; fails if it takes over 10 s. */
async function stopWithin(
  p: RunningProcess | Spawned,
  signal?: NodeJS.Signals,
): Promise<number | null> {
  const exited = 'lines' in p ? p.exited : p.exited.then((e) => e.code);
  if (signal) p.child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no exit within 10 s of ${signal ?? 'the end of its work'}`)),
          10_000,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const oneLine = (text: string): boolean => text.trim().length > 0 && !text.trim().includes('\n');

async function stillServes(url: string): Promise<void> {
  const res = await fetch(`${url}/version`);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), '{"protocol_versions": [2]}');
}

test('--help exits 0 and documents the Python flags -d, -l, -p, -L, --log-level, --log-config, -D, --workers, --fallback-url', async () => {
  const { stdout } = await run(process.execPath, [path.join(REPO_ROOT, BIN), '--help']);
  for (const flag of [
    '-d',
    '-l',
    '-p',
    '-L',
    '--log-level',
    '--log-config',
    '-D',
    '--workers',
    '--fallback-url',
  ]) {
    assert.match(stdout, new RegExp(`(^|[\\s,])${flag}[\\s,]`, 'm'), `${flag} missing from --help`);
  }
});

test('the ft-server and filetracker-server bins in node_modules/.bin run', async () => {
  for (const bin of ['ft-server', 'filetracker-server']) {
    const { stdout } = await run(path.join(REPO_ROOT, 'node_modules', '.bin', bin), ['--help']);
    assert.match(stdout, /--fallback-url/, bin);
  }
});

test('-d DIR -p 0 serves a store in DIR on a free port and SIGTERM stops it with 0', async (t) => {
  const s = scope(t);
  const dir = await s.dir();
  const p = await s.serve(['-d', dir, '-p', '0']);
  await stillServes(p.url);
  const listening = JSON.parse(p.lines.find((l) => l.includes('"listening"'))!) as { dir: string };
  assert.equal(listening.dir, await realpath(dir));
  assert.equal((await putFile(p.url, '/cli/a.txt', Buffer.from('hello'), V)).status, 200);
  const got = await getFile(p.url, '/cli/a.txt');
  assert.equal(got.body.toString(), 'hello');
  assert.equal(got.version, V);
  for (const sub of ['blobs', 'links', 'meta', 'ft-tmp']) await access(path.join(dir, sub));
  assert.equal(await stopWithin(p, 'SIGTERM'), 0);
  assert.deepEqual((await checkStore(dir)).problems, []);
});

test('--workers 4 without --db is accepted and ignored: one process serves, and a log line says why', async (t) => {
  const s = scope(t);
  const dir = await s.dir();
  const p = await s.serve(['-d', dir, '-p', '0', '--workers', '4']);
  await stillServes(p.url);
  const lines = p.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  const ignored = lines.find((l) => String(l.msg).startsWith('--workers is ignored without --db'));
  assert.ok(ignored, p.lines.join('\n'));
  assert.equal(String(ignored.workers), '4');
  const listening = lines.find((l) => l.msg === 'listening')!;
  assert.equal(listening.workers, undefined, 'no worker processes');
  assert.equal(listening.pid, p.child.pid, 'the process started serves');
  assert.equal(await stopWithin(p, 'SIGTERM'), 0);
});

test('FILETRACKER_DIR is the store when -d is absent, and -d wins over it', async (t) => {
  const s = scope(t);
  const dir = await s.dir();
  const other = await s.dir();
  const cwd = await s.dir();
  const env = { ...process.env, FILETRACKER_DIR: dir };
  const p = s.spawn(['-p', '0'], { env, cwd });
  const url = await listeningUrl(() => p.stdoutLines, p);
  assert.equal((await putFile(url, '/from-env', Buffer.from('x'), V)).status, 200);
  await access(path.join(dir, 'links', 'from-env'));
  assert.deepEqual(await readdir(cwd), [], 'nothing written to ./ft-data');
  assert.equal(await stopWithin(p, 'SIGTERM'), 0);

  const q = s.spawn(['-p', '0', '-d', other], { env, cwd });
  const url2 = await listeningUrl(() => q.stdoutLines, q);
  assert.equal((await putFile(url2, '/from-flag', Buffer.from('y'), V)).status, 200);
  await access(path.join(other, 'links', 'from-flag'));
  assert.equal(await stopWithin(q, 'SIGTERM'), 0);
});

test('unique prefixes of long options work as with optparse: --fall URL is --fallback-url', async (t) => {
  const s = scope(t);
  const dir = await s.dir();
  const p = await s.serve(['-d', dir, '-p', '0', '--fall', 'http://127.0.0.1:1']);
  const res = await fetch(fileUrl(p.url, '/missing'), { redirect: 'manual' });
  assert.equal(res.status, 307);
  assert.equal(res.headers.get('location'), 'http://127.0.0.1:1/files/missing');
  assert.equal(await stopWithin(p, 'SIGTERM'), 0);
});

test('unique prefixes of long options work as with optparse: --log-l, --listen, --wor, --no-d', async (t) => {
  const s = scope(t);
  const dir = await s.dir();
  const debug = await s.serve(['-d', dir, '-p', '0', '--log-l', 'debug', '--listen', '127.0.0.1']);
  await stillServes(debug.url);
  assert.equal(await stopWithin(debug, 'SIGTERM'), 0);

  // At level warn the info lines (listening, one per request) are not written.
  const port = await freePort();
  const quiet = s.spawn(['-d', dir, '-p', String(port), '--log-l', 'warn', '--wor', '4', '--no-d']);
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    'the server to answer',
    () =>
      stillServes(url).then(
        () => true,
        () => false,
      ),
    15_000,
  );
  assert.equal(await stopWithin(quiet, 'SIGTERM'), 0);
  const levels = quiet.stdoutLines.map((l) => (JSON.parse(l) as { level: string }).level);
  assert.deepEqual(
    levels.filter((l) => !['warn', 'error', 'fatal'].includes(l)),
    [],
  );
});

test('a second server on the same DIR exits 1 at once with a one-line reason naming the holder’s pid while the first keeps serving (invariant 5, issue 17)', async (t) => {
  const s = scope(t);
  const dir = await s.dir();
  const first = await s.serve(['-d', dir, '-p', '0']);
  const second = s.spawn(['-d', dir, '-p', '0']);
  const started = Date.now();
  const { code } = await exitWithin(second, 10_000);
  t.diagnostic(`second server exited after ${Date.now() - started} ms: ${second.stderr().trim()}`);
  assert.equal(code, 1);
  assert.ok(oneLine(second.stderr()), `stderr: ${JSON.stringify(second.stderr())}`);
  assert.match(second.stderr(), new RegExp(`\\(pid ${first.child.pid}\\)`));
  assert.equal((await putFile(first.url, '/still/here', Buffer.from('ok'), V)).status, 200);
  assert.equal((await getFile(first.url, '/still/here')).body.toString(), 'ok');
  assert.equal(await stopWithin(first, 'SIGTERM'), 0);
  // A clean stop takes the PID away with the lock.
  await assert.rejects(access(path.join(dir, 'meta', HOLDER_FILE)));
  assert.deepEqual((await checkStore(dir)).problems, []);
});

/** The PID of a process that has exited. */
async function deadPid(): Promise<number> {
  const gone = spawnBin(process.execPath, ['-e', '']);
  await gone.exited;
  return gone.child.pid!;
}

test('the lock message names no process that is gone: a killed server’s PID file is no holder, and the next server records its own (issue 17)', async (t) => {
  const s = scope(t);
  const dir = await s.dir();
  const pidFile = path.join(dir, 'meta', HOLDER_FILE);
  const killed = await s.serve(['-d', dir, '-p', '0']);
  assert.equal((await readFile(pidFile, 'utf8')).trim(), String(killed.child.pid));
  await killed.stop('SIGKILL');
  // Left behind, naming a dead process: it does not keep the next server out...
  assert.equal((await readFile(pidFile, 'utf8')).trim(), String(killed.child.pid));
  const next = await s.serve(['-d', dir, '-p', '0']);
  // ...which records its own PID, named to the one after it.
  assert.equal((await readFile(pidFile, 'utf8')).trim(), String(next.child.pid));
  const refused = s.spawn(['-d', dir, '-p', '0']);
  assert.equal((await exitWithin(refused, 10_000)).code, 1);
  assert.match(refused.stderr(), new RegExp(`\\(pid ${next.child.pid}\\)`));

  // The file naming a process that is gone while the lock is held (a holder that could not
  // write it): the message says the store is in use, and names no PID.
  const dead = await deadPid();
  await writeFile(pidFile, `${dead}\n`);
  const blind = s.spawn(['-d', dir, '-p', '0']);
  assert.equal((await exitWithin(blind, 10_000)).code, 1);
  t.diagnostic(blind.stderr().trim());
  assert.ok(oneLine(blind.stderr()), `stderr: ${JSON.stringify(blind.stderr())}`);
  assert.match(blind.stderr(), /in use/);
  assert.doesNotMatch(blind.stderr(), /pid/);
  assert.equal(await stopWithin(next, 'SIGTERM'), 0);
});

test('a directory with links/ but no meta/ (a Python store) is refused with exit 1 and a hint to run ft-recover, and left untouched', async (t) => {
  const s = scope(t);
  const dir = await s.dir();
  await mkdir(path.join(dir, 'links', 'some'), { recursive: true });
  await mkdir(path.join(dir, 'blobs'));
  const p = s.spawn(['-d', dir, '-p', '0']);
  const { code } = await exitWithin(p, 10_000);
  assert.equal(code, 1);
  assert.ok(oneLine(p.stderr()), `stderr: ${JSON.stringify(p.stderr())}`);
  assert.match(p.stderr(), /ft-recover/);
  assert.deepEqual((await readdir(dir)).sort(), ['blobs', 'links']);
});

test('SIGTERM while an upload is in flight lets it finish with 200, then exits 0; the file is there after a restart', async (t) => {
  const s = scope(t);
  const dir = await s.dir();
  const p = await s.serve(['-d', dir, '-p', '0']);
  const upload = slowRequest(fileUrl(p.url, '/during/sigterm', V), {
    headers: { 'Content-Type': 'application/octet-stream' },
  });
  t.after(() => upload.req.destroy());
  const parts = Array.from({ length: 8 }, (_, i) => Buffer.from(`part ${i};`.repeat(1000)));
  await upload.write(parts[0]!);
  await waitFor(
    'the upload in ft-tmp/',
    async () => (await readdir(path.join(dir, 'ft-tmp'))).length > 0,
  );
  p.child.kill('SIGTERM');
  for (const part of parts.slice(1)) {
    await sleep(100);
    assert.equal(p.child.exitCode, null, 'exited before the upload finished');
    await upload.write(part);
  }
  const answer = await upload.end();
  const answeredAt = Date.now();
  assert.equal(answer.status, 200);
  assert.equal(await stopWithin(p), 0);
  t.diagnostic(`exited ${Date.now() - answeredAt} ms after answering the upload`);

  const again = await s.serve(['-d', dir, '-p', '0']);
  const got = await getFile(again.url, '/during/sigterm');
  assert.ok(got.body.equals(Buffer.concat(parts)));
  assert.equal(await stopWithin(again, 'SIGTERM'), 0);
  assert.deepEqual((await checkStore(dir)).problems, []);
});

test('SIGTERM sent as soon as the listening line appears still stops cleanly with 0 (8 servers started at once)', async (t) => {
  const s = scope(t);
  // A supervisor may stop a server the moment it reports itself up; the signal handlers
  // must be in place before "listening" is written. Starting 8 at once makes the CPUs
  // busy enough for a late handler to show.
  const codes = await Promise.all(
    Array.from({ length: 8 }, async () => {
      const p = await s.serve(['-d', await s.dir(), '-p', '0']);
      p.child.kill('SIGTERM');
      await stopWithin(p);
      return p.child.signalCode ?? p.child.exitCode;
    }),
  );
  assert.deepEqual(codes, Array(8).fill(0));
});

test('SIGINT exits 0, also with an idle kept-alive connection open', async (t) => {
  const s = scope(t);
  const dir = await s.dir();
  const p = await s.serve(['-d', dir, '-p', '0']);
  await stillServes(p.url);
  const started = Date.now();
  assert.equal(await stopWithin(p, 'SIGINT'), 0);
  t.diagnostic(`exited ${Date.now() - started} ms after SIGINT`);
});

test('-L FILE writes one JSON line per request (method, path, status) to FILE; after a rename, SIGHUP makes a new FILE that gets the new lines', async (t) => {
  const s = scope(t);
  const dir = await s.dir();
  const log = path.join(dir, 'logs', 'ft.log');
  const p = s.spawn(['-d', path.join(dir, 'store'), '-p', '0', '-L', log]);
  const readLog = async (file: string): Promise<Record<string, unknown>[]> =>
    (await readFile(file, 'utf8').catch(() => ''))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const url = await listeningUrl(
    async () => (await readFile(log, 'utf8').catch(() => '')).split('\n'),
    p,
  );
  const hasRequest = (
    lines: Record<string, unknown>[],
    method: string,
    suffix: string,
    status: number,
  ): boolean =>
    lines.some(
      (l) =>
        l.method === method &&
        typeof l.path === 'string' &&
        l.path.startsWith(suffix) &&
        l.status === status,
    );

  assert.equal((await putFile(url, '/logged', Buffer.from('x'), V)).status, 200);
  assert.equal((await getFile(url, '/nothing-here')).status, 404);
  await waitFor('request lines in FILE', async () => {
    const lines = await readLog(log);
    return (
      hasRequest(lines, 'PUT', '/files/logged', 200) &&
      hasRequest(lines, 'GET', '/files/nothing-here', 404)
    );
  });
  assert.equal(
    p.stdoutLines.filter((l) => l.includes('"method"')).length,
    0,
    'request lines also went to stdout',
  );

  await rename(log, `${log}.1`);
  p.child.kill('SIGHUP');
  await waitFor('a new FILE after SIGHUP', () =>
    access(log).then(
      () => true,
      () => false,
    ),
  );
  assert.equal((await getFile(url, '/logged')).status, 200);
  await waitFor('the new request in the new FILE', async () =>
    hasRequest(await readLog(log), 'GET', '/files/logged', 200),
  );
  assert.equal(hasRequest(await readLog(`${log}.1`), 'GET', '/files/logged', 200), false);
  assert.equal(p.child.exitCode, null, 'SIGHUP stopped the server');
  assert.equal(await stopWithin(p, 'SIGTERM'), 0);
});

test('a port already in use: exit 1 with a one-line reason', async (t) => {
  const s = scope(t);
  const dir = await s.dir();
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const { port } = blocker.address() as AddressInfo;
  const p = s.spawn(['-d', dir, '-p', String(port)]);
  const { code } = await exitWithin(p, 10_000);
  assert.equal(code, 1);
  assert.ok(oneLine(p.stderr()), `stderr: ${JSON.stringify(p.stderr())}`);
  // It let go of the store: another server can open it.
  const q = await s.serve(['-d', dir, '-p', '0']);
  await stillServes(q.url);
  assert.equal(await stopWithin(q, 'SIGTERM'), 0);
});

test('--idle-timeout 1 drops a connection whose body stalls (ft-tmp/ emptied) but not an upload that sends a chunk every 300 ms for 3 s', async (t) => {
  const s = scope(t);
  const dir = await s.dir();
  const p = await s.serve(['-d', dir, '-p', '0', '--idle-timeout', '1']);
  const { port } = new URL(p.url);

  const closedAfter = (send: string): Promise<number> =>
    new Promise((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1');
      const started = Date.now();
      socket.on('error', () => {});
      socket.on('close', () => resolve(Date.now() - started));
      socket.on('connect', () => socket.write(send));
      setTimeout(() => {
        socket.destroy();
        reject(new Error('the stalled connection was not dropped within 10 s'));
      }, 10_000).unref();
    });
  const head =
    `PUT /files/stalled?last_modified=${encodeURIComponent(new Date(V * 1000).toUTCString())} HTTP/1.1\r\n` +
    `Host: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n`;
  const [stalledMs, silentMs] = await Promise.all([
    closedAfter(head + 'x'.repeat(1000)),
    closedAfter(''),
  ]);
  t.diagnostic(
    `stalled upload dropped after ${stalledMs} ms, silent connection after ${silentMs} ms`,
  );
  assert.ok(stalledMs < 5_000 && silentMs < 5_000);
  await waitFor(
    'ft-tmp/ to be emptied',
    async () => (await readdir(path.join(dir, 'ft-tmp'))).length === 0,
  );

  const slow = slowRequest(fileUrl(p.url, '/slow-but-moving', V));
  t.after(() => slow.req.destroy());
  const chunks: string[] = [];
  for (let i = 0; i < 10; i++) {
    chunks.push(`chunk ${i};`);
    await slow.write(chunks[i]!);
    await sleep(300);
  }
  const answer = await slow.end();
  assert.equal(answer.status, 200);
  assert.equal((await getFile(p.url, '/slow-but-moving')).body.toString(), chunks.join(''));
  assert.equal((await getFile(p.url, '/stalled')).status, 404);
  assert.equal(await stopWithin(p, 'SIGTERM'), 0);
  assert.deepEqual((await checkStore(dir)).problems, []);
});

test('--max-file-size takes bytes or a K/M/G/T size (1KiB: 1024 bytes stored, 1025 refused with 413); 0, 1.5G and abc exit 2 naming the option', async (t) => {
  const s = scope(t);
  const dir = await s.dir();
  for (const bad of ['0', '1.5G', 'abc', '-1']) {
    const p = s.spawn(['-d', dir, '-p', '0', `--max-file-size=${bad}`]);
    const { code } = await exitWithin(p, 10_000);
    assert.equal(code, 2, `--max-file-size=${bad} is a usage error`);
    assert.match(p.stderr(), /--max-file-size/, `the reason names the option: ${p.stderr()}`);
  }
  const p = await s.serve(['-d', dir, '-p', '0', '--max-file-size', '1KiB']);
  const put = (name: string, size: number) =>
    fetch(fileUrl(p.url, name, V), { method: 'PUT', body: Buffer.alloc(size, 1) });
  assert.equal((await put('/cap/at', 1024)).status, 200);
  const over = await put('/cap/over', 1025);
  assert.equal(over.status, 413);
  assert.equal(over.headers.get('x-error-code'), 'FILE_TOO_LARGE');
  assert.equal(await stopWithin(p, 'SIGTERM'), 0);
});
