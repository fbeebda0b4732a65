import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { BlobStore, StageOptions } from '@filetracker/server';

/** A blob store to test, fresh and empty, and how to dispose of it. */
export interface BlobStoreUnderTest {
  blobs: BlobStore;
  close(): Promise<void>;
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
const body = (data: Buffer): Readable => Readable.from([data]);
const plain = (more: Partial<StageOptions> = {}): StageOptions => ({
  gzip: false,
  write: true,
  ...more,
});

async function all<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/**
 * The contract of the blob port (packages/server/src/store/blob-store.ts), as
 * abstract-level's test suite is for every level store: every implementation passes it.
 * `make` gives a fresh, empty store for each test.
 */
export function blobStoreContract(
  name: string,
  make: () => Promise<BlobStoreUnderTest>,
  options: { skip?: string | undefined } = {},
): void {
  describe(`BlobStore contract: ${name}`, { skip: options.skip ?? false }, () => {
    const withStore = (fn: (blobs: BlobStore) => Promise<void>) => async () => {
      const under = await make();
      try {
        await fn(under.blobs);
      } finally {
        await under.close();
      }
    };

    test(
      'a staged blob is invisible until committed, then opens to the gzip of its content',
      withStore(async (blobs) => {
        const content = Buffer.from('contract content\n'.repeat(100));
        const staged = await blobs.stage(body(content), plain());
        assert.equal(staged.digest, sha256(content));
        assert.equal(staged.logicalSize, content.length);
        assert.equal(staged.receivedBytes, content.length);
        assert.notEqual(staged.location, undefined);
        assert.equal(await blobs.open(staged.digest), null, 'not readable before commit');
        assert.equal(await blobs.has(staged.digest), false);
        assert.deepEqual(await all(blobs.digests()), []);
        await blobs.commit(staged);
        assert.equal(await blobs.has(staged.digest), true);
        const handle = await blobs.open(staged.digest);
        assert.ok(handle);
        const gz = await handle.readFile();
        await handle.close();
        assert.equal(gz.length, staged.storedSize);
        assert.deepEqual(gunzipSync(gz), content);
        assert.deepEqual(await all(blobs.digests()), [staged.digest]);
        assert.deepEqual(await blobs.sizes(staged.digest), {
          logicalSize: content.length,
          storedSize: staged.storedSize,
        });
      }),
    );

    test(
      'a gzip body is stored as it came, and its digest is that of the content',
      withStore(async (blobs) => {
        const content = Buffer.from('zipped by the client');
        const gz = gzipSync(content, { level: 1 });
        const staged = await blobs.stage(body(gz), plain({ gzip: true, bodyLength: gz.length }));
        assert.equal(staged.digest, sha256(content));
        assert.equal(staged.storedSize, gz.length);
        assert.equal(staged.receivedBytes, gz.length);
        assert.notEqual(staged.location, undefined);
        assert.equal(await blobs.open(staged.digest), null, 'not readable before commit');
        assert.deepEqual(await all(blobs.digests()), []);
        await blobs.commit(staged);
        const handle = (await blobs.open(staged.digest))!;
        assert.deepEqual(await handle.readFile(), gz);
        await handle.close();
      }),
    );

    test(
      'a body that is not what its claims say is refused with its 4xx code, and nothing is stored',
      withStore(async (blobs) => {
        const content = Buffer.from('the real content');
        const refusals: [StageOptions, Buffer, string, number][] = [
          [plain({ expectedDigest: '0'.repeat(64) }), content, 'CHECKSUM_MISMATCH', 400],
          [plain({ expectedLogicalSize: 3 }), content, 'SIZE_MISMATCH', 400],
          [plain({ maxLogicalSize: 4 }), content, 'FILE_TOO_LARGE', 413],
          [plain({ gzip: true }), content, 'BAD_GZIP', 400],
          [
            plain({ gzip: true, expectedDigest: '0'.repeat(64) }),
            gzipSync(content),
            'CHECKSUM_MISMATCH',
            400,
          ],
        ];
        // Streamed, and given whole (a Buffer): refused alike.
        for (const given of [body, (data: Buffer): Buffer => data]) {
          for (const [options, data, code, status] of refusals) {
            await assert.rejects(blobs.stage(given(data), options), (err: Error) => {
              assert.equal((err as { code?: string }).code, code);
              assert.equal((err as { status?: number }).status, status);
              return true;
            });
          }
        }
        assert.deepEqual(await all(blobs.digests()), []);
      }),
    );

    test(
      'a body given whole (a Buffer) is staged as the same bytes streamed are',
      withStore(async (blobs) => {
        const text = (bytes: number): Buffer =>
          Buffer.from('0123456789 whole body\n'.repeat(Math.ceil(bytes / 22)).slice(0, bytes));
        // Plain: hashed and gzipped in one call each; past 64 KiB gzipped on the thread
        // pool; past 1 MiB streamed from memory. Gzip: read whole up to 64 KiB, else streamed.
        const plainBodies = [text(1000), text(100 * 1024), text(1024 * 1024 + 1)];
        const cases: [Buffer, StageOptions, Buffer][] = [
          ...plainBodies.map((c): [Buffer, StageOptions, Buffer] => [c, plain(), c]),
          ...[text(3000), text(3 * 1024 * 1024)].map((c): [Buffer, StageOptions, Buffer] => {
            const gz = gzipSync(c, { level: 1 });
            return [gz, plain({ gzip: true, bodyLength: gz.length }), c];
          }),
        ];
        for (const [data, options, content] of cases) {
          const what = `${options.gzip ? 'gzip' : 'plain'} body of ${data.length} bytes`;
          const streamed = await blobs.stage(body(data), options);
          await blobs.discard(streamed);
          const whole = await blobs.stage(data, options);
          assert.equal(whole.digest, sha256(content), what);
          assert.equal(whole.logicalSize, content.length, what);
          assert.equal(whole.receivedBytes, data.length, what);
          assert.equal(whole.digest, streamed.digest, what);
          assert.equal(whole.receivedBytes, streamed.receivedBytes, what);
          assert.notEqual(whole.location, undefined, what);
          assert.equal(await blobs.has(whole.digest), false, `${what}: not before commit`);
          await blobs.commit(whole);
          const handle = (await blobs.open(whole.digest))!;
          const gz = await handle.readFile();
          await handle.close();
          assert.equal(gz.length, whole.storedSize, what);
          assert.deepEqual(gunzipSync(gz), content, what);
          if (options.gzip) assert.deepEqual(gz, data, `${what}: stored as it came`);
        }
        const digests = cases.map(([, , content]) => sha256(content)).sort();
        assert.deepEqual((await all(blobs.digests())).sort(), digests);
      }),
    );

    test(
      'with write false a body is only verified: nothing is staged',
      withStore(async (blobs) => {
        const content = Buffer.from('verified only');
        // Streamed, and given whole (a Buffer: then only hashed).
        for (const given of [body(content), content]) {
          const staged = await blobs.stage(
            given,
            plain({ write: false, expectedDigest: sha256(content) }),
          );
          assert.equal(staged.digest, sha256(content));
          assert.equal(staged.location, undefined);
          await assert.rejects(blobs.commit(staged), TypeError);
          await blobs.discard(staged);
        }
        assert.deepEqual(await all(blobs.digests()), []);
      }),
    );

    test(
      'committing a digest stored already leaves one blob with that content',
      withStore(async (blobs) => {
        const content = Buffer.from('twice');
        await blobs.commit(await blobs.stage(body(content), plain()));
        await blobs.commit(await blobs.stage(body(content), plain()));
        assert.deepEqual(await all(blobs.digests()), [sha256(content)]);
        const handle = (await blobs.open(sha256(content)))!;
        assert.deepEqual(gunzipSync(await handle.readFile()), content);
        await handle.close();
      }),
    );

    test(
      'a discarded staged blob cannot be committed, and discarding twice is no error',
      withStore(async (blobs) => {
        const staged = await blobs.stage(body(Buffer.from('dropped')), plain());
        await blobs.discard(staged);
        await blobs.discard(staged);
        await assert.rejects(blobs.commit(staged));
        assert.equal(await blobs.open(staged.digest), null);
      }),
    );

    test(
      'a small gzip body (read whole) discarded cannot be committed either, and leaves nothing',
      withStore(async (blobs) => {
        const gz = gzipSync(Buffer.from('dropped whole'));
        const options = plain({ gzip: true, bodyLength: gz.length });
        const staged = await blobs.stage(body(gz), options);
        await blobs.discard(staged);
        await blobs.discard(staged);
        await assert.rejects(blobs.commit(staged));
        assert.equal(await blobs.open(staged.digest), null);
        assert.deepEqual(await all(blobs.digests()), []);
        // Two uploads of one content staged at once: each is its own, committed or dropped.
        const [a, b] = await Promise.all([
          blobs.stage(body(gz), options),
          blobs.stage(body(gz), options),
        ]);
        await blobs.commit(a);
        await blobs.discard(b);
        const handle = (await blobs.open(a.digest))!;
        assert.deepEqual(await handle.readFile(), gz);
        await handle.close();
      }),
    );

    test(
      'remove deletes a blob; an open handle still reads it; an unknown digest is no error',
      withStore(async (blobs) => {
        const content = Buffer.from('soon gone '.repeat(1000));
        const staged = await blobs.stage(body(content), plain());
        await blobs.commit(staged);
        const handle = (await blobs.open(staged.digest))!;
        await blobs.remove(staged.digest);
        await blobs.remove(staged.digest);
        await blobs.remove('f'.repeat(64));
        assert.equal(await blobs.open(staged.digest), null);
        assert.equal(await blobs.has(staged.digest), false);
        assert.equal(await blobs.sizes(staged.digest), undefined);
        assert.deepEqual(await all(blobs.digests()), []);
        const gz = Buffer.alloc(staged.storedSize);
        const { bytesRead } = await handle.read(gz, 0, gz.length, 0);
        await handle.close();
        assert.equal(bytesRead, staged.storedSize);
        assert.deepEqual(gunzipSync(gz), content);
      }),
    );

    test(
      'checkWritable resolves on a writable store',
      withStore(async (blobs) => {
        await blobs.checkWritable();
        assert.deepEqual(await all(blobs.digests()), []);
      }),
    );
  });
}
