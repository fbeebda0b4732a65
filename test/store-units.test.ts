import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DigestFilter,
  KeyedMutex,
  ReadCaches,
  SDK_LOG_INTERVAL_MS,
  sdkLogger,
  type EntryLookup,
} from '@filetracker/server';

const digest = (n: number): string => n.toString(16).padStart(64, '0');
const entry = (version: number) => ({
  digest: digest(version),
  version,
  logicalSize: 1,
  storedSize: 2,
});

/** A load the test finishes by hand, to put writes in the middle of it. */
function pending(): { load: () => Promise<EntryLookup>; finish(value: EntryLookup): void } {
  let finish!: (value: EntryLookup) => void;
  const promise = new Promise<EntryLookup>((resolve) => (finish = resolve));
  return { load: () => promise, finish };
}

describe('ReadCaches: the staleness rule', () => {
  test('a read that no write crossed fills the entry cache', async () => {
    const caches = new ReadCaches();
    assert.deepEqual(await caches.lookup('/a', async () => entry(1), false), entry(1));
    assert.deepEqual(caches.entry('/a'), entry(1));
  });

  test('a read crossed by a write of the name fills nothing', async () => {
    const caches = new ReadCaches();
    const read = pending();
    const looking = caches.lookup('/a', read.load, false);
    caches.written('/a');
    caches.set('/a', entry(2));
    read.finish(entry(1));
    assert.deepEqual(await looking, entry(1), 'the reader gets what it read');
    assert.deepEqual(caches.entry('/a'), entry(2), "the writer's entry stays");
  });

  test('a write under a name makes a read of its parent directory stale, and its "absent" too', async () => {
    const caches = new ReadCaches();
    const read = pending();
    const looking = caches.lookup('/d', read.load, true);
    caches.written('/d/f');
    read.finish('absent');
    await looking;
    assert.equal(caches.takeAbsent('/d'), false, 'a stale "absent" is not kept');
    await caches.lookup('/d', async () => 'absent', true);
    caches.written('/d/f');
    assert.equal(caches.takeAbsent('/d'), false, "a child's write drops the parent's note");
  });

  test('a write of another name leaves a read alone', async () => {
    const caches = new ReadCaches();
    const read = pending();
    const looking = caches.lookup('/a', read.load, false);
    caches.written('/b');
    caches.written('/ab');
    read.finish(entry(1));
    await looking;
    assert.deepEqual(caches.entry('/a'), entry(1));
  });

  test('"absent" is kept only for a PUT\'s look, used once; directories are never kept', async () => {
    const caches = new ReadCaches();
    await caches.lookup('/x', async () => 'absent', false);
    assert.equal(caches.takeAbsent('/x'), false);
    await caches.lookup('/x', async () => 'absent', true);
    assert.equal(caches.takeAbsent('/x'), true);
    assert.equal(caches.takeAbsent('/x'), false);
    await caches.lookup('/dir', async () => 'directory', true);
    assert.equal(caches.entry('/dir'), undefined);
    assert.equal(caches.takeAbsent('/dir'), false);
  });

  test('at most 10,000 names are noted absent: the oldest note goes first', async () => {
    const caches = new ReadCaches();
    for (let i = 0; i <= 10_000; i++) await caches.lookup(`/n${i}`, async () => 'absent', true);
    assert.equal(caches.takeAbsent('/n0'), false, 'the oldest note was dropped');
    assert.equal(caches.takeAbsent('/n1'), true);
    assert.equal(caches.takeAbsent('/n10000'), true);
    // Taking the only note left, then noting again: the set is still in use.
    for (let i = 2; i < 10_000; i++) assert.equal(caches.takeAbsent(`/n${i}`), true);
    await caches.lookup('/again', async () => 'absent', true);
    assert.equal(caches.takeAbsent('/again'), true);
  });

  test('peek answers only when both the entry and its blob are in memory', () => {
    const caches = new ReadCaches();
    caches.set('/p', entry(3));
    assert.equal(caches.peek('/p'), undefined);
    caches.setBlob(digest(3), Buffer.from('gz'));
    assert.deepEqual(caches.peek('/p'), { entry: entry(3), buffer: Buffer.from('gz') });
    caches.forgetIfStill('/p', entry(3));
    assert.ok(caches.peek('/p'), 'a different object than the cached entry changes nothing');
    caches.forget('/p');
    assert.equal(caches.peek('/p'), undefined);
  });
});

