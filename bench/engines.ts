import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as PostgresHelpers from '../test/helpers/postgres.js';
import type * as SwiftHelpers from '../test/helpers/swift.js';
import { atCleanup } from './lifecycle.js';
import { REPO_ROOT } from './servers.js';

/**
 * The real engines of the scale-out section: PostgreSQL 15 and Swift, started by the test
 * helpers' starters (test/helpers/postgres.ts, swift.ts), compiled to test/dist/helpers/
 * by the same `tsc -b` that builds the bench and loaded from there by path, as the bench
 * runs every other compiled program (the bins, bench/dist/child/). The types come from the
 * test project (a reference in bench/tsconfig.json), so a changed starter fails the build.
 */

export type PostgresEngine = PostgresHelpers.PostgresEngine;
export type SwiftEngine = SwiftHelpers.SwiftEngine;

async function load<T>(relative: string): Promise<T> {
  return (await import(pathToFileURL(path.join(REPO_ROOT, relative)).href)) as T;
}

const helpers = async (): Promise<{ pg: typeof PostgresHelpers; swift: typeof SwiftHelpers }> => ({
  pg: await load<typeof PostgresHelpers>('test/dist/helpers/postgres.js'),
  swift: await load<typeof SwiftHelpers>('test/dist/helpers/swift.js'),
});

/** Why the engines cannot be started here (the helpers' own reasons), or undefined. */
export async function enginesMissing(): Promise<string | undefined> {
  let h: Awaited<ReturnType<typeof helpers>>;
  try {
    h = await helpers();
  } catch (err) {
    return `the engine starters (test/dist/helpers/) did not load: ${(err as Error).message}`;
  }
  return (await h.pg.postgresMissing()) ?? (await h.swift.swiftMissing());
}

/** Both engines, and the S3 credentials of Swift's one user. */
export interface Engines {
  postgres: PostgresEngine;
  swift: SwiftEngine;
  credentials: { accessKeyId: string; secretAccessKey: string };
  region: string;
  /** Stops both and removes their temp dirs (also done by the bench's cleanup). */
  close(): Promise<void>;
}

/** Starts PostgreSQL and Swift side by side; both are stopped by cleanup() whatever happens. */
export async function startEngines(): Promise<Engines> {
  const h = await helpers();
  const [pg, sw] = await Promise.allSettled([h.pg.startPostgres(), h.swift.startSwift()]);
  const started = [pg, sw].flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const close = atCleanup(async () => {
    await Promise.all(started.map((e) => e.close()));
  });
  if (pg.status === 'rejected' || sw.status === 'rejected') {
    await close();
    throw pg.status === 'rejected' ? pg.reason : (sw as PromiseRejectedResult).reason;
  }
  return {
    postgres: pg.value,
    swift: sw.value,
    credentials: h.swift.SWIFT_S3_CREDENTIALS,
    region: h.swift.SWIFT_S3_REGION,
    close,
  };
}

/**
 * A module among ft-server's dependencies (the S3 SDK, pg), for the bare calls the section
 * times with the same clients ft-server uses; the bench itself has no dependencies.
 */
export async function serverDependency<T>(name: string): Promise<T> {
  const require = createRequire(path.join(REPO_ROOT, 'packages/server/package.json'));
  const mod = (await import(pathToFileURL(require.resolve(name)).href)) as { default?: T };
  return (mod.default ?? mod) as T;
}
