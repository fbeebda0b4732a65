import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DigestFilter, ReadCaches, type EntryLookup } from '@filetracker/server';

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
