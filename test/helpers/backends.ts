import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { rm, stat, truncate } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import type { LocalStore, S3BlobStore, ScaleOutStore, Store } from '@filetracker/server';
import {
  SWIFT_S3_ENV,
  freshScaleOutLocation,
  openTestScaleOutStore,
  scaleOutArgs,
  scaleOutMissing,
  startScaleOutEngines,
  type ScaleOutEngines,
  type ScaleOutLocation,
} from './scale-out.js';
import { startServer, tempDir, type TestServer } from './server.js';
import { blobFiles, snapshotStore, tmpEntries } from './server-store.js';

/**
 * What a suite may look at behind the HTTP interface of a server it started, the same on
 * every backend: its blobs, and a snapshot of everything a client could observe.
 */
export interface StoreView {
  /** Whether the blob of `digest` is stored. */
  hasBlob(digest: string): Promise<boolean>;
  /** The digests of every blob stored, sorted. */
  blobDigests(): Promise<string[]>;
  /** Names, their versions and blobs; equal snapshots: nothing a client sees has changed. */
  snapshot(): Promise<string[]>;
  /** Uploads in flight (the local `ft-tmp/`, where every backend verifies bodies). */
  tmpEntries(): Promise<string[]>;
  /**
   * Lets the store finish removing what no name uses any more: nothing to do locally (a
   * blob goes with its last name); on the scale-out backend, a sweep with no grace period.
   */
  settle(): Promise<void>;
  /**
   * Cuts the stored blob of `digest` to half its stored size behind the server's back (a
   * bad disk, a careless operator); returns the stored size it had.
   */
  damageBlob(digest: string): Promise<number>;
}

/** The migration-mode options of a server a suite starts (see startServer). */
export interface StartOptions {
  fallbackUrl?: string;
  fallbackTimeoutMs?: number;
  fallbackProbeIntervalMs?: number;
}

/** A server of a backend and its view. */
export interface BackendServer extends TestServer<LocalStore | ScaleOutStore> {
  view: StoreView;
  /** Stops this server and starts another on the same store, with `options`. */
  restart(options?: StartOptions): Promise<BackendServer>;
}

/**
 * A fresh, empty store of a backend for `ft-server` processes the suite starts itself:
 * the flags and environment that name it (the same for every process and restart), and a
 * view of it opened in the test process.
 */
export interface ProcessStore {
  /** ft-server's flags for this store: `-d DIR`, or `--db`, `--blobs`, `--s3-endpoint`, `-d`. */
  args: string[];
  env: NodeJS.ProcessEnv;
  view(): Promise<StoreView>;
  /** Closes the view and removes the store's temp dir. */
  remove(): Promise<void>;
}

/** A backend a suite runs on (see {@link BACKENDS}). */
export interface Backend {
  name: string;
  /** Why this backend cannot run here (printed as the skip reason), else undefined. */
  skip: string | undefined;
  /** Starts what the backend needs once per suite (engines); `after` calls tearDown. */
  setUp(): Promise<void>;
  tearDown(): Promise<void>;
  /** A server (in this process) on a fresh, empty store of this backend. */
  start(options?: StartOptions): Promise<BackendServer>;
  /** A fresh, empty store for ft-server processes. */
  processStore(): Promise<ProcessStore>;
}

/** Where a server's store lives, so a restart finds it again. */
interface StoreTarget<S extends Store> {
  dir: string;
  open?: (dir: string) => Promise<S>;
  view(store: S): StoreView;
  /** Removes what is left of the store once its last server closed. */
  remove(): Promise<void>;
}

async function startOn<S extends LocalStore | ScaleOutStore>(
  target: StoreTarget<S>,
  options: StartOptions,
): Promise<BackendServer> {
  const ft = await startServer<S>({
    dir: target.dir,
    ...(target.open && { open: target.open }),
    ...options,
  });
  let restarted = false;
  return {
    ...ft,
    view: target.view(ft.store),
    async close() {
      await ft.close();
      if (!restarted) await target.remove();
    },
    async restart(next = {}) {
      restarted = true;
      await ft.close();
      return startOn(target, next);
    },
  };
}

/**
 * The S3 SDK's PutObjectCommand, from the server's own dependency (the tests do not depend
 * on the SDK themselves): to damage a blob in the bucket through the S3 API the store uses.
 */
const { PutObjectCommand } = createRequire(import.meta.resolve('@filetracker/server'))(
  '@aws-sdk/client-s3',
) as { PutObjectCommand: new (input: { Bucket: string; Key: string; Body: Buffer }) => never };

/** Cuts a file to half its size; returns the size it had. */
async function halve(file: string): Promise<number> {
  const { size } = await stat(file);
  await truncate(file, Math.floor(size / 2));
  return size;
}

function localView(dir: string): StoreView {
  return {
    hasBlob: async (digest) => existsSync(path.join(dir, 'blobs', digest.slice(0, 2), digest)),
    blobDigests: async () => (await blobFiles(dir)).map((f) => path.basename(f)).sort(),
    snapshot: () => snapshotStore(dir),
    tmpEntries: () => tmpEntries(dir),
    settle: async () => {},
    damageBlob: (digest) => halve(path.join(dir, 'blobs', digest.slice(0, 2), digest)),
  };
}

