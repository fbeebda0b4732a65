import { constants, type Stats } from 'node:fs';
import { access, lstat, stat } from 'node:fs/promises';
import { inBatches, walkTree, type SendProgress, type WalkEntry } from '@filetracker/runtime';
import { NotADirectoryError, legacyVersion } from '@filetracker/shared-protocol';
import { denied, type RootGuard } from './root-guard.js';

/** stat calls in flight at once per listing: enough to hide the thread-pool round trip. */
const BATCH = 64;

/** stat errors that mean the entry is gone (or names nothing reachable): skipped. */
const GONE = new Set(['ENOENT', 'ENOTDIR', 'ELOOP', 'ENAMETOOLONG']);

async function statOrGone(
  call: (path: string) => Promise<Stats>,
  path: string,
): Promise<Stats | undefined> {
  try {
    return await call(path);
  } catch (err) {
    if (GONE.has((err as NodeJS.ErrnoException).code ?? '')) return undefined;
    throw err;
  }
}

/**
 * The version of a listed entry, or undefined when a GET of it would be 404: what is
 * served is what is listed. A regular file gives its mtime; a symlink is followed as a GET
 * follows it (realpath, then it must land under the roots: a link out of FT_ROOT is not
 * listed) and gives its target's mtime if that is a regular file. A link to a directory is
 * not entered (the walk would loop on a link to a parent, and list the same files twice).
 */
async function versionOf(guard: RootGuard, entry: WalkEntry): Promise<number | undefined> {
  let st = await statOrGone(lstat, entry.absolute);
  if (st?.isSymbolicLink()) {
    const real = await guard.resolvePath(entry.absolute);
    st = real === undefined ? undefined : await statOrGone(stat, real);
  }
  return st?.isFile() ? legacyVersion(st.mtimeMs) : undefined;
}

/**
 * `GET /list/{dir}` of a 1.x tree, as ft-server answers it (PROTOCOL.md `GET /list`): every
 * file under `FT_ROOT/files/{dir}`, recursively, relative to it, one per line, with a
 * version (mtime, {@link legacyVersion}) `<= cutoff`. What a GET would not serve is not
 * listed: FIFOs, sockets and devices, symlinks out of the roots, and names that are not
 * UTF-8 (no request can name them). Checks the directory now (absent or a file: 400
 * `NOT_A_DIRECTORY`; unreadable: 403) and returns the listing unstarted, streamed in
 * chunks of up to {@link BATCH} lines: memory holds one open directory per level and one
 * batch, never the listing. `progress` counts the bytes yielded, for the request log.
 */
export async function openLegacyListing(
  guard: RootGuard,
  components: readonly string[],
  cutoff: number,
  progress?: SendProgress,
): Promise<AsyncGenerator<string>> {
  const real = await guard.resolve(components);
  const st = real === undefined ? undefined : await statOrGone(stat, real);
  if (real === undefined || !st?.isDirectory()) throw new NotADirectoryError();
  try {
    // Refused now, with a status, rather than once the body has begun.
    await access(real, constants.R_OK | constants.X_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (code === 'EACCES' || code === 'EPERM') throw denied(err);
    if (GONE.has(code)) throw new NotADirectoryError();
    throw err;
  }
  return listTree(guard, real, cutoff, progress);
}

async function* listTree(
  guard: RootGuard,
  dir: string,
  cutoff: number,
  progress: SendProgress | undefined,
): AsyncGenerator<string> {
  // checkNames: a name that is not UTF-8 comes with nameBytes (and such a directory is not
  // entered), so it is skipped instead of listed with U+FFFD in it.
  const entries = walkTree(dir, undefined, undefined, { checkNames: true });
  for await (const batch of inBatches(entries, BATCH)) {
    const versions = await Promise.all(
      batch.map((e) =>
        e.nameBytes === undefined && (e.dirent.isFile() || e.dirent.isSymbolicLink())
          ? versionOf(guard, e)
          : undefined,
      ),
    );
    let out = '';
    versions.forEach((version, i) => {
      if (version !== undefined && version <= cutoff) out += batch[i]!.relative + '\n';
    });
    if (progress) progress.bytesRead += Buffer.byteLength(out);
    if (out) yield out;
  }
}
