import fs from 'node:fs';
import path from 'node:path';
import { FiletrackerError, StoreNotWritableError } from '@filetracker/shared-protocol/wire';
import type { DirSync } from './dir-sync.js';
import { fsFailureOf, notWritableError } from './fs-failure.js';
import type { StoreLayout } from './layout.js';

/** A file's identity: the same path with another device or inode is another file. */
interface Identity {
  dev: number;
  ino: number;
}

/**
 * How often, at most, a write looks at the store's directories (five stat calls on the
 * main thread, a few microseconds): measured on this machine under load, one statSync
 * costs 8-11 us, so one per PUT would be a tenth of a small PUT's CPU.
 */
const CHECK_INTERVAL_MS = 100;

/** The identity of `file`; undefined when it is missing, null when it cannot be told. */
function identityOf(file: string): Identity | undefined | null {
  try {
    const st = fs.statSync(file, { throwIfNoEntry: false });
    return st === undefined ? undefined : { dev: st.dev, ino: st.ino };
  } catch (err) {
    // ENOTDIR: a file in the place of a directory on the way; anything else (EACCES) is
    // for the write itself to meet, and to be reported as what it is.
    return (err as NodeJS.ErrnoException).code === 'ENOTDIR' ? undefined : null;
  }
}

function same(a: Identity | undefined, b: Identity | undefined | null): boolean {
  return b === null || (a !== undefined && b !== undefined && a.dev === b.dev && a.ino === b.ino);
}

/**
 * Notices the store's directories being removed while the server runs (issue 18, item 3:
 * an operator's `rm -rf DIR/*`, a tmp cleaner, a lost mount) and does what can be done:
 *
 * - `ft-tmp/`, `blobs/` and `links/` are made again (their parent fsynced before any write
 *   that lands in them is answered, see DirSync.restore), and the caches of names and
 *   blobs are dropped, as they may describe files that are gone.
 * - `meta/` cannot be made again: the refcounts and tombstones it held are gone, and
 *   LevelDB would go on writing into files no longer in any directory. Writes are then
 *   refused with a 503 saying what to do (ft-recover), and /healthz says so; reads of what
 *   is left go on. Told by LevelDB's LOCK file, which it makes once at open and keeps.
 * - The store directory itself gone or replaced (a lost mount: the path now leads to the
 *   empty mount point) is not made again either: a store made in the mount point's place
 *   would take uploads onto another file system, to be hidden when the mount comes back.
 *
 * Both refusals last until a restart: the database open is the one that was removed.
 */
export class StoreDirs {
  readonly #layout: StoreLayout;
  readonly #dirs: DirSync;
  readonly #root: Identity | undefined;
  readonly #lock: Identity | undefined;
  readonly #onRestored: (made: string[]) => void;
  readonly #onGone: (reason: string) => void;
  #checkedAtMs = -Infinity;
  #checking: Promise<void> | undefined;
  /** Why writes are refused, once the database or the store directory is gone. */
  #gone: string | undefined;

  /**
   * Takes the identities of the store directory and of `meta/LOCK` now, right after the
   * database was opened. `onRestored` is told of the directories made again, `onGone`
   * (once) of why writes are refused from now on.
   */
  constructor(
    layout: StoreLayout,
    dirs: DirSync,
    events: { onRestored: (made: string[]) => void; onGone: (reason: string) => void },
  ) {
    this.#layout = layout;
    this.#dirs = dirs;
    this.#onRestored = events.onRestored;
    this.#onGone = events.onGone;
    this.#root = identityOf(layout.root) ?? undefined;
    this.#lock = identityOf(path.join(layout.meta, 'LOCK')) ?? undefined;
    dirs.beforeMkdir = (top) => (fs.existsSync(top) ? undefined : this.check());
  }

  /** Why the store takes no writes until a restart; undefined while it does. */
  get gone(): string | undefined {
    return this.#gone;
  }

  /**
   * Before a write: at most every {@link CHECK_INTERVAL_MS}, looks at the directories, and
   * then resolves once those missing are made again, or rejects with the 503 to answer.
   * Usually returns undefined at once.
   */
  beforeWrite(): Promise<void> | undefined {
    if (this.#gone !== undefined) return Promise.reject(this.#refusal());
    const now = performance.now();
    if (now - this.#checkedAtMs < CHECK_INTERVAL_MS) return undefined;
    this.#checkedAtMs = now;
    const { tmp, blobs, links } = this.#layout;
    if (this.#notice() === undefined && [tmp, blobs, links].every((d) => fs.existsSync(d))) {
      return undefined;
    }
    return this.check();
  }

  /**
   * Looks at the directories now: rejects with the 503 to answer when the database or the
   * store directory is gone, else makes the missing ones again. One at a time.
   */
  check(): Promise<void> {
    this.#checking ??= (async () => {
      try {
        if (this.#notice() !== undefined) throw this.#refusal();
        const { root, tmp, blobs, links } = this.#layout;
        const dirs = [tmp, blobs, links];
        if (dirs.every((d) => fs.existsSync(d))) return;
        const made = await this.#dirs.restore(root, dirs);
        if (made.length > 0) this.#onRestored(made);
      } finally {
        this.#checking = undefined;
      }
    })();
    return this.#checking;
  }

  /**
   * The 503 for a write the store's files refused (owner, flag, read-only mount: naming the
   * directory, see notWritableError), or one that failed with ENOENT on a file of the store
   * (a directory removed while it ran): made again now, so the client may retry. Undefined
   * for any other error.
   */
  async writeFailure(err: unknown): Promise<StoreNotWritableError | undefined> {
    if (err instanceof FiletrackerError) return undefined;
    const denied = notWritableError(err, this.#layout.root);
    if (denied) return denied;
    const failure = fsFailureOf(err);
    const root = this.#layout.root + path.sep;
    if (failure?.errno !== 'ENOENT' || !failure.files.some((f) => f.startsWith(root))) {
      return undefined;
    }
    try {
      await this.check();
    } catch (refused) {
      if (refused instanceof StoreNotWritableError) return refused;
      throw refused;
    }
    return new StoreNotWritableError(
      'A directory of the store was removed while this request ran; it is made again: retry',
      err,
    );
  }

  /** Sets and returns why writes are refused, if the database or the store directory went. */
  #notice(): string | undefined {
    if (this.#gone !== undefined) return this.#gone;
    // Not known at open (it could not be read): nothing to compare with.
    if (this.#lock === undefined) return undefined;
    if (same(this.#lock, identityOf(path.join(this.#layout.meta, 'LOCK')))) return undefined;
    this.#gone = same(this.#root, identityOf(this.#layout.root))
      ? 'The database (meta/) was removed while ft-server ran, and with it the refcounts ' +
        'and tombstones: stop ft-server, run ft-recover on the store, then start it'
      : 'The store directory was removed or replaced while ft-server ran (a lost mount?): ' +
        'mount it back, then restart ft-server';
    this.#onGone(this.#gone);
    return this.#gone;
  }

  #refusal(): StoreNotWritableError {
    return new StoreNotWritableError(this.#gone!);
  }
}
