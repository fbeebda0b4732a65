import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import {
  DirSync,
  EngineMetrics,
  LocalBlobStore,
  PgMetadataStore,
  S3BlobStore,
  storeLayout,
  type BlobStore,
} from '@filetracker/server';
import { blobStoreContract } from './contract/blob-store.js';
import { metadataStoreContract, type MetadataStoreUnderTest } from './contract/metadata-store.js';
import { postgresForTest, postgresMissing, type PostgresEngine } from './helpers/postgres.js';
import { freshBucket } from './helpers/scale-out.js';
import { tempDir } from './helpers/server.js';
import {
  SWIFT_S3_CREDENTIALS,
  SWIFT_S3_REGION,
  swiftForTest,
  swiftMissing,
  type SwiftEngine,
} from './helpers/swift.js';

// The scale-out ports against the real engines (PostgreSQL 15, Swift 2.30 with s3api): the
// suite's shared ones, or started once for this file in temp dirs; without them installed,
// these skip and say why.
const noPostgres = await postgresMissing();
const noSwift = await swiftMissing();

let postgres: PostgresEngine | undefined;
let swift: SwiftEngine | undefined;

/** A bucket of its own (created by the store) and a local dir for bodies being verified. */
async function s3Store(prefix?: string): Promise<{ blobs: S3BlobStore; close(): Promise<void> }> {
  const tmpDir = await tempDir('ft-s3-tmp-');
  const blobs = await S3BlobStore.open({
    bucket: freshBucket(),
    prefix,
    endpoint: swift!.endpoint,
    region: SWIFT_S3_REGION,
    credentials: SWIFT_S3_CREDENTIALS,
    tmpDir,
  });
  return {
    blobs,
    async close() {
      blobs.close();
      await rm(tmpDir, { recursive: true, force: true });
    },
  };
}

/** A fresh database's metadata store over `blobs`; sweeps with no grace period. */
async function pgStore(
  blobs: BlobStore,
  closeBlobs: () => Promise<void>,
): Promise<MetadataStoreUnderTest> {
  const metadata = await PgMetadataStore.open({
    url: await postgres!.createDatabase(),
    blobs,
    poolSize: 8,
  });
  return {
    metadata,
    blobs,
    sweep: async () => {
      await metadata.sweep(0);
    },
    async close() {
      await metadata.close();
      await closeBlobs();
    },
  };
}

describe('store ports on real engines', () => {
  before(async () => {
    [postgres, swift] = await Promise.all([
      noPostgres ? undefined : postgresForTest(),
      noSwift ? undefined : swiftForTest(),
    ]);
  });
  after(async () => {
    await Promise.all([postgres?.close(), swift?.close()]);
  });

  blobStoreContract('S3 (Swift s3api)', () => s3Store(), { skip: noSwift });
  blobStoreContract('S3 (Swift s3api) under a key prefix', () => s3Store('ft/blobs-of-test'), {
    skip: noSwift,
  });

  metadataStoreContract(
    'PostgreSQL over S3 (Swift s3api)',
    async () => {
      const s3 = await s3Store('pfx');
      return pgStore(s3.blobs, () => s3.close());
    },
    { skip: noPostgres ?? noSwift },
  );

  metadataStoreContract(
    'PostgreSQL over local blobs/',
    async () => {
      const root = await tempDir('ft-pg-local-');
      const layout = storeLayout(root);
      await Promise.all([layout.blobs, layout.tmp].map((d) => mkdir(d)));
      const blobs = new LocalBlobStore(layout, new DirSync());
      return pgStore(blobs, () => rm(path.resolve(root), { recursive: true, force: true }));
    },
    { skip: noPostgres },
  );

  test(
    'looks asked together go in shared statements, at most 256 names each, each answered',
    { skip: noPostgres },
    async () => {
      const root = await tempDir('ft-pg-lookups-');
      const layout = storeLayout(root);
      await Promise.all([layout.blobs, layout.tmp].map((d) => mkdir(d)));
      const blobs = new LocalBlobStore(layout, new DirSync());
      const metrics = new EngineMetrics();
      const registry = new Registry();
      metrics.register(registry);
      const counted = async (): Promise<{ statements: number; names: number }> => {
        const value = async (name: string): Promise<number> =>
          (await registry.getSingleMetric(name)!.get()).values[0]!.value;
        return {
          statements: await value('ft_db_name_lookup_statements_total'),
          names: await value('ft_db_name_lookups_total'),
        };
      };
      const metadata = await PgMetadataStore.open({
        url: await postgres!.createDatabase(),
        blobs,
        poolSize: 4,
        metrics,
      });
      try {
        const staged = await blobs.stage(Readable.from([Buffer.from('shared')]), {
          gzip: false,
          write: true,
        });
        await metadata.withName('/held', async () =>
          metadata.commit({
            components: ['held'],
            blob: staged,
            version: 1_700_000_000,
            previous: 'absent',
            clearTombstone: false,
          }),
        );
        const before = await counted();
        // 300 different names asked in one turn of the event loop: two statements (256 + 44).
        const names = Array.from({ length: 300 }, (_, i) => (i === 150 ? 'held' : `n${i}`));
        const answers = await Promise.all(names.map((n) => metadata.entry([n])));
        answers.forEach((a, i) =>
          i === 150
            ? assert.equal((a as { version: number }).version, 1_700_000_000)
            : assert.equal(a, 'absent'),
        );
        const after = await counted();
        assert.deepEqual(
          { statements: after.statements - before.statements, names: after.names - before.names },
          { statements: 2, names: 300 },
        );
        // Alone, a look goes at once, in a statement of its own.
        assert.equal(typeof (await metadata.entry(['held'])), 'object');
        assert.equal((await counted()).statements, after.statements + 1);
      } finally {
        await metadata.close();
        await rm(path.resolve(root), { recursive: true, force: true });
      }
    },
  );
});