describe('KeyedMutex', () => {
  /** A callback the test ends by hand, noting when it starts. */
  function held(log: string[], label: string) {
    let end!: (fail?: Error) => void;
    const ended = new Promise<void>((resolve, reject) => {
      end = (fail) => (fail ? reject(fail) : resolve());
    });
    return {
      fn: async () => {
        log.push(`${label} starts`);
        await ended;
        log.push(`${label} ends`);
        return label;
      },
      end,
    };
  }

  test('one callback at a time per key, in the order asked; other keys go on meanwhile', async () => {
    const mutex = new KeyedMutex();
    const log: string[] = [];
    const [a1, a2, a3, b1] = ['a1', 'a2', 'a3', 'b1'].map((label) => held(log, label));
    const runs = [
      mutex.run('a', a1!.fn),
      mutex.run('a', a2!.fn),
      mutex.run('a', a3!.fn),
      mutex.run('b', b1!.fn),
    ];
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(log, ['a1 starts', 'b1 starts'], 'a2 and a3 wait for a1; b1 does not');
    a1!.end();
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(log.slice(2), ['a1 ends', 'a2 starts']);
    a2!.end();
    a3!.end();
    b1!.end();
    assert.deepEqual(await Promise.all(runs), ['a1', 'a2', 'a3', 'b1']);
    assert.deepEqual(
      log.filter((line) => line.startsWith('a')),
      ['a1 starts', 'a1 ends', 'a2 starts', 'a2 ends', 'a3 starts', 'a3 ends'],
      'a3, ended before it started, still waited for a2',
    );
  });

  test('a callback that throws passes its error on and lets the next one run', async () => {
    const mutex = new KeyedMutex();
    const log: string[] = [];
    const first = held(log, 'first');
    const second = held(log, 'second');
    const failing = mutex.run('k', first.fn);
    const next = mutex.run('k', second.fn);
    first.end(new Error('disk full'));
    await assert.rejects(failing, /disk full/);
    second.end();
    assert.equal(await next, 'second');
    assert.deepEqual(log, ['first starts', 'second starts', 'second ends']);
  });

  test('a key nobody holds any more runs its next callback at once, as a new key does', async () => {
    const mutex = new KeyedMutex();
    await mutex.run('k', async () => {});
    await assert.rejects(
      mutex.run('k', async () => {
        throw new Error('no');
      }),
    );
    let started = false;
    const run = mutex.run('k', async () => {
      started = true;
    });
    assert.equal(started, true, 'started in the same tick: nothing left queued under the key');
    await run;
  });
});

describe('DigestFilter', () => {
  async function* from(digests: string[]): AsyncGenerator<string> {
    for (const d of digests) yield d;
  }

  test('answers "maybe" until built, then "no" only for digests it was never given', async () => {
    const stored = [1, 2, 3].map(digest);
    const filter = new DigestFilter(() => from(stored), 100);
    assert.equal(filter.ready, false);
    assert.equal(filter.mayHold(digest(99)), true);
    await filter.build(10);
    assert.equal(filter.ready, true);
    assert.equal(filter.capacity, 100, 'never below its least capacity');
    for (const d of stored) assert.equal(filter.mayHold(d), true);
    const unknown = Array.from({ length: 50 }, (_, i) => digest(1000 + i));
    assert.ok(unknown.filter((d) => filter.mayHold(d)).length < 5, 'about 1% false positives');
  });

  test('a digest added while a build scans is in the filter it builds', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const filter = new DigestFilter(async function* () {
      await gate;
      yield digest(1);
    }, 16);
    const building = filter.build(16);
    filter.add(digest(7));
    release();
    await building;
    assert.equal(filter.mayHold(digest(7)), true);
    assert.equal(filter.mayHold(digest(1)), true);
  });

  test('grows to twice its count once more digests are added than it was sized for', async () => {
    // The database: a digest is added to the filter once its record is written.
    const records: string[] = [];
    const filter = new DigestFilter(() => from([...records]), 4);
    await filter.build(0);
    assert.equal(filter.capacity, 4);
    const added: string[] = [];
    for (let i = 0; i < 5; i++) {
      records.push(digest(i));
      added.push(digest(i));
      filter.add(digest(i));
    }
    for (let i = 0; i < 10 && filter.capacity === 4; i++) await new Promise((r) => setImmediate(r));
    assert.equal(filter.capacity, 10);
    for (const d of added) assert.equal(filter.mayHold(d), true);
  });

  test('a failed scan leaves the filter it had', async () => {
    let fail = false;
    const filter = new DigestFilter(async function* () {
      if (fail) throw new Error('closed');
      yield digest(1);
    }, 8);
    await filter.build(8);
    fail = true;
    await assert.rejects(filter.build(100));
    assert.equal(filter.capacity, 8);
    assert.equal(filter.mayHold(digest(1)), true);
  });
});

