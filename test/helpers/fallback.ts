import { mkdir, rm, utimes, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { formatHttpDate } from '@filetracker/shared-protocol';
import type { Backend, BackendServer, ProcessStore, StartOptions } from './backends.js';
import { startProcess, tempDir, type RunningProcess } from './server.js';

// The set-ups of the migration-mode suites: a 1.x tree behind ft-legacy-static, a server
// of a backend in front of it (--fallback-url), and fallbacks that misbehave.

export const SERVER_BIN = 'packages/server/bin/ft-server.mjs';
export const LEGACY_BIN = 'packages/legacy-static/bin/ft-legacy-static.mjs';

/** The mtime (so the version) of a legacy file unless said otherwise. */
export const LEGACY_MTIME = 1_500_000_000;

/** `?last_modified=` for `version`, as a client sends it. */
export function versionQuery(version: number): string {
  return '?last_modified=' + encodeURIComponent(formatHttpDate(version));
}

/** A legacy file's content, or its content and mtime. */
export type LegacyContent = string | { content: string | Buffer; mtime: number };

/** A 1.x tree: `root`/files/{name}, version = mtime (LEGACY_MTIME unless given). */
export async function writeLegacyTree(
  root: string,
  files: Record<string, LegacyContent>,
): Promise<void> {
  for (const [name, file] of Object.entries(files)) {
    const { content, mtime } =
      typeof file === 'string' ? { content: file, mtime: LEGACY_MTIME } : file;
    const p = path.join(root, 'files', ...name.split('/').filter(Boolean));
    await mkdir(path.dirname(p), { recursive: true });
    await writeFile(p, content);
    await utimes(p, mtime, mtime);
  }
}

/** ft-legacy-static serving the 1.x tree `root`, as a real process. */
export function serveLegacy(root: string, port = 0): Promise<RunningProcess> {
  return startProcess(LEGACY_BIN, ['--root', root, '--port', String(port)]);
}

/** A server of a backend in front of ft-legacy-static on a 1.x tree. */
export interface MigrationSetUp {
  /** The tree's ft_root (files/ inside). */
  root: string;
  legacy: RunningProcess;
  server: BackendServer;
  /** Stops both and removes the tree. */
  close(): Promise<void>;
}

/** A 1.x tree of `files`, ft-legacy-static on it, and a fresh server of `backend` in front. */
export async function startBehindLegacy(
  backend: Backend,
  files: Record<string, LegacyContent>,
  options: Omit<StartOptions, 'fallbackUrl'> = {},
): Promise<MigrationSetUp> {
  const root = await tempDir('ft-legacy-');
  await writeLegacyTree(root, files);
  const legacy = await serveLegacy(root);
  const server = await backend.start({ ...options, fallbackUrl: legacy.url });
  return {
    root,
    legacy,
    server,
    async close() {
      await server.close();
      await legacy.stop();
      await rm(root, { recursive: true, force: true });
    },
  };
}

/**
 * A fallback answering every request with `handler` (by default none: a hung server that
 * accepts connections and never answers); its sockets are destroyed on close.
 */
export async function fakeFallback(
  handler: (req: IncomingMessage, res: ServerResponse) => void = () => {},
): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer(handler);
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      });
      return closing;
    },
  };
}

/** The URL of a port nobody listens on (bound, noted, closed). */
export async function closedPortUrl(): Promise<string> {
  const gone = await fakeFallback();
  await gone.close();
  return gone.url;
}

/** The processes started on each store, stopped before the store is removed. */
const running = new WeakMap<ProcessStore, RunningProcess[]>();

/**
 * An ft-server process on `store` (from {@link processStore}) with `args` besides, on a
 * free port; SIGKILLed after the test unless stopped before. Given up to 60 s to start:
 * on a loaded machine, opening a scale-out store (the schema, the bucket) alone has taken
 * over 15 s (as in serveScaleOut).
 */
export async function serverProcess(
  t: TestContext,
  store: ProcessStore,
  args: string[] = [],
): Promise<RunningProcess> {
  const argv = [...store.args, '-p', '0', ...args];
  const proc = await startProcess(SERVER_BIN, argv, store.env, [], 60_000);
  running.get(store)?.push(proc);
  t.after(() => proc.stop('SIGKILL'));
  return proc;
}

/**
 * A fresh ProcessStore of `backend`, removed after the test once every process
 * {@link serverProcess} started on it has stopped (a test's `after` hooks run in order).
 */
export async function processStore(t: TestContext, backend: Backend): Promise<ProcessStore> {
  const store = await backend.processStore();
  running.set(store, []);
  t.after(async () => {
    await Promise.all(running.get(store)!.map((p) => p.stop('SIGKILL')));
    await store.remove();
  });
  return store;
}
