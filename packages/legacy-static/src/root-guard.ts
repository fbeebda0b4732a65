import {
  closeSync,
  constants,
  existsSync,
  fstatSync,
  lstatSync,
  openSync,
  readlinkSync,
  realpathSync,
  type Stats,
} from 'node:fs';
import { lstat, open, readlink, realpath, type FileHandle } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { FiletrackerError, legacyFilesDir } from '@filetracker/shared-protocol';

/** realpath errors that mean "there is no such file" rather than a fault. */
const ABSENT = new Set(['ENOENT', 'ENOTDIR', 'ENAMETOOLONG', 'ELOOP']);
/** open errors that mean the same: a link swapped in gives ELOOP, a socket ENXIO. */
const NOT_OPENABLE = new Set([...ABSENT, 'ENXIO', 'ENODEV']);

/**
 * How a resolved name is opened. O_NOFOLLOW: a file swapped for a symlink since realpath
 * fails (ELOOP) rather than being followed. O_NONBLOCK: a FIFO opens at once instead of
 * waiting for a writer, which held a thread of the pool (or the event loop, for openSync)
 * until someone wrote to it (issue 16); reads of regular files ignore the flag.
 */
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** Where Linux names what a descriptor of ours refers to. */
const FD_LINKS = '/proc/self/fd/';

/** A regular file inside the roots, open for reading, with its stat. */
export interface OpenedFile {
  handle: FileHandle;
  stats: Stats;
}

/** 403 for a name we may not read (EACCES): said alike for files and listings. */
export function denied(cause: unknown): FiletrackerError {
  return new FiletrackerError('Permission denied', { code: 'BAD_PATH', status: 403, cause });
}

function withSep(dir: string): string {
  return dir.endsWith(sep) ? dir : dir + sep;
}

/**
 * Keeps reads inside FT_ROOT even through symlinks: a name is resolved with realpath and
 * must land under the real FT_ROOT, or under the real `FT_ROOT/files` (deployments put
 * `files/` on another disk through a symlink). Both roots are resolved once, at start.
 */
export class RootGuard {
  /** realpath of FT_ROOT. */
  readonly realRoot: string;
  readonly #files: string;
  readonly #prefixes: string[];
  readonly #fdLinks = existsSync(FD_LINKS);

  /** Throws (ENOENT, ENOTDIR...) when FT_ROOT cannot be resolved. */
  constructor(root: string) {
    this.realRoot = realpathSync(root);
    this.#files = legacyFilesDir(this.realRoot);
    this.#prefixes = [withSep(this.realRoot)];
    try {
      const realFiles = realpathSync(this.#files);
      if (!realFiles.startsWith(this.#prefixes[0]!)) this.#prefixes.push(withSep(realFiles));
    } catch {
      // No files/ yet: every name is absent until it appears, inside FT_ROOT.
    }
  }

  /** `FT_ROOT/files/{components}` as given, not resolved: check it with a resolve. */
  pathOf(components: readonly string[]): string {
    return join(this.#files, ...components);
  }

  /**
   * {@link resolve} of a {@link pathOf} without the thread-pool round trip, for the
   * in-memory path: undefined for anything but a plain answer (absent, outside, or an
   * error the async path reports).
   */
  resolveSync(joined: string): string | undefined {
    let real: string;
    try {
      real = realpathSync.native(joined);
    } catch {
      return undefined;
    }
    return this.#inside(real);
  }

  /**
   * The real path of `FT_ROOT/files/{components}`, or undefined when it is absent or lies
   * outside the roots (answered alike, so a probe learns nothing about the outside).
   */
  resolve(components: readonly string[]): Promise<string | undefined> {
    return this.resolvePath(this.pathOf(components));
  }

  /**
   * {@link resolve} of a path under FT_ROOT/files as found on disk (a symlink met by a
   * listing): its real path, or undefined when it is absent or lies outside the roots.
   */
  async resolvePath(joined: string): Promise<string | undefined> {
    let real: string;
    try {
      real = await realpath(joined);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (ABSENT.has(code)) return undefined;
      if (code === 'EACCES') throw denied(err);
      throw err;
    }
    return this.#inside(real);
  }

  /**
   * Opens `real` (a {@link resolve} answer) once and checks what was opened: a regular
   * file that lies under the roots, else undefined (answered as absent). The path may have
   * changed since it was resolved, a directory or the file swapped for a symlink out of
   * FT_ROOT, or the file for a FIFO: koa-send opened it again by name, and served outside
   * files that way (issue 16). So the check is of the descriptor, and only it is read.
   */
  async open(real: string): Promise<OpenedFile | undefined> {
    let handle: FileHandle;
    try {
      handle = await open(real, OPEN_FLAGS);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (NOT_OPENABLE.has(code)) return undefined;
      if (code === 'EACCES') throw denied(err);
      throw err;
    }
    try {
      const stats = await handle.stat();
      if (stats.isFile()) {
        const where = this.#fdLinks
          ? await readlink(FD_LINKS + handle.fd)
          : await lstat(real).then((st) => (sameInode(st, stats) ? real : ''));
        if (this.#inside(where) !== undefined) return { handle, stats };
      }
    } catch (err) {
      await handle.close();
      throw err;
    }
    await handle.close();
    return undefined;
  }

  /**
   * {@link open} without the thread-pool round trips, for the in-memory path: the
   * descriptor and its stat, or undefined for anything but a plain answer.
   */
  openSync(real: string): { fd: number; stats: Stats } | undefined {
    let fd: number;
    try {
      fd = openSync(real, OPEN_FLAGS);
    } catch {
      return undefined;
    }
    try {
      const stats = fstatSync(fd);
      if (stats.isFile()) {
        const where = this.#fdLinks
          ? readlinkSync(FD_LINKS + fd)
          : sameInode(lstatSync(real), stats)
            ? real
            : '';
        if (this.#inside(where) !== undefined) return { fd, stats };
      }
    } catch {
      // As if absent: the Koa path answers it, or reports the fault.
    }
    closeSync(fd);
    return undefined;
  }

  /** `real` when it lies under one of the roots, else undefined. */
  #inside(real: string): string | undefined {
    return this.#prefixes.some((p) => real.startsWith(p)) ? real : undefined;
  }
}

/**
 * Without /proc: the file at `real` now (not followed, if a link) is the one opened. That
 * misses a directory of `real` swapped out and back between the open and this lstat.
 */
function sameInode(a: Stats, b: Stats): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}
