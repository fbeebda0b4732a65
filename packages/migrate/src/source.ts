import { stat } from 'node:fs/promises';
import path from 'node:path';
import { walkTree, type UnreadableDirHandler } from '@filetracker/runtime';

/** One entry of the tree being migrated (not a directory; possibly a symlink or a FIFO). */
export interface SourceEntry {
  /** Absolute path on disk. */
  path: string;
  /** The filetracker name: `/` + the path relative to the store root, `/`-separated. */
  name: string;
}

/**
 * The entries of `files` (a directory, walked with `walkTree`, or a single file) with
 * their names relative to `root`, which must contain `files`. Streams: one open directory
 * per level, whatever the tree size.
 */
export async function* walkSource(
  files: string,
  root: string,
  signal?: AbortSignal,
  onUnreadable?: UnreadableDirHandler,
): AsyncGenerator<SourceEntry> {
  const prefix = namePrefix(files, root);
  // FILES itself is followed if it is a symlink: the operator named it.
  const info = await stat(files);
  if (!info.isDirectory()) {
    yield { path: files, name: prefix };
    return;
  }
  for await (const entry of walkTree(files, signal, onUnreadable)) {
    yield { path: entry.absolute, name: `${prefix}/${entry.relative}` };
  }
}

/**
 * `/` + the path of `files` relative to `root` (`''` when they are the same), or a
 * `TypeError` when `files` is not inside `root`.
 */
export function namePrefix(files: string, root: string): string {
  const relative = path.relative(root, files);
  if (relative === '') return '';
  if (relative === '..' || relative.startsWith(`..${path.sep}`) || path.isAbsolute(relative)) {
    throw new TypeError(`${files} is not inside ${root}`);
  }
  return `/${relative.split(path.sep).join('/')}`;
}
