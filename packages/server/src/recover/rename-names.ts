import { lstat, opendir, rename } from 'node:fs/promises';
import path from 'node:path';
import type { MetaDb } from '../store/meta-db.js';
import { decodeDoubleEncoded } from './double-encoding.js';

export interface RenameContext {
  /** Only count what would be renamed. */
  check: boolean;
  /**
   * The adoption database, or undefined in check mode. Before each rename a mark of the
   * new path goes in (MetaDb.markRenamed), so a run resumed after a crash does not decode a
   * real name twice.
   */
  meta: MetaDb | undefined;
  /** A double-encoded name whose real name is taken already: it stays as it is. */
  onConflict(from: string, to: string): void;
  /** Called once per directory entry looked at (progress). */
  tick(): void;
  signal?: AbortSignal | undefined;
}

export interface RenameResult {
  renamed: number;
  conflicts: number;
}

/**
 * Renames every double-encoded file and directory name under `links/` to its real UTF-8
 * name (see {@link decodeDoubleEncoded}), directories before what they hold. Renames in a
 * directory wait until it has been read to its end, so the listing never sees its own
 * changes. Memory: one open directory per level plus the names to rename in each.
 */
export async function renameDoubleEncoded(
  linksDir: string,
  ctx: RenameContext,
): Promise<RenameResult> {
  const result: RenameResult = { renamed: 0, conflicts: 0 };
  await renameIn(linksDir, '', ctx, result);
  return result;
}

async function renameIn(
  dir: string,
  prefix: string,
  ctx: RenameContext,
  result: RenameResult,
): Promise<void> {
  let handle;
  try {
    handle = await opendir(dir, { bufferSize: 64 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return;
    throw err;
  }
  const pending: { name: string; real: string; isDirectory: boolean }[] = [];
  for await (const dirent of handle) {
    ctx.signal?.throwIfAborted();
    ctx.tick();
    const relative = prefix === '' ? dirent.name : `${prefix}/${dirent.name}`;
    const real = decodeDoubleEncoded(dirent.name);
    if (real !== undefined && !(await wasRenamed(ctx, relative))) {
      pending.push({ name: dirent.name, real, isDirectory: dirent.isDirectory() });
    } else if (dirent.isDirectory()) {
      await renameIn(path.join(dir, dirent.name), relative, ctx, result);
    }
  }
  for (const { name, real, isDirectory } of pending) {
    const from = path.join(dir, name);
    const to = path.join(dir, real);
    const relative = prefix === '' ? real : `${prefix}/${real}`;
    if (await lexists(to)) {
      result.conflicts++;
      ctx.onConflict(from, to);
      if (isDirectory)
        await renameIn(from, prefix === '' ? name : `${prefix}/${name}`, ctx, result);
      continue;
    }
    result.renamed++;
    if (ctx.check || !ctx.meta) {
      if (isDirectory) await renameIn(from, relative, ctx, result);
      continue;
    }
    await ctx.meta.markRenamed(relative);
    await rename(from, to);
    if (isDirectory) await renameIn(to, relative, ctx, result);
  }
}

async function wasRenamed(ctx: RenameContext, relative: string): Promise<boolean> {
  return (await ctx.meta?.wasRenamed(relative)) ?? false;
}

async function lexists(p: string): Promise<boolean> {
  return lstat(p).then(
    () => true,
    () => false,
  );
}
