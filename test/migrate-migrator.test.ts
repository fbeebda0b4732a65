import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  appendFile,
  mkdir,
  readFile,
  readdir,
  rm,
  symlink,
  unlink,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, test, type TestContext } from 'node:test';
import { CliError } from '@filetracker/runtime';
import { FiletrackerError } from '@filetracker/shared-protocol';
import {
  BoundedQueue,
  Migrator,
  StateFile,
  parseCommandLine,
  type MigrateClient,
  type MigratorOptions,
  type MigrationSummary,
} from '@filetracker/migrate';
import { smallTreeFiles, versionOf, writeTree, type TreeFile } from './helpers/migrate-tree.js';
import { tempDir } from './helpers/server.js';

type PutHandler = (name: string, attempt: number, signal: AbortSignal) => Promise<number | void>;

/** A client double: `onPut` decides each PUT (return a version, throw, or wait). */
class FakeClient {
  readonly puts = new Map<string, number>();
  readonly heads: string[] = [];
  inFlight = 0;
  maxInFlight = 0;
  remote = new Map<string, { version: number; logicalSize: number }>();

  constructor(private readonly onPut: PutHandler = async () => undefined) {}

  async put(
    name: string,
    _source: unknown,
    options: { version?: number; signal?: AbortSignal } = {},
  ): Promise<number> {
    const attempt = (this.puts.get(name) ?? 0) + 1;
    this.puts.set(name, attempt);
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      const answer = await this.onPut(name, attempt, options.signal!);
      return answer ?? options.version!;
    } finally {
      this.inFlight -= 1;
    }
  }

  async stat(name: string): Promise<{ version: number; logicalSize: number } | null> {
    this.heads.push(name);
    return this.remote.get(name) ?? null;
  }

  async get(): Promise<{ stream: Readable; version: number; logicalSize: number }> {
    return { stream: Readable.from([]), version: 0, logicalSize: 0 };
  }
}

async function makeTree(t: TestContext, files: readonly TreeFile[]): Promise<string> {
  const dir = await tempDir('ft-migrator-test-');
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeTree(path.join(dir, 'files'), files);
  return path.join(dir, 'files');
}

function migrator(
  root: string,
  client: FakeClient,
  options: Partial<MigratorOptions> = {},
): Migrator {
  return new Migrator({
    files: root,
    root,
    client: client as unknown as MigrateClient,
    retryBaseMs: 1,
    ...options,
  });
}

/** Runs `m`, checking that every file-start got exactly one outcome. */
async function runChecked(m: Migrator): Promise<MigrationSummary> {
  let started = 0;
  let ended = 0;
  m.on('file-start', () => (started += 1));
  for (const event of ['file-done', 'file-skip', 'file-fail', 'file-diff'] as const) {
    m.on(event, () => (ended += 1));
  }
  const summary = await m.run();
  assert.equal(ended, started, 'one outcome per started file');
  assert.equal(summary.processed.files, started);
  return summary;
}

const transient = (status: number) =>
  new FiletrackerError('injected', { code: 'SERVER_ERROR', status });

function connectionReset(): Error {
  return Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
}