describe("sdkLogger: the S3 client's own lines", () => {
  const streaming = 'An error was encountered in a non-retryable streaming request.';
  /** The SDK's record of a failed command, as its logger middleware passes it. */
  const failed = (command: string, key: string, error: Error, status?: number) => ({
    clientName: 'S3Client',
    commandName: `${command}Command`,
    input: { Bucket: 'b', Key: key },
    error: Object.assign(error, { $metadata: { httpStatusCode: status } }),
    metadata: { httpStatusCode: status },
  });
  function logger(): {
    lines: { details: Record<string, unknown>; message: string }[];
    clock: { t: number };
    sdk: ReturnType<typeof sdkLogger>;
  } {
    const lines: { details: Record<string, unknown>; message: string }[] = [];
    const clock = { t: 1_000_000 };
    const sdk = sdkLogger(
      (details, message) => lines.push({ details, message }),
      () => clock.t,
    );
    return { lines, clock, sdk };
  }

  test('an outage is a line a minute per command and error, however many keys fail', () => {
    const { lines, clock, sdk } = logger();
    for (let i = 0; i < 1000; i++) {
      const refused = () => new Error('connect ECONNREFUSED 127.0.0.1:9');
      sdk.error(failed('GetObject', `blobs/${i}`, refused()));
      sdk.error(failed('PutObject', `tmp/${i}`, refused()));
      sdk.warn(streaming);
      clock.t += 10;
    }
    assert.deepEqual(
      lines.map((l) => l.message),
      [
        'object store client error: GetObject: Error: connect ECONNREFUSED 127.0.0.1:9',
        'object store client error: PutObject: Error: connect ECONNREFUSED 127.0.0.1:9',
        `object store client warning: ${streaming}`,
      ],
    );
    assert.ok(
      lines.every((l) => !JSON.stringify(l).includes('blobs/')),
      'no key in a line',
    );
    // A minute on, the next of each says how many were left out.
    clock.t += SDK_LOG_INTERVAL_MS;
    sdk.warn(streaming);
    assert.equal(lines.length, 4);
    assert.equal(lines[3]!.details.repeated, 999);
    assert.equal(lines[3]!.details.service, 'object store');
  });

  test('a 404 is not logged; debug and info are dropped', () => {
    const { lines, sdk } = logger();
    sdk.error(failed('HeadObject', 'blobs/x', new Error('NotFound'), 404));
    sdk.info({ clientName: 'S3Client', commandName: 'GetObjectCommand', output: {} });
    sdk.debug('retrying');
    assert.deepEqual(lines, []);
    sdk.error(failed('HeadObject', 'blobs/x', new Error('Service Unavailable'), 503));
    assert.equal(lines.length, 1);
  });

  test('many other texts do not let a repeated one through again within its minute', () => {
    const { lines, clock, sdk } = logger();
    sdk.warn(streaming);
    for (let i = 0; i < 1000; i++) {
      clock.t += 1;
      sdk.warn(`text ${i}`);
      sdk.warn(streaming);
    }
    assert.equal(lines.filter((l) => l.message.includes(streaming)).length, 1);
    assert.equal(lines.length, 1001);
  });
});
