import { lstat } from 'node:fs/promises';
import { walkTree, type WalkEntry } from '@filetracker/runtime';

/** lstat calls in flight at once per listing: enough to hide the thread-pool round trip. */
const BATCH = 64;

/**
 * Names (relative to `dir`) of the links under `dir` whose version (the link's own mtime)
 * is `<= cutoff`, one line each. Links removed while we walk are skipped.
 */
export async function* listLinks(dir: string, cutoff: number): AsyncGenerator<string> {
  let batch: WalkEntry[] = [];
  const flush = async (): Promise<string> => {
    const stats = await Promise.all(batch.map((e) => lstat(e.absolute).catch(() => null)));
    let out = '';
    stats.forEach((st, i) => {
      if (st?.isSymbolicLink() && Math.floor(st.mtimeMs / 1000) <= cutoff) {
        out += batch[i]!.relative + '\n';
      }
    });
    batch = [];
    return out;
  };
  for await (const entry of walkTree(dir)) {
    if (!entry.dirent.isSymbolicLink()) continue;
    batch.push(entry);
    if (batch.length >= BATCH) {
      const chunk = await flush();
      if (chunk) yield chunk;
    }
  }
  const chunk = await flush();
  if (chunk) yield chunk;
}
