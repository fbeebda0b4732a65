import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnTracked, stopChild } from './lifecycle.js';
import { waitForListeningLine, type Running } from './proc.js';

/** The repository root (bench/dist/ is two levels below it). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export const BINS = {
  server: path.join(REPO_ROOT, 'packages/server/bin/ft-server.mjs'),
  legacy: path.join(REPO_ROOT, 'packages/legacy-static/bin/ft-legacy-static.mjs'),
  migrate: path.join(REPO_ROOT, 'packages/migrate/bin/ft-migrate.mjs'),
};

/**
 * The node flags a bin's `#!/usr/bin/env -S node FLAGS` line gives it: npm's and pnpm's
 * shims pass them, so the bench runs the bin with them too, as a user gets it.
 */
export function shebangFlags(bin: string): string[] {
  const first = readFileSync(bin, 'utf8').split('\n', 1)[0]!;
  const flags = /^#!\/usr\/bin\/env -S node\s(.*)$/.exec(first)?.[1];
  return flags?.trim().split(/\s+/) ?? [];
}

async function startNode(
  bin: string,
  args: string[],
  logFile: string,
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<Running> {
  const child = spawnTracked(process.execPath, [bin, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: options.env ?? process.env,
  });
  try {
    const url = await waitForListeningLine(child, logFile, options.timeoutMs);
    return { child, pid: child.pid!, url, stop: () => stopChild(child) };
  } catch (err) {
    await stopChild(child);
    throw new Error(`${path.basename(bin)} did not start: ${(err as Error).message}`);
  }
}

/**
 * `ft-server -d DIR -p 0 -L LOG` as deployed: a log line per request at the default
 * level, written to a file.
 */
export function startFtServer(dir: string, logFile: string): Promise<Running> {
  return startNode(BINS.server, ['-d', dir, '-p', '0', '-L', logFile], logFile);
}

/**
 * `ft-server -d DIR -p 0 -L LOG ...flags` on the scale-out backend (`--db`, `--blobs`, ...),
 * with `env` (the object store's credentials). Opening the schema and the bucket takes
 * seconds on a busy machine: it may take 60 s to listen.
 */
export function startScaleOutFtServer(
  dir: string,
  logFile: string,
  flags: string[],
  env: NodeJS.ProcessEnv,
): Promise<Running> {
  return startNode(BINS.server, ['-d', dir, '-p', '0', '-L', logFile, ...flags], logFile, {
    env: { ...process.env, ...env },
    timeoutMs: 60_000,
  });
}

/** `ft-legacy-static --root FT_ROOT --port 0 --host 127.0.0.1 -L LOG`. */
export function startLegacyStatic(ftRoot: string, logFile: string): Promise<Running> {
  return startNode(
    BINS.legacy,
    ['--root', ftRoot, '--port', '0', '--host', '127.0.0.1', '-L', logFile],
    logFile,
  );
}
