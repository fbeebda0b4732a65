import os from 'node:os';
import path from 'node:path';
import { FiletrackerError, StoreNotWritableError } from '@filetracker/shared-protocol/wire';
import { StoreOpenError } from './store-api.js';

/**
 * errno codes that mean the store's files refuse us (issue 16, item 10): another owner, an
 * immutable or append-only flag, a read-only mount. The operator's to fix, never a bug.
 */
const DENIED: Readonly<Record<string, string>> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
};

/** LevelDB gives errno only as strerror text in its message. */
const STRERROR: Readonly<Record<string, string>> = {
  'Permission denied': 'EACCES',
  'Operation not permitted': 'EPERM',
  'Read-only file system': 'EROFS',
  'No space left on device': 'ENOSPC',
};

/** LevelDB's PosixError: `IO error: <file>: <strerror>`. */
const LEVEL_IO = /^IO error: (\/.*): ([^:]+)$/;
/** Node's `EACCES: permission denied, open '/x'`: the words between the code and the call. */
const NODE_WORDS = /^[A-Z0-9]+: ([^,]+),/;

/** A failed file-system call, read off a Node error or off LevelDB's message. */
export interface FsFailure {
  /** `EACCES`, `EPERM`...; undefined when LevelDB's words map to none we know. */
  errno: string | undefined;
  /** The errno's meaning in words: "permission denied". */
  words: string;
  /** The call (`mkdir`, `open`); undefined for LevelDB. */
  syscall: string | undefined;
  /** Absolute paths the call named (a rename's source and destination). */
  files: string[];
}

/**
 * The file-system failure behind `err`, searched from the innermost cause out: classic-level
 * wraps it (`LEVEL_DATABASE_NOT_OPEN` around `LEVEL_IO_ERROR`, whose message names the file).
 */
export function fsFailureOf(err: unknown): FsFailure | undefined {
  const chain: Error[] = [];
  for (let e = err; e instanceof Error && chain.length < 8 && !chain.includes(e); e = e.cause) {
    chain.push(e);
  }
  for (const e of chain.reverse()) {
    const { code, syscall, path: file, dest } = e as NodeJS.ErrnoException & { dest?: string };
    if (typeof code === 'string' && typeof syscall === 'string') {
      const words = DENIED[code] ?? NODE_WORDS.exec(e.message)?.[1] ?? code;
      const files = [file, dest].filter((f): f is string => typeof f === 'string');
      return { errno: code, words, syscall, files };
    }
    const io = LEVEL_IO.exec(e.message);
    if (io) {
      const strerror = io[2]!;
      const words = strerror.charAt(0).toLowerCase() + strerror.slice(1);
      return { errno: STRERROR[strerror], words, syscall: undefined, files: [io[1]!] };
    }
  }
  return undefined;
}

/**
 * What went wrong, for an operator, on one line: the call and its file (relative to the store
 * at `root`), the error in words and, when the store's files refuse us (PERMISSION), what to
 * do. OPEN_FAILED: any other failure.
 */
export function describeFailure(
  err: unknown,
  root: string,
): { code: 'PERMISSION' | 'OPEN_FAILED'; reason: string } {
  const failure = fsFailureOf(err);
  let what: string;
  let hint = '';
  if (failure) {
    const file = failure.files[0];
    const name = file === undefined ? undefined : nameInStore(root, file);
    const call = [failure.syscall, name].filter((s) => s !== undefined).join(' ');
    what = call === '' ? failure.words : `${call}: ${failure.words}`;
    hint = failure.errno === undefined ? '' : accessHint(failure.errno, root, file);
  } else {
    what = innermost(err);
    // The database names no file for, say, a corrupt log: say at least where it lives.
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('LEVEL_')) what = `meta/: ${what}`;
  }
  return {
    code: hint === '' ? 'OPEN_FAILED' : 'PERMISSION',
    reason: `${what}${hint}`.replace(/\s*\n\s*/g, ' '),
  };
}

/**
 * `err`, thrown while opening the store at `root`, as a {@link StoreOpenError}: unchanged if
 * it is one, else what {@link describeFailure} says of it.
 */
export function storeOpenError(err: unknown, root: string): StoreOpenError {
  if (err instanceof StoreOpenError) return err;
  const { code, reason } = describeFailure(err, root);
  return new StoreOpenError(code, `cannot open store ${root}: ${reason}`, err);
}

/** What an operator does about a denied errno; '' for any other errno. */
function accessHint(errno: string, root: string, file: string | undefined): string {
  const user = currentUser();
  const chown = `chown -R ${user} ${root}`;
  if (errno === 'EACCES') {
    return ` for user ${user}; give the store to the user the service runs as: ${chown}`;
  }
  if (errno === 'EPERM') {
    // Root gets EPERM only from a flag; anyone else may also lack ownership.
    const flagged = file === undefined ? root : `${path.dirname(file)} ${file}`;
    const owner =
      process.getuid?.() === 0 ? '' : `; or give the store to the service's user: ${chown}`;
    return `; look for an immutable or append-only flag (lsattr -d ${flagged}) and clear it (chattr -i -a)${owner}`;
  }
  if (errno === 'EROFS') return '; its file system is mounted read-only: remount it read-write';
  return '';
}

/**
 * A write refused by the store's files as the 503 a client sees, naming the store
 * directories involved (never an absolute path: PROTOCOL.md); undefined for any other error.
 */
export function notWritableError(err: unknown, root: string): StoreNotWritableError | undefined {
  if (err instanceof FiletrackerError) return undefined;
  const failure = fsFailureOf(err);
  if (failure?.errno === undefined || !(failure.errno in DENIED)) return undefined;
  // A call is refused by the directory it adds to or removes from (mkdir: the parent).
  const dirs = [...new Set(failure.files.map((f) => dirInStore(root, path.dirname(f))))].filter(
    (d): d is string => d !== undefined,
  );
  const where = dirs.length > 0 ? `: ${dirs.join(' or ')}` : '';
  return new StoreNotWritableError(`The store is not writable${where} (${failure.words})`, err);
}

/** `file` relative to the store, or absolute when outside it (or the store itself). */
function nameInStore(root: string, file: string): string {
  const rel = path.relative(root, file);
  return rel === '' || rel.startsWith('..') || path.isAbsolute(rel) ? file : rel;
}

/** `dir/` relative to the store; undefined outside it. */
function dirInStore(root: string, dir: string): string | undefined {
  const rel = path.relative(root, dir);
  if (rel === '') return 'the store directory';
  return rel.startsWith('..') || path.isAbsolute(rel) ? undefined : `${rel}/`;
}

function innermost(err: unknown): string {
  let e = err;
  for (let i = 0; i < 8 && e instanceof Error && e.cause instanceof Error; i++) e = e.cause;
  return e instanceof Error ? e.message : String(e);
}

function currentUser(): string {
  try {
    return os.userInfo().username;
  } catch {
    // No passwd entry (a container's arbitrary uid): chown takes the number.
    return String(process.getuid?.() ?? 'USER');
  }
}
