import fs from 'node:fs';
import path from 'node:path';
import { mkdir, rename } from './fs-calls.js';
import { GroupCommit } from './group-commit.js';

const DIRECTORY = fs.constants.O_RDONLY | fs.constants.O_DIRECTORY;

/**
 * fsync of a directory: what makes an entry renamed into it (or removed from it) survive a
 * power cut; a file's own fsync covers its bytes, not its name. The open is a lookup of a
 * directory just used, made on the main thread (a thread-pool trip costs more); the close
 * has nothing left to flush.
 */
function fsyncDir(dir: string): Promise<void> {
  let fd: number;
  try {
    fd = fs.openSync(dir, DIRECTORY);
  } catch (err) {
    return Promise.reject(err as Error);
  }
  return new Promise((resolve, reject) => {
    fs.fsync(fd, (err) => {
      fs.closeSync(fd);
      if (err) reject(err);
      else resolve();
    });
  });
}

/**
 * Directory fsyncs shared across concurrent writers: many uploads rename into the same few
 * directories, and a fsync of a directory makes every entry changed in it before the fsync
 * began durable (see GroupCommit).
 */
export class DirSync {
  readonly #fsyncs = new GroupCommit<string, undefined>((dir) => fsyncDir(dir));
  /**
   * Directories this process made whose own entry (in their parent) is not durable yet,
   * with the promise of when it is. A writer that finds such a directory in place, made by
   * another writer a moment ago, must wait for that too: its rename into the directory is
   * lost with the directory.
   */
  readonly #madeDirs = new Map<string, Promise<void>>();
  /** A {@link restore} in progress: renames that land meanwhile wait for it. */
  #restoring: Promise<string[]> | undefined;
  /**
   * Called with `top` before a rename makes missing directories under it: a `top` that is
   * gone itself (ft-tmp/, blobs/ or links/ removed while the server runs) must be made by
   * {@link restore}, durably, and not by the mkdir -p as a side effect.
   */
  beforeMkdir: ((top: string) => Promise<void> | undefined) | undefined;

  /** Resolves once everything changed in `dir` before this call is durable. */
  sync(dir: string): Promise<void> {
    return this.#fsyncs.submit(dir, undefined);
  }

  /**
   * Renames `from` to `to` durably: once this resolves, `to` survives a power cut. When the
   * rename finds `to`'s directory missing, it is made (mkdir -p, up to `top`, which exists)
   * and the directories holding each new one are fsynced too. An mkdir -p per upload
   * would cost two more thread-pool trips (mkdir, then a stat on EEXIST), so the directory
   * is made only when missing; `mkdirFailed` maps an error of that mkdir to the one to
   * throw.
   */
  async rename(
    from: string,
    to: string,
    top: string,
    mkdirFailed: (err: unknown) => unknown = (err) => err,
  ): Promise<void> {
    const dir = path.dirname(to);
    try {
      await rename(from, to);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await (this.#madeDirs.get(dir) ?? this.#makeDirs(dir, top, mkdirFailed));
      await rename(from, to);
    }
    await Promise.all([this.sync(dir), this.#madeDurable(dir, top), this.#restoring]);
  }

  /**
   * Makes those of `children` (directories in `parent`) that are missing, then fsyncs
   * `parent` if any was made; resolves with the ones made. One at a time: a call while one
   * runs gets its promise, and a rename that ends meanwhile waits for it too, so no answer
   * goes out before a directory it renamed into is durable in `parent`.
   */
  restore(parent: string, children: readonly string[]): Promise<string[]> {
    this.#restoring ??= (async () => {
      try {
        const made = await Promise.all(
          children.map((dir) =>
            mkdir(dir).then(
              () => dir,
              (err: NodeJS.ErrnoException) => {
                if (err.code === 'EEXIST') return undefined;
                throw err;
              },
            ),
          ),
        );
        const restored = made.filter((d): d is string => d !== undefined);
        if (restored.length > 0) await this.sync(parent);
        return restored;
      } finally {
        this.#restoring = undefined;
      }
    })();
    return this.#restoring;
  }

  /**
   * mkdir -p of `dir`, then fsyncs of every directory from its parent up to `top`: each new
   * directory's entry is in its parent. Noted in #madeDirs for `dir` and each ancestor
   * below `top` before the mkdir is even issued, so a writer whose rename lands in a
   * directory made here (a concurrent upload into the same new directory) finds the note
   * and waits; an ancestor that existed already only makes such a writer wait a little.
   */
  #makeDirs(dir: string, top: string, mkdirFailed: (err: unknown) => unknown): Promise<void> {
    const made: string[] = [];
    for (let d = dir; d.length > top.length && d.startsWith(top); d = path.dirname(d)) {
      made.push(d);
    }
    const durable = (async () => {
      await this.beforeMkdir?.(top);
      try {
        await mkdir(dir, { recursive: true });
      } catch (err) {
        throw mkdirFailed(err);
      }
      await Promise.all(made.map((d) => this.sync(path.dirname(d))));
    })();
    for (const d of made) this.#madeDirs.set(d, durable);
    const forget = (): void => {
      for (const d of made) if (this.#madeDirs.get(d) === durable) this.#madeDirs.delete(d);
    };
    durable.then(forget, forget);
    return durable;
  }

  /** Waits until `dir` and its parents up to `top`, if this process just made them, are durable. */
  #madeDurable(dir: string, top: string): Promise<void> | undefined {
    if (this.#madeDirs.size === 0) return undefined;
    for (let d = dir; d.length > top.length; d = path.dirname(d)) {
      const pending = this.#madeDirs.get(d);
      if (pending) return pending;
    }
    return undefined;
  }
}
