import { realpathSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { FiletrackerError } from '@filetracker/shared-protocol';

/** realpath errors that mean "there is no such file" rather than a fault. */
const ABSENT = new Set(['ENOENT', 'ENOTDIR', 'ENAMETOOLONG', 'ELOOP']);

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

  /** Throws (ENOENT, ENOTDIR...) when FT_ROOT cannot be resolved. */
  constructor(root: string) {
    this.realRoot = realpathSync(root);
    this.#files = join(this.realRoot, 'files');
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
  async resolve(components: readonly string[]): Promise<string | undefined> {
    let real: string;
    try {
      real = await realpath(this.pathOf(components));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (ABSENT.has(code)) return undefined;
      if (code === 'EACCES') {
        throw new FiletrackerError('Permission denied', { code: 'BAD_PATH', status: 403 });
      }
      throw err;
    }
    return this.#inside(real);
  }

  /** `real` when it lies under one of the roots, else undefined. */
  #inside(real: string): string | undefined {
    return this.#prefixes.some((p) => real.startsWith(p)) ? real : undefined;
  }
}
