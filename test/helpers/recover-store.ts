import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  lstat,
  lutimes,
  mkdir,
  readdir,
  readFile,
  readlink,
  symlink,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { encodeName, formatHttpDate } from '@filetracker/shared-protocol';
import { MetaDb } from '@filetracker/server';
import { REPO_ROOT } from './server.js';

export const RECOVER_BIN = 'packages/server/bin/ft-recover.mjs';
export const SERVER_BIN = 'packages/server/bin/ft-server.mjs';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a bin of this repo to its end (killed after `timeoutMs`), as `user` if given (root only). */
/**
 * Another user to run a program as. `readAnything`: through util-linux's `setpriv`, with
 * the one capability CAP_DAC_READ_SEARCH (read any file, search any directory, write
 * nothing more), for a repository that user cannot read, as a clone under a mode-700 temp
 * dir is; what it may write is the user's alone.
 */
export interface OtherUser {
  uid: number;
  gid: number;
  readAnything?: boolean;
}

/** The command, arguments and spawn options that run `node ...nodeArgs` as `user`. */
export function asUser(
  nodeArgs: string[],
  user?: OtherUser,
): { command: string; args: string[]; options: { uid?: number; gid?: number } } {
  if (!user) return { command: process.execPath, args: nodeArgs, options: {} };
  const { uid, gid, readAnything } = user;
  if (!readAnything) return { command: process.execPath, args: nodeArgs, options: { uid, gid } };
  return {
    command: 'setpriv',
    args: [
      `--reuid=${uid}`,
      `--regid=${gid}`,
      '--clear-groups',
      '--inh-caps=+dac_read_search',
      '--ambient-caps=+dac_read_search',
      process.execPath,
      ...nodeArgs,
    ],
    options: {},
  };
}

export function runBin(
  bin: string,
  args: string[],
  timeoutMs = 20_000,
  user?: OtherUser,
): Promise<RunResult> {
  const started = Date.now();
  const run = asUser([path.join(REPO_ROOT, bin), ...args], user);
  const child = spawn(run.command, run.args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...run.options,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

export function runRecover(args: string[]): Promise<RunResult> {
  return runBin(RECOVER_BIN, args);
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The on-disk form the Python server gave a name: its UTF-8 bytes read as latin-1. */
export function doubleEncode(name: string): string {
  return Buffer.from(name, 'utf8').toString('latin1');
}

/**
 * Every entry under `dir` (but not `exclude`d top-level names): its type and what matters of
 * it (a link's target and mtime, a file's content hash and mtime), to prove nothing changed.
 */
export async function snapshotTree(
  dir: string,
  exclude: string[] = [],
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const visit = async (abs: string, rel: string): Promise<void> => {
    for (const name of await readdir(abs)) {
      if (rel === '' && exclude.includes(name)) continue;
      const p = path.join(abs, name);
      const r = rel === '' ? name : `${rel}/${name}`;
      const st = await lstat(p);
      if (st.isDirectory()) {
        out.set(r, 'dir');
        await visit(p, r);
      } else if (st.isSymbolicLink()) {
        out.set(r, `link ${await readlink(p)} ${st.mtimeMs}`);
      } else {
        out.set(r, `file ${sha256(await readFile(p))} ${st.mtimeMs}`);
      }
    }
  };
  await visit(dir, '');
  return out;
}

/** Every key and value in `<dir>/meta` (the store must not be in use). */
export async function dumpMeta(dir: string): Promise<[string, string][]> {
  const meta = await MetaDb.open(path.join(dir, 'meta'));
  try {
    return await meta.db.iterator().all();
  } finally {
    await meta.close();
  }
}

/** Changes `<dir>/meta` directly, as an operator (or a crash) could. */
export async function editMeta(dir: string, fn: (meta: MetaDb) => Promise<void>): Promise<void> {
  const meta = await MetaDb.open(path.join(dir, 'meta'));
  try {
    await fn(meta);
  } finally {
    await meta.close();
  }
}

/** Writes `content` as a blob, as both servers store it. Returns its digest. */
export async function writeBlob(dir: string, content: Buffer): Promise<string> {
  const digest = sha256(content);
  const p = path.join(dir, 'blobs', digest.slice(0, 2), digest);
  await mkdir(path.dirname(p), { recursive: true });
  await writeFile(p, gzipSync(content));
  return digest;
}

export interface PythonFile {
  /** The real name, e.g. `/zażółć/a.txt`. */
  name: string;
  content: Buffer;
  version: number;
  /** Link with an absolute target (as the Python server did in some versions). */
  absolute?: boolean;
  /** Store the name double-encoded, as the Python server did with non-ASCII names. */
  doubleEncoded?: boolean;
}

/**
 * A store exactly as the Python 2.x server lays it out: gzip blobs, symlinks whose own mtime
 * is the version with depth-dependent relative targets (or absolute ones), a Berkeley DB
 * directory `db/`, `locks/`, and no `meta/`.
 */
export async function makePythonStore(dir: string, files: PythonFile[]): Promise<void> {
  await mkdir(path.join(dir, 'db'), { recursive: true });
  await writeFile(path.join(dir, 'db', 'metadata.db'), 'Berkeley DB stand-in\n');
  await mkdir(path.join(dir, 'locks'), { recursive: true });
  await writeFile(path.join(dir, 'locks', 'some.lock'), '');
  await mkdir(path.join(dir, 'links'), { recursive: true });
  for (const f of files) {
    const digest = await writeBlob(dir, f.content);
    const components = f.name
      .slice(1)
      .split('/')
      .map((c) => (f.doubleEncoded ? doubleEncode(c) : c));
    const link = path.join(dir, 'links', ...components);
    await mkdir(path.dirname(link), { recursive: true });
    const blob = `blobs/${digest.slice(0, 2)}/${digest}`;
    await symlink(f.absolute ? path.join(dir, blob) : '../'.repeat(components.length) + blob, link);
    await lutimes(link, f.version, f.version);
  }
}

/** PUTs a plain body with `version`. */
export async function putFile(
  url: string,
  name: string,
  content: Buffer,
  version: number,
): Promise<void> {
  const res = await fetch(
    `${url}/files${encodeName(name)}?last_modified=${encodeURIComponent(formatHttpDate(version))}`,
    { method: 'PUT', body: content },
  );
  if (res.status !== 200) throw new Error(`PUT ${name}: ${res.status} ${await res.text()}`);
}

export interface Fetched {
  status: number;
  body: Buffer;
  version: number | undefined;
  logicalSize: string | null;
}

/** GETs (or HEADs) a file; `version` from Last-Modified. */
export async function getFile(url: string, name: string, method = 'GET'): Promise<Fetched> {
  const res = await fetch(`${url}/files${encodeName(name)}`, { method });
  const lastModified = res.headers.get('last-modified');
  return {
    status: res.status,
    body: Buffer.from(await res.arrayBuffer()),
    version: lastModified === null ? undefined : Date.parse(lastModified) / 1000,
    logicalSize: res.headers.get('logical-size'),
  };
}

/** The names `/list/` shows (whole store, cutoff far in the future), sorted. */
export async function listAll(url: string): Promise<string[]> {
  const res = await fetch(`${url}/list/?last_modified=${encodeURIComponent(formatHttpDate(4e9))}`);
  if (res.status !== 200) throw new Error(`list: ${res.status}`);
  return (await res.text())
    .split('\n')
    .filter((l) => l !== '')
    .sort();
}
