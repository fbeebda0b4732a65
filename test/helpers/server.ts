import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import {
  FallbackProbe,
  createRequestListener,
  openStore,
  type LocalStore,
  type LocalStoreOptions,
  type Store,
} from '@filetracker/server';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** A fresh temp dir; the caller removes it (or use {@link startServer}, which does). */
export function tempDir(prefix = 'ft-test-'): Promise<string> {
  return mkdtemp(path.join(tmpdir(), prefix));
}

export interface TestServer<S extends Store = LocalStore> {
  url: string;
  port: number;
  /** The store directory (for a scale-out store: its uploads being verified, ft-tmp/). */
  dir: string;
  store: S;
  server: Server;
  /** Stops listening, closes the store and removes the dir unless it was given. */
  close(): Promise<void>;
}

/**
 * Starts the app in-process on 127.0.0.1, port 0, over a store in a temp dir: the local
 * store, or the one `open` makes with that dir (a scale-out store, see backends.ts).
 */
export async function startServer<S extends Store = LocalStore>(
  options: {
    dir?: string;
    /** Opens the store for the dir instead of the local store. */
    open?: (dir: string) => Promise<S>;
    fallbackUrl?: string;
    fallbackTimeoutMs?: number;
    /** How often the fallback is probed (default: the server's). */
    fallbackProbeIntervalMs?: number;
    store?: LocalStoreOptions;
  } = {},
): Promise<TestServer<S>> {
  const dir = options.dir ?? (await tempDir());
  const store = options.open
    ? await options.open(dir)
    : ((await openStore(dir, options.store)) as unknown as S);
  const fallbackProbe =
    options.fallbackUrl === undefined
      ? undefined
      : new FallbackProbe(options.fallbackUrl, {
          ...(options.fallbackTimeoutMs !== undefined && { timeoutMs: options.fallbackTimeoutMs }),
          ...(options.fallbackProbeIntervalMs !== undefined && {
            intervalMs: options.fallbackProbeIntervalMs,
          }),
        });
  const server = createServer(
    createRequestListener(store, {
      fallbackUrl: options.fallbackUrl,
      fallbackProbe,
      ...(options.fallbackTimeoutMs !== undefined && {
        fallbackTimeoutMs: options.fallbackTimeoutMs,
      }),
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    dir,
    store,
    server,
    close() {
      closing ??= (async () => {
        server.closeAllConnections();
        await Promise.all([
          new Promise<void>((resolve) => server.close(() => resolve())),
          fallbackProbe?.close(),
        ]);
        await store.close();
        if (!options.dir) await rm(dir, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}

export interface RunningProcess {
  child: ChildProcess;
  /** From the "listening" log line. */
  url: string;
  /** Every stdout line so far. */
  lines: string[];
  /** What it wrote to stderr so far. */
  stderr(): string;
  /** Sends SIGTERM (or `signal`) and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

/**
 * Spawns a bin of this repo (e.g. `packages/server/bin/ft-server.mjs`) and waits for its
 * `listening` JSON log line on stdout. Rejects if it exits first or takes over
 * `startTimeoutMs` (15 s). `wrapper` runs node under another program (e.g.
 * `['strace', '-f', ...]`): `child` is then that program, which must pass stdout through and
 * exit with node.
 */
export async function startProcess(
  bin: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
  wrapper: string[] = [],
  startTimeoutMs = 15_000,
): Promise<RunningProcess> {
  const command = [...wrapper, process.execPath, path.join(REPO_ROOT, bin), ...args];
  const child = spawn(command[0]!, command.slice(1), {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${bin} did not start in ${startTimeoutMs / 1000} s: ${stderr}`));
    }, startTimeoutMs);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      lines.push(line);
      try {
        const rec = JSON.parse(line) as { msg?: string; url?: string };
        if (rec.msg === 'listening' && rec.url) {
          clearTimeout(timer);
          resolve(rec.url);
        }
      } catch {
        // not JSON: ignore
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${bin} exited with ${code} before listening: ${stderr}`));
    });
  });
  return {
    child,
    url,
    lines,
    stderr: () => stderr,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