describe('Migrator', () => {
  test('retries a 503 and a connection reset with backoff, then uploads; retries are events', async (t) => {
    const files = smallTreeFiles(10);
    const root = await makeTree(t, files);
    const client = new FakeClient(async (name, attempt) => {
      if (name.endsWith('/f1.txt') && attempt === 1) throw transient(503);
      if (name.endsWith('/f2.txt') && attempt < 3) throw connectionReset();
    });
    const m = migrator(root, client, { concurrency: 3 });
    const retries: string[] = [];
    m.on('file-retry', (r) => retries.push(`${r.name}#${r.attempt}:${r.code}`));
    const summary = await runChecked(m);
    assert.equal(summary.uploaded.files, 10);
    assert.equal(summary.failed.files, 0);
    assert.equal(summary.retries, 3);
    assert.deepEqual(retries.sort(), [
      '/many/d1/f1.txt#1:SERVER_ERROR',
      '/many/d2/f2.txt#1:ECONNRESET',
      '/many/d2/f2.txt#2:ECONNRESET',
    ]);
    assert.ok(client.maxInFlight <= 3);
  });

  test('a 4xx is not retried: the file fails with its status and the run goes on', async (t) => {
    const root = await makeTree(t, smallTreeFiles(5));
    const client = new FakeClient(async (name) => {
      if (name.endsWith('/f3.txt')) {
        throw new FiletrackerError('bad', { code: 'BAD_PATH', status: 400 });
      }
    });
    const summary = await runChecked(migrator(root, client));
    assert.equal(client.puts.get('/many/d3/f3.txt'), 1);
    assert.equal(summary.uploaded.files, 4);
    assert.deepEqual(
      summary.failures.map((f) => [f.name, f.code, f.status]),
      [['/many/d3/f3.txt', 'BAD_PATH', 400]],
    );
  });

  test('a file that keeps failing transiently fails after 1 + retries attempts', async (t) => {
    const root = await makeTree(t, smallTreeFiles(2));
    const client = new FakeClient(async (name) => {
      if (name.endsWith('/f0.txt')) throw transient(502);
    });
    const summary = await runChecked(migrator(root, client, { retries: 2 }));
    assert.equal(client.puts.get('/many/d0/f0.txt'), 3);
    assert.equal(summary.failed.files, 1);
    assert.equal(summary.failures[0]!.status, 502);
  });

  test('a newer version kept by the server is a "server-newer" skip, recorded as finished', async (t) => {
    const files = smallTreeFiles(3);
    const root = await makeTree(t, files);
    const client = new FakeClient(async (name) => (name.endsWith('/f0.txt') ? 2e9 : undefined));
    const recorded: string[] = [];
    const state = { has: () => false, record: (name: string) => void recorded.push(name) };
    const summary = await runChecked(migrator(root, client, { state }));
    assert.equal(summary.skipped.byReason['server-newer'], 1);
    assert.equal(summary.uploaded.files, 2);
    // 2_000_000_000 s, written as a date for people (issue 17).
    assert.match(summary.skippedFiles[0]!.detail, /2033-05-18T03:33:20Z/);
    assert.equal(recorded.length, 3);
  });

  test('a file changed during its upload is reported (CHANGED) and not recorded', async (t) => {
    const files = smallTreeFiles(2);
    const root = await makeTree(t, files);
    const client = new FakeClient(async (name) => {
      if (name.endsWith('/f1.txt')) await appendFile(path.join(root, name), 'more');
    });
    const recorded: string[] = [];
    const state = { has: () => false, record: (name: string) => void recorded.push(name) };
    const summary = await runChecked(migrator(root, client, { state }));
    assert.deepEqual(
      summary.failures.map((f) => [f.name, f.code]),
      [['/many/d1/f1.txt', 'CHANGED']],
    );
    assert.deepEqual(recorded, ['/many/d0/f0.txt']);
  });

  test('a file deleted before its turn is a "vanished" skip, not a crash', async (t) => {
    // One directory: the walker has queued every entry before the first upload starts.
    const files = smallTreeFiles(6).map((f, i) => ({ ...f, name: `one/f${i}` }));
    const root = await makeTree(t, files);
    let deleted = false;
    const client = new FakeClient(async (name) => {
      if (deleted) return;
      deleted = true;
      for (const file of files) {
        if (`/${file.name}` !== name) await unlink(path.join(root, file.name)).catch(() => {});
      }
    });
    const summary = await runChecked(migrator(root, client, { concurrency: 1 }));
    assert.equal(summary.uploaded.files, 1);
    assert.equal(summary.skipped.byReason.vanished, 5);
  });

  test('a file replaced after the walk saw it is taken for what it is then, and nothing is left open', async (t) => {
    // One directory: the walker has queued every entry before the first upload starts, as
    // regular files (their directory entries' type); the first upload (whichever file the
    // directory lists first) replaces the others.
    const files = smallTreeFiles(6).map((f, i) => ({ ...f, name: `one/f${i}` }));
    const root = await makeTree(t, files);
    const at = (name: string): string => path.join(root, name);
    const large = Buffer.alloc(1024 * 1024 + 5, 'x');
    const sources = new Map<string, unknown>();
    const roles = new Map<string, string>();
    let first: string | undefined;
    const client = new FakeClient(async (name) => {
      if (first !== undefined) return;
      first = name;
      const others = files.map((f) => `/${f.name}`).filter((n) => n !== name);
      const [link, fifo, dir, big, gone] = others.map((n) => at(n));
      await unlink(link!);
      await symlink(at(name), link!);
      await unlink(fifo!);
      execFileSync('mkfifo', [fifo!]);
      await unlink(dir!);
      await mkdir(dir!);
      await writeFile(big!, large);
      await unlink(gone!);
      ['symlink', 'special', 'special', 'large', 'vanished'].forEach((role, i) =>
        roles.set(others[i]!, role),
      );
    });
    const put = client.put.bind(client);
    client.put = (name, source, options) => {
      sources.set(name, source);
      return put(name, source, options);
    };
    const fds = async (): Promise<number> => (await readdir('/proc/self/fd')).length;
    const before = await fds();
    const summary = await runChecked(migrator(root, client, { concurrency: 1 }));
    const outcomes = [
      ...summary.skippedFiles.map((f) => [f.name, f.reason]),
      ...summary.failures.map((f) => [f.name, f.code]),
    ].sort();
    const expected = [...roles].filter(([, role]) => role !== 'large').sort();
    assert.deepEqual(outcomes, expected);
    assert.equal(summary.uploaded.files, 2);
    // The small file read whole, the large one streamed by the client from its path.
    const big = [...roles].find(([, role]) => role === 'large')![0];
    const small = files.find((f) => `/${f.name}` === first)!;
    assert.deepEqual(sources.get(first!), small.content);
    assert.equal(sources.get(big), at(big));
    assert.equal(await fds(), before, 'every descriptor opened was closed');

    // Again, every file done by the resume state: opened, found done, closed.
    const done = { has: () => true, record: () => {} };
    const again = await runChecked(migrator(root, new FakeClient(), { state: done }));
    assert.equal(again.skipped.byReason['already-done'], 2);
    assert.equal(await fds(), before, 'every descriptor opened was closed, again');
  });

  test('with checkServer (--no-state) a HEAD skips files the server has at this version or newer', async (t) => {
    const files = smallTreeFiles(3);
    const root = await makeTree(t, files);
    const client = new FakeClient();
    client.remote.set(`/${files[0]!.name}`, {
      version: versionOf(files[0]!),
      logicalSize: files[0]!.content.length,
    });
    client.remote.set(`/${files[1]!.name}`, { version: versionOf(files[1]!) + 5, logicalSize: 1 });
    const summary = await runChecked(migrator(root, client, { checkServer: true }));
    assert.equal(client.heads.length, 3);
    assert.deepEqual([...client.puts.keys()], [`/${files[2]!.name}`]);
    assert.equal(summary.skipped.byReason['already-there'], 1);
    assert.equal(summary.skipped.byReason['server-newer'], 1);
  });

  test('abort() aborts the uploads in flight through their signal and resolves as interrupted', async (t) => {
    const root = await makeTree(t, smallTreeFiles(50));
    const client = new FakeClient(
      (_name, _attempt, signal) =>
        new Promise((_resolve, reject) => {
          signal.throwIfAborted();
          signal.addEventListener('abort', () => reject(signal.reason), { once: true });
        }),
    );
    const m = migrator(root, client, { concurrency: 4 });
    let started = 0;
    m.on('file-start', () => {
      started += 1;
      if (started === 4) setImmediate(() => m.abort('test'));
    });
    const summary = await runChecked(m);
    assert.equal(summary.interrupted, true);
    assert.equal(summary.stopReason, 'test');
    assert.equal(summary.skipped.byReason.interrupted, 4);
    assert.equal(summary.processed.files, 4, 'nothing started after the abort');
  });

  test('stops when 50 files in a row fail transiently (the server is down)', async (t) => {
    const root = await makeTree(t, smallTreeFiles(120));
    const client = new FakeClient(async () => {
      throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    });
    const summary = await runChecked(migrator(root, client, { retries: 0, concurrency: 1 }));
    assert.equal(summary.interrupted, true);
    assert.match(summary.stopReason!, /server up/);
    assert.equal(summary.failed.files, 50);
  });

  test('the concurrent count reports the totals; concurrency caps uploads in flight', async (t) => {
    const files = smallTreeFiles(200);
    const root = await makeTree(t, files);
    const client = new FakeClient(() => new Promise((resolve) => setTimeout(resolve, 1)));
    const m = migrator(root, client, { concurrency: 5, countTotals: true });
    const scans: { files: number; bytes: number; done: boolean }[] = [];
    m.on('scan', (s) => scans.push(s));
    const summary = await runChecked(m);
    assert.equal(client.maxInFlight, 5);
    const last = scans.at(-1)!;
    assert.equal(summary.uploaded.files, 200);
    // The count may be cut short once every file is done; when it finished, it is exact.
    if (last.done) {
      assert.equal(last.files, 200);
      assert.equal(
        last.bytes,
        files.reduce((sum, f) => sum + f.content.length, 0),
      );
    }
  });
});

