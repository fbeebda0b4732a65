import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';
import { openScaleOutStore, type ScaleOutStore } from '@filetracker/server';
import { postgresForTest, postgresMissing, type PostgresEngine } from './postgres.js';
import { listeningUrl, spawnBin, type Spawned } from './store-traffic.js';
import {
  SWIFT_S3_CREDENTIALS,
  SWIFT_S3_REGION,
  swiftForTest,
  swiftMissing,
  type SwiftEngine,
} from './swift.js';

/** PostgreSQL and Swift, started together for the tests of the scale-out backend. */
export interface ScaleOutEngines {
  postgres: PostgresEngine;
  swift: SwiftEngine;
  /** Stops both and removes their temp dirs (a shared one keeps running). Idempotent. */
  close(): Promise<void>;
}

/** Why the scale-out backend cannot be tested here (an engine missing), or undefined. */
export async function scaleOutMissing(): Promise<string | undefined> {
  return (await postgresMissing()) ?? (await swiftMissing());
}

/**
 * PostgreSQL and Swift for a test file: the suite's shared ones where test/run-suite.ts
 * started them (FT_TEST_PG_URL, FT_TEST_SWIFT_ENDPOINT), else private ones in temp dirs.
 * close() stops the private ones and leaves the shared ones running; a test that stops an
 * engine starts a private one of its own (startPostgres, startSwift).
 */
export async function startScaleOutEngines(): Promise<ScaleOutEngines> {
  const [pg, sw] = await Promise.allSettled([postgresForTest(), swiftForTest()]);
  if (pg.status === 'rejected' || sw.status === 'rejected') {
    await Promise.all([
      pg.status === 'fulfilled' && pg.value.close(),
      sw.status === 'fulfilled' && sw.value.close(),
    ]);
    throw pg.status === 'rejected' ? pg.reason : (sw as PromiseRejectedResult).reason;
  }
  const postgres = pg.value;
  const swift = sw.value;
  let closing: Promise<void> | undefined;
  return {
    postgres,
    swift,
    close() {
      closing ??= Promise.all([postgres.close(), swift.close()]).then(() => {});
      return closing;
    },
  };
}

let buckets = 0;
/** Unique across the processes of a suite run on one shared Swift (pids are reused). */
const BUCKET_PREFIX = `ft-test-${process.pid}-${randomBytes(4).toString('hex')}-`;

/** A bucket name no other test of the suite run uses (the store creates it). */
export function freshBucket(): string {
  return `${BUCKET_PREFIX}${++buckets}`;
}

/** The environment an ft-server process needs to reach Swift's S3 API. */
export const SWIFT_S3_ENV: NodeJS.ProcessEnv = {
  AWS_ACCESS_KEY_ID: SWIFT_S3_CREDENTIALS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: SWIFT_S3_CREDENTIALS.secretAccessKey,
  AWS_REGION: SWIFT_S3_REGION,
};

/** ft-server's flags for one store: `db` and `bucket` on the engines. */
export function scaleOutArgs(engines: ScaleOutEngines, db: string, bucket: string): string[] {
  return ['--db', db, '--blobs', `s3://${bucket}`, '--s3-endpoint', engines.swift.endpoint];
}

/** Where one test store of the scale-out backend lives: a database and a bucket. */
export interface ScaleOutLocation {
  db: string;
  bucket: string;
}

/** A fresh database and bucket name on the engines (the store creates the bucket). */
export async function freshScaleOutLocation(engines: ScaleOutEngines): Promise<ScaleOutLocation> {
  return { db: await engines.postgres.createDatabase(), bucket: freshBucket() };
}

/**
 * A scale-out store in-process, on `at` (default: a fresh database and bucket); uploads
 * verified in `dir`.
 */
export async function openTestScaleOutStore(
  engines: ScaleOutEngines,
  dir: string,
  at?: ScaleOutLocation,
  poolSize = 8,
): Promise<ScaleOutStore> {
  const { db, bucket } = at ?? (await freshScaleOutLocation(engines));
  return openScaleOutStore({
    db,
    bucket: { bucket, prefix: '' },
    s3Endpoint: engines.swift.endpoint,
    s3Credentials: SWIFT_S3_CREDENTIALS,
    s3Region: SWIFT_S3_REGION,
    dir,
    poolSize,
  });
}

/** An ft-server process serving a scale-out store, and its URL. */
export interface ScaleOutServer {
  url: string;
  proc: Spawned;
}

/**
 * `ft-server -p 0 ...args` with Swift's S3 credentials, stopped (SIGKILL if still alive)
 * when the test ends. Under the load of several test runs, opening the bucket and the
 * schema takes seconds.
 */
export async function serveScaleOut(t: TestContext, args: string[]): Promise<ScaleOutServer> {
  const proc = spawnBin('packages/server/bin/ft-server.mjs', ['-p', '0', ...args], {
    env: { ...process.env, ...SWIFT_S3_ENV },
  });
  t.after(() => proc.kill());
  const url = await listeningUrl(() => proc.stdoutLines, proc, 60_000);
  return { url, proc };
}
