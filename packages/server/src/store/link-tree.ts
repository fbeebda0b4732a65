import path from 'node:path';
import { BadRequestError, ConflictError } from '@filetracker/shared-protocol/wire';
import { lstat, lutimes, readlink, symlink, unlink } from './fs-calls.js';
import type { DirSync } from './dir-sync.js';
import type { NameLookup, NameRecord } from './metadata-store.js';
import { digestOfTarget, linkPath, linkTarget, tmpFile, type StoreLayout } from './layout.js';
import { RealDirs } from './real-dirs.js';

/** A name as `links/` records it: which blob, and the link's own mtime as the version. */
export interface LinkState extends NameRecord {
  /** The link's inode, to tell a replaced link from the one first seen. */
  ino: number;
}

/** A name too long for the file system cannot exist: reads treat it as absent. */
function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'ENAMETOOLONG';
}

/** Whether every file system can hold `version` as an mtime (1970 to 2038). */
function surelyKept(version: number): boolean {
  return version >= 0 && version < 2 ** 31;
}

/**
 * An atomic link replace (DESIGN.md invariant 2), the one both ft-server and ft-recover
 * make: a new symlink to `target` is made in `tmpDir` with `times` (its mtime is the
 * version), then `swap` renames it over the old link, so a reader sees the old link or the
 * new one, never neither. Whatever fails, nothing is left behind in `tmpDir`.
 *
 * `ready`: what must be done before the link is in place (its blob and its reference made
 * durable), made meanwhile. The symlink in `tmpDir` is no name yet, so it is made while
 * `ready` runs, and `swap` waits for both; if `ready` fails, its error is thrown and
 * nothing is swapped.
 */
export async function replaceLink(
  tmpDir: string,
  target: string,
  times: { mtime: Date; atime: Date },
  swap: (staged: string) => Promise<void>,
  ready?: Promise<unknown>,
): Promise<void> {
  const tmp = tmpFile(tmpDir, 'link');
  const made = symlink(target, tmp).then(() => lutimes(tmp, times.atime, times.mtime));
  const [before, link] = await Promise.allSettled([ready, made]);
  try {
    if (before.status === 'rejected') throw before.reason;
    if (link.status === 'rejected') throw link.reason;
    await swap(tmp);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
}

/** A failed link rename as the 409 it is when a directory or a file is in the way. */
function inTheWay(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EISDIR' || code === 'ENOTEMPTY' || code === 'EEXIST') {
    return new ConflictError('This name is a directory', err);
  }
  if (code === 'ENOTDIR') return new ConflictError('A parent of this name is a file', err);
  return err;
}

/** Linux limits: NAME_MAX bytes per component, PATH_MAX for the whole path. */
const NAME_MAX = 255;
const PATH_MAX = 4095;

/**
 * `links/`: one symlink per name, relative to its blob, whose own mtime is the version.
 * Replacing is atomic (a new symlink made in `ft-tmp/`, then renamed over the old one), so a
 * reader sees the old link or the new one, never neither (DESIGN.md invariant 2).
 */
export class LinkTree {
  readonly #layout: StoreLayout;
  readonly #sync: DirSync;
  /**
   * A name under a symlinked directory is not ours (issue 16 item 2): reads and deletes
   * find it absent, a PUT a conflict, a listing no directory. Checked before any call
   * that would go through it.
   */
  readonly #dirs: RealDirs;

  constructor(layout: StoreLayout, dirs: DirSync) {
    this.#layout = layout;
    this.#sync = dirs;
    this.#dirs = new RealDirs(layout.links);
  }