/**
 * The scale-out store's view: names and blob records read from the database, each blob
 * asked of the bucket itself (a HEAD: Swift's listings may lag writes, ENGINES.md).
 */
function scaleOutView(store: ScaleOutStore, dir: string): StoreView {
  const { pool } = store.metadata;
  const digests = async (): Promise<string[]> =>
    (await pool.query<{ digest: string }>('SELECT digest FROM blobs ORDER BY digest')).rows.map(
      (r) => r.digest,
    );
  return {
    hasBlob: (digest) => store.blobs.has(digest),
    async blobDigests() {
      const all = await digests();
      const present = await Promise.all(all.map((d) => store.blobs.has(d)));
      return all.filter((_, i) => present[i]);
    },
    async snapshot() {
      const names = await pool.query<{ name: string; kind: string; digest: string | null }>(
        `SELECT name, kind, digest, version FROM names ORDER BY name`,
      );
      const blobs = await pool.query<Record<string, string>>(
        'SELECT digest, refs, logical_size, stored_size FROM blobs ORDER BY digest',
      );
      const tombstones = await pool.query<Record<string, string>>(
        'SELECT name, version FROM tombstones ORDER BY name',
      );
      return [
        ...names.rows.map((r) => `names: ${JSON.stringify(r)}`),
        ...blobs.rows.map((r) => `blobs: ${JSON.stringify(r)}`),
        ...tombstones.rows.map((r) => `tombstones: ${JSON.stringify(r)}`),
      ];
    },
    tmpEntries: () => tmpEntries(dir),
    settle: async () => {
      await store.metadata.sweep(0);
    },
    async damageBlob(digest) {
      const handle = await store.blobs.open(digest);
      assert.ok(handle, `blob ${digest} stored`);
      const stored = await handle.readFile();
      await handle.close();
      const blobs = store.blobs as S3BlobStore;
      await blobs.client.send(
        new PutObjectCommand({
          Bucket: blobs.bucket,
          Key: blobs.key(digest),
          Body: stored.subarray(0, stored.length >> 1),
        }),
      );
      return stored.length;
    },
  };
}

const noScaleOut = await scaleOutMissing();

function scaleOutBackend(): Backend {
  let engines: ScaleOutEngines | undefined;
  const target = async (
    dir: string,
    at: ScaleOutLocation,
    cleanup: () => Promise<void> = async () => {},
  ): Promise<StoreTarget<ScaleOutStore>> => ({
    dir,
    open: (d) => openTestScaleOutStore(engines!, d, at),
    view: (store) => scaleOutView(store, dir),
    async remove() {
      await cleanup();
      await rm(dir, { recursive: true, force: true });
    },
  });
  return {
    name: 'scale-out: PostgreSQL + S3 (Swift s3api)',
    skip: noScaleOut,
    async setUp() {
      engines = await startScaleOutEngines();
    },
    async tearDown() {
      await engines?.close();
    },
    async start(options = {}) {
      const at = await freshScaleOutLocation(engines!);
      return startOn(await target(await tempDir(), at), options);
    },
    async processStore() {
      const at = await freshScaleOutLocation(engines!);
      const dir = await tempDir();
      let viewing: Promise<ScaleOutStore> | undefined;
      return {
        args: [...scaleOutArgs(engines!, at.db, at.bucket), '-d', dir],
        env: SWIFT_S3_ENV,
        async view() {
          // A store of its own on the same database and bucket, in its own upload dir.
          viewing ??= tempDir().then((d) => openTestScaleOutStore(engines!, d, at));
          return scaleOutView(await viewing, dir);
        },
        async remove() {
          if (viewing) {
            const store = await viewing;
            await store.close();
            await rm(store.layout.root, { recursive: true, force: true });
          }
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
  };
}

const localBackend: Backend = {
  name: 'local',
  skip: undefined,
  setUp: async () => {},
  tearDown: async () => {},
  async start(options = {}) {
    const dir = await tempDir();
    return startOn<LocalStore>(
      { dir, view: () => localView(dir), remove: () => rm(dir, { recursive: true, force: true }) },
      options,
    );
  },
  async processStore() {
    const dir = await tempDir();
    return {
      args: ['-d', dir],
      env: {},
      view: async () => localView(dir),
      remove: () => rm(dir, { recursive: true, force: true }),
    };
  },
};

/**
 * The backends a backend-neutral suite loops over: the local store, and the scale-out
 * store (skipped, with the reason printed, where PostgreSQL or Swift is not installed).
 * FT_TEST_BACKENDS=local (or scale-out) runs one of them only.
 */
export const BACKENDS: readonly Backend[] = [localBackend, scaleOutBackend()].filter(
  (b) =>
    process.env.FT_TEST_BACKENDS === undefined ||
    process.env.FT_TEST_BACKENDS.split(',').some((want) => b.name.startsWith(want.trim())),
);

/**
 * `describe(title (backend name))` once per backend of {@link BACKENDS}, skipped with the
 * reason where it cannot run, its engines started once before `suite`'s tests and stopped
 * after them: `suite` declares the tests (and starts its servers with `backend.start`).
 */
export function describeEachBackend(title: string, suite: (backend: Backend) => void): void {
  for (const backend of BACKENDS) {
    describe(`${title} (${backend.name})`, { skip: backend.skip }, () => {
      before(() => backend.setUp());
      after(() => backend.tearDown());
      suite(backend);
    });
  }
}