describe('BoundedQueue', () => {
  test('push waits while the queue is full; close lets consumers drain, then ends them', async () => {
    const queue = new BoundedQueue<number>(2);
    assert.equal(await queue.push(1), true);
    assert.equal(await queue.push(2), true);
    let third = false;
    const pushing = queue.push(3).then((ok) => (third = ok));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(third, false, 'the producer waits for room');
    assert.equal(await queue.shift(), 1);
    await pushing;
    assert.equal(third, true);
    queue.close();
    assert.equal(await queue.push(4), false);
    assert.deepEqual(
      [await queue.shift(), await queue.shift(), await queue.shift()],
      [2, 3, undefined],
    );
  });
});

describe('StateFile', () => {
  test('records finished files, reloads them, ignores a line torn by kill -9, refuses another migration', async (t) => {
    const dir = await tempDir('ft-migrate-state-');
    t.after(() => rm(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'state');
    const identity = { url: 'http://127.0.0.1:9999', root: '/srv/ft_root/files' };
    const first = await StateFile.open(file, identity);
    first.record('/a', 1);
    first.record('/with\nnewline', 2);
    await first.close();
    await first.close();
    await appendFile(file, '["/torn", 3'); // kill -9 mid-write

    const second = await StateFile.open(file, identity);
    assert.equal(second.size, 2);
    assert.ok(second.has('/a', 1));
    assert.ok(second.has('/with\nnewline', 2));
    assert.ok(!second.has('/a', 2));
    assert.ok(!second.has('/torn', 3));
    second.record('/b', 4);
    await second.close();
    const third = await StateFile.open(file, identity, { readOnly: true });
    assert.ok(third.has('/b', 4), 'the torn line does not swallow the next record');

    await assert.rejects(
      StateFile.open(file, { ...identity, url: 'http://other:1' }),
      (err: unknown) => err instanceof CliError && err.code === 'STATE_MISMATCH',
    );
    await writeFile(path.join(dir, 'junk'), 'not a state file\n');
    await assert.rejects(
      StateFile.open(path.join(dir, 'junk'), identity),
      (err: unknown) => err instanceof CliError && err.code === 'STATE_UNUSABLE',
    );
    assert.match(await readFile(file, 'utf8'), /^\{"ftMigrateState":1,/);
  });

  test('names the store it was made against; restart() starts the file afresh for another store, keeping what to check in memory; deleted files are never sampled (issue 18)', async (t) => {
    const dir = await tempDir('ft-migrate-state-');
    t.after(() => rm(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'state');
    const identity = { url: 'http://127.0.0.1:9999', root: '/srv/ft_root/files' };
    const first = await StateFile.open(file, identity, { storeId: 'store-a' });
    first.record('/a', 1);
    first.record('/gone', 2, true);
    await first.close();

    const second = await StateFile.open(file, identity, { storeId: 'store-b' });
    assert.equal(second.storeId, 'store-a', 'the store the file was made against');
    assert.deepEqual(second.sample(10), [['/a', 1]], 'a deleted file is no evidence');
    await second.restart('store-b');
    assert.equal(second.storeId, 'store-b');
    assert.ok(second.has('/a', 1) && second.has('/gone', 2), 'still known, to be checked');
    second.record('/b', 3);
    await second.close();

    const text = await readFile(file, 'utf8');
    assert.deepEqual(
      text.split('\n').map((l) => (l ? (JSON.parse(l) as unknown) : l)),
      [{ ftMigrateState: 1, ...identity, store: 'store-b' }, ['/b', 3], ''],
    );
    assert.deepEqual(await readdir(dir), ['state'], 'no temp file left');
  });
});

describe('parseCommandLine', () => {
  const argv = (...args: string[]) => ['node', 'ft-migrate', ...args];

  test('takes unique prefixes of long options, as the Python migrator did', () => {
    const options = parseCommandLine(
      argv('--ro', '/r', '--sil', '--conc', '3', 'files', 'http://h:1'),
    );
    assert.equal(options.root, '/r');
    assert.equal(options.silent, true);
    assert.equal(options.concurrency, 3);
    assert.equal(options.files, 'files');
    assert.equal(options.url, 'http://h:1');
  });

  test('a bare --verify does not swallow FILES; --verify=digest; --no-state', () => {
    const plain = parseCommandLine(argv('--verify', 'files', 'http://h:1'));
    assert.equal(plain.verify, 'stat');
    assert.equal(plain.files, 'files');
    const digest = parseCommandLine(argv('files', 'http://h:1', '--verify=digest', '--no-state'));
    assert.equal(digest.verify, 'digest');
    assert.equal(digest.state, false);
    const defaults = parseCommandLine(argv('files', 'http://h:1'));
    assert.equal(defaults.state, undefined);
    assert.equal(defaults.retries, 3);
    assert.equal(defaults.progressInterval, 5);
  });
});
