import { existsSync } from 'node:fs';
import path from 'node:path';
import type { LocalStore, ScaleOutStore } from '@filetracker/server';
import {
  openTestScaleOutStore,
  scaleOutMissing,
  startScaleOutEngines,
  type ScaleOutEngines,
} from './scale-out.js';
import { startServer, type TestServer } from './server.js';
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
}

/** A server of a backend and its view. */
export interface BackendServer extends TestServer<LocalStore | ScaleOutStore> {
  view: StoreView;
}

/** A backend a suite runs on (see {@link BACKENDS}). */
export interface Backend {
  name: string;
  /** Why this backend cannot run here (printed as the skip reason), else undefined. */
  skip: string | undefined;
  /** Starts what the backend needs once per suite (engines); `after` calls tearDown. */
  setUp(): Promise<void>;
  tearDown(): Promise<void>;
  /** A server on a fresh, empty store of this backend. */
  start(): Promise<BackendServer>;
}

function localView(dir: string): StoreView {
  return {
    hasBlob: async (digest) => existsSync(path.join(dir, 'blobs', digest.slice(0, 2), digest)),
    blobDigests: async () => (await blobFiles(dir)).map((f) => path.basename(f)).sort(),
    snapshot: () => snapshotStore(dir),
    tmpEntries: () => tmpEntries(dir),
    settle: async () => {},
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
      return [
        ...names.rows.map((r) => `names: ${JSON.stringify(r)}`),
        ...blobs.rows.map((r) => `blobs: ${JSON.stringify(r)}`),
      ];
    },
    tmpEntries: () => tmpEntries(dir),
    settle: async () => {
      await store.metadata.sweep(0);
    },
  };
}

const noScaleOut = await scaleOutMissing();

function scaleOutBackend(): Backend {
  let engines: ScaleOutEngines | undefined;
  return {
    name: 'scale-out: PostgreSQL + S3 (Swift s3api)',
    skip: noScaleOut,
    async setUp() {
      engines = await startScaleOutEngines();
    },
    async tearDown() {
      await engines?.close();
    },
    async start() {
      const ft = await startServer<ScaleOutStore>({
        open: (dir) => openTestScaleOutStore(engines!, dir),
      });
      return { ...ft, view: scaleOutView(ft.store, ft.dir) };
    },
  };
}

const localBackend: Backend = {
  name: 'local',
  skip: undefined,
  setUp: async () => {},
  tearDown: async () => {},
  async start() {
    const ft = await startServer();
    return { ...ft, view: localView(ft.dir) };
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
