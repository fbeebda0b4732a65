import { stat } from 'node:fs/promises';
import path from 'node:path';
import { walkTree, type UnreadableDirHandler, type WalkEntry } from '@filetracker/runtime';
import { legacyName } from '@filetracker/shared-protocol/wire';
import { escapeBytes } from './byte-names.js';
import type { ExcludeMatcher } from './exclude.js';
import type { CopyEntry } from './sources/copy-source.js';

/**
 * One entry of the tree being migrated: not a directory (possibly a symlink or a FIFO),
 * unless `directory` says it is one that was not entered.
 */
export interface SourceEntry {
  /** Absolute path on disk (bytes that are not UTF-8 escaped, see `pathHex`). */
  path: string;
  /** The filetracker name: `/` + the path relative to the store root, `/`-separated. */
  name: string;
  /** Left out by `--exclude`: the pattern that matched. The entry is not read. */
  excludedBy?: string;
  /**
   * The path is not valid UTF-8, so it cannot be a filetracker name: its bytes in hex.
   * `path` and `name` then show them as `\xNN` (see escapeBytes).
   */
  pathHex?: string;
  /** A directory that was not entered (excluded, or its name is not UTF-8). */
  directory?: boolean;
  /**
   * A regular file by its directory entry's type, as the walk saw it (it may be something
   * else by the time it is read): the migrator opens it before taking its stat.
   */
  regular?: boolean;
  /**
   * A file of a filetracker 2.x source (`--from`, `--from-store`): `path` then says where
   * it is (its URL, or its link), and this reads it (see sources/copy-source.ts).
   */
  copy?: CopyEntry;
}

/** How {@link walkSource} walks. */
export interface SourceOptions {
  signal?: AbortSignal;
  /** Told of unreadable directories below FILES (see walkTree). */
  onUnreadable?: UnreadableDirHandler;
  /** `--exclude`: matched against paths relative to FILES (a single FILE: its name). */
  exclude?: ExcludeMatcher;
}

/**
 * The entries of `files` (a directory, walked with `walkTree`, or a single file) with
 * their names relative to `root`, which must contain `files`. Streams: one open directory
 * per level, whatever the tree size. Excluded directories are yielded, not entered.
 */
export async function* walkSource(
  files: string,
  root: string,
  options: SourceOptions = {},
): AsyncGenerator<SourceEntry> {
  const { exclude } = options;
  const prefix = legacyName(files, root);
  // FILES itself is followed if it is a symlink: the operator named it.
  const info = await stat(files);
  if (!info.isDirectory()) {
    const excludedBy = exclude?.(path.basename(files), false);
    yield { path: files, name: prefix, ...(excludedBy !== undefined && { excludedBy }) };
    return;
  }
  const walk = walkTree(files, options.signal, options.onUnreadable, {
    checkNames: true,
    descend: exclude && ((entry) => exclude(entry.relative, true) === undefined),
  });
  for await (const entry of walk) {
    const directory = entry.dirent.isDirectory();
    const excludedBy = exclude?.(entry.relative, directory);
    const source: SourceEntry =
      entry.nameBytes === undefined
        ? { path: entry.absolute, name: `${prefix}/${entry.relative}` }
        : notUtf8(entry, entry.nameBytes, prefix);
    if (excludedBy !== undefined) source.excludedBy = excludedBy;
    if (directory) source.directory = true;
    else if (entry.dirent.isFile()) source.regular = true;
    yield source;
  }
}

/**
 * The entry of a name that is not UTF-8, with its path escaped and its bytes in hex; its
 * name is `prefix` + `/` + the escaped relative path.
 */
export function notUtf8(entry: WalkEntry, nameBytes: Buffer, prefix: string): SourceEntry {
  // Only the last component can be invalid: the walk enters no such directory.
  const parent = path.dirname(entry.absolute);
  const escaped = escapeBytes(nameBytes);
  const relativeParent = path.posix.dirname(entry.relative);
  const relative = relativeParent === '.' ? escaped : `${relativeParent}/${escaped}`;
  return {
    path: path.join(parent, escaped),
    name: `${prefix}/${relative}`,
    pathHex: Buffer.concat([Buffer.from(`${parent}${path.sep}`), nameBytes]).toString('hex'),
  };
}
