import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * Everything the bench starts or creates, so that it is all stopped and removed at the
 * end, on an error, and on Ctrl-C (the issue: "every process the bench starts is stopped,
 * temp dirs removed").
 */
const children = new Set<ChildProcess>();
const dirs = new Set<string>();
/** Things started other than by {@link spawnTracked} (the engines), stopped by {@link cleanup}. */
const stoppers = new Set<() => Promise<void>>();
let cleaning: Promise<void> | undefined;

/** Spawns a tracked child; it is killed by {@link cleanup} if still running. */
export function spawnTracked(
  command: string,
  args: readonly string[],
  options: SpawnOptions = {},
): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  children.add(child);
  child.once('exit', () => children.delete(child));
  // A spawn failure (ENOENT) must not crash the bench: the caller sees it via 'error'.
  child.once('error', () => children.delete(child));
  return child;
}

/** Stops a child: SIGTERM, then SIGKILL after `graceMs`. Resolves once it has exited. */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** A fresh temp dir under `base` (default the OS temp dir), removed by {@link cleanup}. */
export async function tempDir(prefix: string, base = tmpdir()): Promise<string> {
  const dir = await mkdtemp(path.join(base, `ft-bench-${prefix}-`));
  dirs.add(dir);
  return dir;
}

/**
 * Removes a temp dir made by {@link tempDir} now, instead of at the end. Only for dirs of
 * a few large files: dirs of many small files (stores, trees) are left to {@link cleanup}.
 * On ext4 without a journal (this machine's disk) every inode freed in the last 1-6
 * minutes is skipped one by one when a new one is allocated (`recently_deleted()` in
 * fs/ext4/ialloc.c), under the directory's lock, so removing one round's 30,000 files
 * slows file creation in the next rounds unevenly: measured 900-2,400 files/s for the
 * bare PUT script with removal between rounds, 6,300-7,100 without.
 */
export async function removeDir(dir: string): Promise<void> {
  dirs.delete(dir);
  await rm(dir, { recursive: true, force: true });
}

/**
 * Registers `stop` (idempotent) to run in {@link cleanup}, for what the bench starts by other
 * means than {@link spawnTracked}; returns a function that runs it now and unregisters it.
 */
export function atCleanup(stop: () => Promise<void>): () => Promise<void> {
  stoppers.add(stop);
  return () => {
    stoppers.delete(stop);
    return stop();
  };
}

/** Stops every tracked child and removes every temp dir; idempotent. */
export function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await Promise.all([...stoppers].map((stop) => stop().catch(() => {})));
    await Promise.all([...children].map((c) => stopChild(c, 3000)));
    await Promise.all([...dirs].map((d) => rm(d, { recursive: true, force: true })));
    dirs.clear();
  })();
  return cleaning;
}

/**
 * Ctrl-C and SIGTERM: stop children, remove temp dirs, exit 130/143. A second signal
 * kills what is left at once. On any other exit, surviving children get SIGKILL.
 */
export function trapSignals(): void {
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals, code: number): void => {
    if (signalled) {
      for (const c of children) c.kill('SIGKILL');
      process.exit(code);
    }
    signalled = true;
    console.error(`\nbench: ${signal}, stopping what it started...`);
    void cleanup().finally(() => process.exit(code));
  };
  process.on('SIGINT', () => onSignal('SIGINT', 130));
  process.on('SIGTERM', () => onSignal('SIGTERM', 143));
  process.on('exit', () => {
    for (const c of children) c.kill('SIGKILL');
  });
}
