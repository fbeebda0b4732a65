import { opendir } from 'node:fs/promises';
import { isUtf8 } from 'node:buffer';
import type { Dirent } from 'node:fs';
import path from 'node:path';

/** One entry found by {@link walkTree}: not a directory, unless {@link WalkOptions} say so. */
export interface WalkEntry {
  /** Path relative to the walked root, `/`-separated, no leading slash. */
  relative: string;
  /** Absolute path. */
  absolute: string;
  /** Its type (`isFile()`...); with `checkNames` its `name` is a Buffer. */
  dirent: Dirent | Dirent<Buffer>;
  /**
   * With `checkNames`: the bytes of the entry's own name when they are not valid UTF-8.
   * `relative` and `absolute` then hold U+FFFD in their place and name nothing on disk.
   */
  nameBytes?: Buffer;
}

/** How {@link walkTree} reads names and which directories it enters. */
export interface WalkOptions {
  /**
   * Read names as bytes, so a name that is not valid UTF-8 is told apart (`nameBytes`)
   * instead of being decoded into a path that names nothing. Such a directory is yielded,
   * not entered: nothing under it has a UTF-8 path either.
   */
  checkNames?: boolean;
  /**
   * Asked about each directory below the root before it is read: `false` yields the
   * directory itself as an entry, and nothing under it is read.
   */
  descend?: (entry: WalkEntry) => boolean;
}

/**
 * Walks a directory tree depth-first and yields every entry that is not a directory
 * (symlinks are not followed). Pull-based: it reads a directory only as fast as the
 * consumer takes entries, so a listing of millions of names served to a slow client, or a
 * migration of a huge tree, holds one open directory per level and nothing more.
 * (@nodelib/fs.walk's stream pushes without backpressure, which is why this is ours.)
 * Entries that vanish during the walk are skipped.
 */
export async function* walkTree(
  root: string,
  signal?: AbortSignal,
  onUnreadable?: UnreadableDirHandler,
  options: WalkOptions = {},
): AsyncGenerator<WalkEntry> {
  yield* walkDir(root, '', signal, onUnreadable, options);
}

/**
 * Told of a directory below the root that cannot be read (EACCES, EPERM, EIO); the walk
 * then goes on with the rest of the tree. Without one, such an error ends the walk.
 */
export type UnreadableDirHandler = (err: NodeJS.ErrnoException, absolute: string) => void;

async function* walkDir(
  dir: string,
  prefix: string,
  signal: AbortSignal | undefined,
  onUnreadable: UnreadableDirHandler | undefined,
  options: WalkOptions,
): AsyncGenerator<WalkEntry> {
  let handle;
  try {
    handle = options.checkNames
      ? await opendir(dir, { bufferSize: 64, encoding: 'buffer' as BufferEncoding })
      : await opendir(dir, { bufferSize: 64 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return;
    if (onUnreadable && prefix !== '') {
      onUnreadable(err as NodeJS.ErrnoException, dir);
      return;
    }
    throw err;
  }
  for await (const dirent of handle as AsyncIterable<Dirent | Dirent<Buffer>>) {
    signal?.throwIfAborted();
    const raw = dirent.name;
    const name = typeof raw === 'string' ? raw : raw.toString('utf8');
    const relative = prefix === '' ? name : `${prefix}/${name}`;
    const entry: WalkEntry = { relative, absolute: path.join(dir, name), dirent };
    if (typeof raw !== 'string' && !isUtf8(raw)) entry.nameBytes = raw;
    if (
      dirent.isDirectory() &&
      entry.nameBytes === undefined &&
      (options.descend?.(entry) ?? true)
    ) {
      yield* walkDir(entry.absolute, relative, signal, onUnreadable, options);
    } else {
      yield entry;
    }
  }
}
