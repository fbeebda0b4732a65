import { stat } from 'node:fs/promises';
import { walkTree, type UnreadableDirHandler } from '@filetracker/runtime';
import { legacyName } from '@filetracker/shared-protocol';

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
  const prefix = legacyName(files, root);
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
