import { opendir } from 'node:fs/promises';
import type { Dirent } from 'node:fs';
import path from 'node:path';

/** One non-directory entry found by {@link walkTree}. */
export interface WalkEntry {
  /** Path relative to the walked root, `/`-separated, no leading slash. */
  relative: string;
  /** Absolute path. */
  absolute: string;
  dirent: Dirent;
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
): AsyncGenerator<WalkEntry> {
  yield* walkDir(root, '', signal, onUnreadable);
}

/**
 * Told of a directory below the root that cannot be read (EACCES, EPERM, EIO); the walk
 * then goes on with the rest of the tree. Without one, such an error ends the walk.
 */
export type UnreadableDirHandler = (err: NodeJS.ErrnoException, absolute: string) => void;

async function* walkDir(
  dir: string,
  prefix: string,
  signal?: AbortSignal,
  onUnreadable?: UnreadableDirHandler,
): AsyncGenerator<WalkEntry> {
  let handle;
  try {
    handle = await opendir(dir, { bufferSize: 64 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return;
    if (onUnreadable && prefix !== '') {
      onUnreadable(err as NodeJS.ErrnoException, dir);
      return;
    }
    throw err;
  }
  for await (const dirent of handle) {
    signal?.throwIfAborted();
    const relative = prefix === '' ? dirent.name : `${prefix}/${dirent.name}`;
    const absolute = path.join(dir, dirent.name);
    if (dirent.isDirectory()) {
      yield* walkDir(absolute, relative, signal, onUnreadable);
    } else {
      yield { relative, absolute, dirent };
    }
  }
}