  path(components: readonly string[]): string {
    return linkPath(this.#layout, components);
  }

  /**
   * Reads a link; lstat, readlink and lstat again, so the digest and version come from one
   * and the same link even while a writer replaces it.
   */
  async read(components: readonly string[]): Promise<LinkState | Exclude<NameLookup, NameRecord>> {
    const parents = this.#dirs.state(components, components.length - 1);
    if (parents !== 'real' && (await parents) !== 'real') return 'absent';
    const p = this.path(components);
    for (let attempt = 0; ; attempt++) {
      let before;
      try {
        before = await lstat(p);
      } catch (err) {
        if (isMissing(err)) return 'absent';
        throw err;
      }
      if (before.isDirectory()) return 'directory';
      if (!before.isSymbolicLink()) return 'absent';
      let target: string;
      let after;
      try {
        target = await readlink(p);
        after = await lstat(p);
      } catch (err) {
        if (isMissing(err)) return 'absent';
        throw err;
      }
      if (after.ino !== before.ino && attempt < 10) continue;
      const digest = digestOfTarget(target);
      if (digest === undefined) return 'absent';
      return { digest, version: Math.floor(after.mtimeMs / 1000), ino: after.ino };
    }
  }

  /** Refuses, before anything is written, a name the file system could not hold. */
  checkStorable(components: readonly string[]): void {
    if (components.some((c) => Buffer.byteLength(c) > NAME_MAX)) {
      throw new BadRequestError('BAD_PATH', `A name component is longer than ${NAME_MAX} bytes`);
    }
    // The link's own path, and its relative target (one `../` per level), must both fit.
    const target = linkTarget(components, '0'.repeat(64));
    if (Buffer.byteLength(this.path(components)) > PATH_MAX || target.length > PATH_MAX) {
      throw new BadRequestError('BAD_PATH', 'The name is too long');
    }
  }

  /**
   * Points `name` at `digest` with `version`, atomically, once `ready` (see
   * {@link replaceLink}) has resolved. 409 if the path is in the way.
   */
  async replace(
    components: readonly string[],
    digest: string,
    version: number,
    ready?: Promise<unknown>,
  ): Promise<void> {
    // A Date, not seconds: Node takes a negative number of seconds for "now", and versions
    // before 1970 are real.
    const when = new Date(version * 1000);
    const target = linkTarget(components, digest);
    await replaceLink(
      this.#layout.tmp,
      target,
      { mtime: when, atime: when },
      (staged) =>
        this.#swapIn(staged, components, version).catch((err: unknown) => {
          throw inTheWay(err);
        }),
      ready,
    );
  }

  /** Renames the link staged for `replace` into `name`'s place, durably. */
  async #swapIn(staged: string, components: readonly string[], version: number): Promise<void> {
    // File systems clamp timestamps they cannot hold (ext4: 1901 to 2446); a version
    // answered but not kept would change which write wins after a restart. Every file
    // system with symlinks holds 1970 to 2038 (signed 32-bit seconds), so only versions
    // outside it are read back: one thread-pool trip fewer for nearly every upload.
    if (!surelyKept(version) && Math.floor((await lstat(staged)).mtimeMs / 1000) !== version) {
      throw new BadRequestError('BAD_DATE', "The store's file system cannot hold this version");
    }
    // Missing directories are made by the rename below (mkdir -p): the ones that exist
    // were just found real, so it goes through no symlink.
    const parents = this.#dirs.state(components, components.length - 1);
    if ((parents === 'real' ? parents : await parents) === 'blocked') {
      throw new ConflictError('A parent of this name is not a directory');
    }
    // Durable (its directory fsynced) before the PUT is answered.
    await this.#sync.rename(staged, this.path(components), this.#layout.links, (err) => {
      const code = (err as NodeJS.ErrnoException).code;
      return code === 'ENOTDIR' || code === 'EEXIST'
        ? new ConflictError('A parent of this name is a file', err)
        : err;
    });
  }

  /**
   * Removes the link of `name`, durably: its blob may be removed next, and a link that came
   * back after a power cut without its blob would be a name that answers with an error.
   * Empty directories stay (compat). Under a symlinked directory there is no link of ours:
   * nothing is removed.
   */
  async remove(components: readonly string[]): Promise<void> {
    const parents = this.#dirs.state(components, components.length - 1);
    if (parents !== 'real' && (await parents) !== 'real') return;
    const p = this.path(components);
    await unlink(p);
    await this.#sync.sync(path.dirname(p));
  }

  /** Forgets the directories found real, after `links/` was removed while we ran. */
  forgetDirs(): void {
    this.#dirs.clear();
  }

  /** Whether `components` name a directory, reached through no symlink (for /list). */
  async isDirectory(components: readonly string[]): Promise<boolean> {
    return (await this.#dirs.state(components)) === 'real';
  }
}
