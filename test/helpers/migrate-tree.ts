import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from './server.js';

/** The ft-migrate bin, as an operator runs it. */
export const MIGRATE_BIN = path.join(REPO_ROOT, 'packages/migrate/bin/ft-migrate.mjs');

/** A file of a generated 1.x tree: its name (relative to files/), content and mtime. */
export interface TreeFile {
  name: string;
  content: Buffer;
  /** Seconds, fractional: the version is its floor. */
  mtime: number;
}

const BASE_MTIME = 1_500_000_000;

/**
 * The files of a 1.x store as the issue lists them: nested directories, varied fractional
 * mtimes, an empty file, multi-MiB files (one under, one over the client's 1 MiB in-memory
 * limit), a dotfile, names with spaces, `@`, `%`, `#`, `?`, `+` and non-ASCII, and a deep
 * tree.
 */
export function legacyTreeFiles(): TreeFile[] {
  const deep = Array.from({ length: 14 }, (_, i) => `level${i}`).join('/');
  const entries: [string, Buffer][] = [
    ['plain.txt', Buffer.from('plain content\n')],
    ['empty', Buffer.alloc(0)],
    ['.hidden', Buffer.from('a dotfile\n')],
    ['sp ace.txt', Buffer.from('space\n')],
    ['user@host', Buffer.from('at sign\n')],
    ['100%', Buffer.from('percent\n')],
    ['pct%41', Buffer.from('a literal %41, not A\n')],
    ['a#b', Buffer.from('hash\n')],
    ['q?x=1', Buffer.from('question\n')],
    ['plus+sign', Buffer.from('plus\n')],
    ['dir one/zażółć gęślą.txt', Buffer.from('non-ASCII name\n')],
    ['日本/ファイル.in', Buffer.from('CJK\n')],
    ['problems/12/tests/in/1a.in', Buffer.from('1 2\n')],
    ['problems/12/tests/out/1a.out', Buffer.from('3\n')],
    ['problems/12/.sub/.dotdir-file', Buffer.from('in a dot directory\n')],
    [`${deep}/deep.txt`, Buffer.from('deep\n')],
    ['blobs/half.bin', randomBytes(700 * 1024)],
    ['blobs/big.bin', randomBytes(3 * 1024 * 1024 + 17)],
  ];
  return entries.map(([name, content], i) => ({
    name,
    content,
    mtime: BASE_MTIME + i * 86_400 + 0.75,
  }));
}

/** Many small files in a few directories: a tree big enough to interrupt mid-run. */
export function smallTreeFiles(count: number, prefix = 'many'): TreeFile[] {
  return Array.from({ length: count }, (_, i) => ({
    name: `${prefix}/d${i % 20}/f${i}.txt`,
    content: Buffer.from(`file ${i}\n`),
    mtime: BASE_MTIME + i + 0.5,
  }));
}

/** Writes `files` under `dir` with their mtimes. */
export async function writeTree(dir: string, files: readonly TreeFile[]): Promise<void> {
  const made = new Set<string>();
  for (const file of files) {
    const full = path.join(dir, file.name);
    const parent = path.dirname(full);
    if (!made.has(parent)) {
      await mkdir(parent, { recursive: true });
      made.add(parent);
    }
    await writeFile(full, file.content);
    await utimes(full, file.mtime, file.mtime);
  }
}

/** The version a file's mtime makes: whole seconds, rounded down. */
export function versionOf(file: TreeFile): number {
  return Math.floor(file.mtime);
}

export interface MigrateRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A running ft-migrate child: its output so far and its end. */
export interface MigrateProcess {
  child: ChildProcess;
  output(): { stdout: string; stderr: string };
  done: Promise<MigrateRun>;
}

/**
 * Where a test's ft-migrate keeps its default state file: `XDG_STATE_HOME` is set to
 * `.xdg-state` in its working directory (never the user's own state directory).
 */
export function testStateDir(cwd: string | undefined): string {
  return path.join(cwd ?? tmpdir(), '.xdg-state');
}

/** The default state files (paths) of runs in `cwd` (see {@link testStateDir}). */
export async function defaultStateFiles(cwd: string): Promise<string[]> {
  const dir = path.join(testStateDir(cwd), 'filetracker');
  try {
    return (await readdir(dir)).map((name) => path.join(dir, name));
  } catch {
    return [];
  }
}

/** Starts the ft-migrate bin with `args` (stdout and stderr piped: not a terminal). */
export function spawnMigrate(
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): MigrateProcess {
  const child = spawn(process.execPath, [MIGRATE_BIN, ...args], {
    cwd: options.cwd,
    env: { ...process.env, XDG_STATE_HOME: testStateDir(options.cwd), ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<MigrateRun>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, output: () => ({ stdout, stderr }), done };
}

/** Runs the ft-migrate bin to its end. */
export function runMigrate(
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<MigrateRun> {
  return spawnMigrate(args, options).done;
}

/** The finished files a state file records (a line torn by kill -9 is not one). */
export async function stateEntries(file: string): Promise<[string, number][]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return [];
  }
  const entries: [string, number][] = [];
  for (const line of text.split('\n').slice(1)) {
    try {
      const record = JSON.parse(line) as unknown;
      if (Array.isArray(record)) entries.push(record as [string, number]);
    } catch {
      // torn
    }
  }
  return entries;
}

/** Polls `check` every 20 ms until it holds, or throws after `timeoutMs`. */
export async function waitFor(
  check: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A temp dir holding `ft_root/files` with `files` (removed after the test): its ft_root. */
export async function makeFtRoot(
  t: { after(fn: () => Promise<void>): void },
  files: readonly TreeFile[],
  prefix = 'ft-migrate-test-',
): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const ftRoot = path.join(dir, 'ft_root');
  await writeTree(path.join(ftRoot, 'files'), files);
  return ftRoot;
}
