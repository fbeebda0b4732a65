import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import type { BlobStore, MetadataStore, NameLookup, StagedBlob } from '@filetracker/server';

/** A metadata store to test, fresh and empty, over the blob store it drives. */
export interface MetadataStoreUnderTest {
  metadata: MetadataStore;
  blobs: BlobStore;
  /**
   * Runs the removal of unreferenced blobs that an implementation defers (a shared
   * database's sweeper, after a grace period: here with none); absent when a blob goes
   * with its last reference at once.
   */
  sweep?(): Promise<void>;
  close(): Promise<void>;
}

const sha256 = (data: string): string => createHash('sha256').update(data).digest('hex');
const split = (name: string): string[] => name.slice(1).split('/');
const V = 1_700_000_000;

async function all<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/**
 * The contract of the metadata port (packages/server/src/store/metadata-store.ts): every
 * implementation passes it, over a blob store of its own kind. `make` gives a fresh, empty
 * pair for each test.
 */
export function metadataStoreContract(
  name: string,
  make: () => Promise<MetadataStoreUnderTest>,
  options: { skip?: string | undefined } = {},
): void {
  describe(`MetadataStore contract: ${name}`, { skip: options.skip ?? false }, () => {
    /** `sweep`: what must have run before a blob without references is asserted gone. */
    const withStore =
      (
        fn: (
          metadata: MetadataStore,
          blobs: BlobStore,
          sweep: () => Promise<void>,
        ) => Promise<void>,
      ) =>
      async () => {
        const under = await make();
        try {
          await fn(under.metadata, under.blobs, async () => under.sweep?.());
        } finally {
          await under.close();
        }
      };

    /** Stages `content` and commits it under `name` as a writer does: read, then commit, locked. */
    async function write(
      metadata: MetadataStore,
      blobs: BlobStore,
      name: string,
      content: string,
      version = V,
      clearTombstone = false,
    ): Promise<{ dedup: boolean; staged: StagedBlob }> {
      const staged = await blobs.stage(Readable.from([Buffer.from(content)]), {
        gzip: false,
        write: true,
      });
      try {
        return await metadata.withName(name, async () => {
          const previous = await metadata.read(split(name));
          const result = await metadata.commit({
            components: split(name),
            blob: staged,
            version,
            previous,
            clearTombstone,
          });
          return { dedup: result.dedup, staged };
        });
      } catch (err) {
        await blobs.discard(staged);
        throw err;
      }
    }

    async function remove(metadata: MetadataStore, name: string): Promise<void> {
      await metadata.withName(name, async () => {
        const held = await metadata.read(split(name));
        assert.equal(typeof held, 'object', `${name} is held`);
        await metadata.remove(split(name), held as Exclude<NameLookup, string>);
      });
    }

    test(
      'a committed name reads back with its digest and version, its blob with one reference',
      withStore(async (metadata, blobs) => {
        assert.equal(await metadata.read(['a.txt']), 'absent');
        const { dedup, staged } = await write(metadata, blobs, '/a.txt', 'alpha', V + 1);
        assert.equal(dedup, false);
        const held = await metadata.read(['a.txt']);
        assert.equal(typeof held, 'object');
        const record = held as Exclude<NameLookup, string>;
        assert.equal(record.digest, sha256('alpha'));
        assert.equal(record.version, V + 1);
        assert.deepEqual(await metadata.blob(sha256('alpha')), {
          refs: 1,
          logicalSize: 5,
          storedSize: staged.storedSize,
        });
        assert.ok(await blobs.open(sha256('alpha')).then((h) => h?.close().then(() => true)));
      }),
    );

    test(
      "entry: a name with its blob's sizes, a directory, an absent name; looks asked at once each see their own name",
      withStore(async (metadata, blobs) => {
        const { staged } = await write(metadata, blobs, '/d/e.txt', 'epsilon', V + 2);
        const found = await metadata.entry(['d', 'e.txt']);
        assert.equal(typeof found, 'object');
        const { digest, version, sizes } = found as Exclude<typeof found, string>;
        assert.deepEqual(
          { digest, version, sizes },
          {
            digest: sha256('epsilon'),
            version: V + 2,
            sizes: { logicalSize: 7, storedSize: staged.storedSize },
          },
        );
        assert.equal(await metadata.entry(['d']), 'directory');
        assert.equal(await metadata.entry(['nothing']), 'absent');
        assert.equal(await metadata.entry(['d', 'e.txt', 'below']), 'absent');
        // Many looks in one turn (a shared database answers them together), repeats among them.
        for (let i = 0; i < 5; i++)
          await write(metadata, blobs, `/many/f${i}`, `content ${i}`, V + i);
        const asked = Array.from({ length: 300 }, (_, i) => `f${i % 7}`);
        const answers = await Promise.all(asked.map((n) => metadata.entry(['many', n])));
        answers.forEach((answer, i) => {
          const k = i % 7;
          if (k >= 5) return assert.equal(answer, 'absent', asked[i]);
          assert.equal(typeof answer, 'object', asked[i]);
          const { digest, version } = answer as Exclude<typeof answer, string>;
          assert.deepEqual({ digest, version }, { digest: sha256(`content ${k}`), version: V + k });
        });
        // A change committed before a look was asked is what it sees.
        await write(metadata, blobs, '/many/f0', 'replaced', V + 9);
        const after = await metadata.entry(['many', 'f0']);
        assert.equal((after as { digest: string }).digest, sha256('replaced'));
      }),
    );

    test(
      'the same content under a second name is a dedup: one blob, two references',
      withStore(async (metadata, blobs) => {
        await write(metadata, blobs, '/one', 'same');
        const second = await write(metadata, blobs, '/two', 'same');
        assert.equal(second.dedup, true);
        assert.equal((await metadata.blob(sha256('same')))?.refs, 2);
        assert.deepEqual(await all(blobs.digests()), [sha256('same')]);
      }),
    );

    test(
      "replacing a name drops the old blob's reference, and the blob with its last one",
      withStore(async (metadata, blobs, sweep) => {
        await write(metadata, blobs, '/keep', 'old');
        await write(metadata, blobs, '/x', 'old');
        await write(metadata, blobs, '/x', 'new', V + 5);
        assert.equal((await metadata.blob(sha256('old')))?.refs, 1);
        await write(metadata, blobs, '/keep', 'newer', V + 6);
        await sweep();
        assert.equal(await metadata.blob(sha256('old')), undefined);
        assert.equal(await blobs.open(sha256('old')), null);
        assert.deepEqual(
          (await all(blobs.digests())).sort(),
          [sha256('new'), sha256('newer')].sort(),
        );
      }),
    );

    test(
      'rewriting a name with the content it holds changes its version, not its references',
      withStore(async (metadata, blobs) => {
        await write(metadata, blobs, '/same', 'content', V);
        const again = await write(metadata, blobs, '/same', 'content', V + 9);
        assert.equal(again.dedup, false);
        assert.equal(((await metadata.read(['same'])) as { version: number }).version, V + 9);
        assert.equal((await metadata.blob(sha256('content')))?.refs, 1);
      }),
    );

    test(
      'a directory reads as such, and a name in the way of a commit is a 409 that changes nothing',
      withStore(async (metadata, blobs) => {
        await write(metadata, blobs, '/d/f', 'file');
        assert.equal(await metadata.read(['d']), 'directory');
        assert.equal(await metadata.isDirectory(['d']), true);
        assert.equal(await metadata.isDirectory(['d', 'f']), false);
        for (const name of ['/d', '/d/f/g']) {
          await assert.rejects(write(metadata, blobs, name, 'blocked'), (err: Error) => {
            assert.equal((err as { status?: number }).status, 409);
            return true;
          });
        }
        assert.equal(await metadata.blob(sha256('blocked')), undefined);
        assert.deepEqual(await all(blobs.digests()), [sha256('file')]);
        assert.equal(await metadata.read(['d', 'f', 'g']), 'absent');
      }),
    );

    test(
      'remove deletes a name and its blob with the last reference',
      withStore(async (metadata, blobs, sweep) => {
        await write(metadata, blobs, '/r1', 'shared');
        await write(metadata, blobs, '/r2', 'shared');
        await remove(metadata, '/r1');
        await sweep();
        assert.equal(await metadata.read(['r1']), 'absent');
        assert.equal((await metadata.blob(sha256('shared')))?.refs, 1);
        await remove(metadata, '/r2');
        await sweep();
        assert.equal(await metadata.blob(sha256('shared')), undefined);
        assert.equal(await blobs.open(sha256('shared')), null);
      }),
    );

    test(
      'a pinned blob outlives its last reference until unpinned, and can be committed again',
      withStore(async (metadata, blobs, sweep) => {
        assert.equal(await metadata.pin(sha256('nothing')), undefined);
        await write(metadata, blobs, '/p', 'pinned');
        assert.equal((await metadata.pin(sha256('pinned')))?.refs, 1);
        await remove(metadata, '/p');
        assert.notEqual(await blobs.open(sha256('pinned')).then((h) => h?.close()), null);
        // A body verified against the pinned blob, not staged, is committed by reference.
        const verified = await blobs.stage(Readable.from([Buffer.from('pinned')]), {
          gzip: false,
          write: false,
        });
        await metadata.withName('/q', async () => {
          const result = await metadata.commit({
            components: ['q'],
            blob: verified,
            version: V,
            previous: await metadata.read(['q']),
            clearTombstone: false,
          });
          assert.equal(result.dedup, true);
        });
        await metadata.unpin(sha256('pinned'));
        assert.equal((await metadata.blob(sha256('pinned')))?.refs, 1);
        await remove(metadata, '/q');
        await sweep();
        assert.equal(await blobs.open(sha256('pinned')), null, 'gone once unpinned and unnamed');
      }),
    );

    test(
      'withName serializes one name and lets different names run at once',
      withStore(async (metadata) => {
        const events: string[] = [];
        const hold = (name: string, tag: string, ms: number) =>
          metadata.withName(name, async () => {
            events.push(`${tag} in`);
            await new Promise((resolve) => setTimeout(resolve, ms));
            events.push(`${tag} out`);
          });
        // Which of two writers goes first is the store's choice (a shared database's lock
        // goes to whichever transaction asks first), but one waits for the other.
        await Promise.all([hold('/n', 'a', 30), hold('/n', 'b', 1)]);
        const first = events[0] === 'a in' ? 'a' : 'b';
        const second = first === 'a' ? 'b' : 'a';
        assert.deepEqual(events, [`${first} in`, `${first} out`, `${second} in`, `${second} out`]);
        // Different names: each waits inside for the other to be inside too, which only
        // ends if both run at once.
        let inside = 0;
        let bothInside!: () => void;
        const together = new Promise<void>((resolve) => (bothInside = resolve));
        const meet = (name: string) =>
          metadata.withName(name, async () => {
            if (++inside === 2) bothInside();
            let timer: NodeJS.Timeout | undefined;
            const apart = new Promise<never>((_, reject) => {
              timer = setTimeout(() => reject(new Error(`${name} ran alone`)), 5_000);
            });
            try {
              await Promise.race([together, apart]);
            } finally {
              clearTimeout(timer);
            }
          });
        await Promise.all([meet('/m'), meet('/o')]);
      }),
    );

    test(
      'a reader never sees a name absent while it is replaced',
      withStore(async (metadata, blobs) => {
        await write(metadata, blobs, '/hot', 'v0');
        let writing = true;
        const seen = new Set<string>();
        const reader = (async () => {
          while (writing) {
            const held = await metadata.read(['hot']);
            seen.add(typeof held === 'object' ? 'file' : held);
          }
        })();
        for (let i = 1; i <= 20; i++) await write(metadata, blobs, '/hot', `v${i}`, V + i);
        writing = false;
        await reader;
        assert.deepEqual([...seen], ['file']);
      }),
    );

    test(
      'tombstones are kept, listed and removed; a commit can clear one',
      withStore(async (metadata, blobs) => {
        assert.equal(await metadata.tombstone('/t'), undefined);
        await metadata.putTombstone('/t', V);
        await metadata.putTombstone('/u', V + 1);
        assert.equal(await metadata.tombstone('/t'), V);
        assert.deepEqual(await all(metadata.tombstones()), [
          ['/t', V],
          ['/u', V + 1],
        ]);
        await metadata.deleteTombstone('/u');
        await write(metadata, blobs, '/t', 'back', V + 2, true);
        assert.deepEqual(await all(metadata.tombstones()), []);
      }),
    );

    test(
      'list streams the names under a directory up to a cutoff; blobs lists every record',
      withStore(async (metadata, blobs) => {
        await write(metadata, blobs, '/l/a', 'a', V);
        await write(metadata, blobs, '/l/sub/b', 'b', V + 10);
        await write(metadata, blobs, '/other', 'c', V);
        const lines = (cutoff: number) =>
          all(metadata.list(['l'], cutoff)).then((chunks) =>
            chunks.join('').split('\n').filter(Boolean).sort(),
          );
        assert.deepEqual(await lines(V + 10), ['a', 'sub/b']);
        assert.deepEqual(await lines(V), ['a']);
        const records = await all(metadata.blobs());
        assert.deepEqual(
          records.map(([d]) => d).sort(),
          [sha256('a'), sha256('b'), sha256('c')].sort(),
        );
        assert.ok(metadata.isOpen);
      }),
    );
  });
}
