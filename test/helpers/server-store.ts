import assert from 'node:assert/strict';
import { lstat, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';

async function walk(root: string, rel = ''): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(path.join(root, rel), { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: string[] = [];
  for (const e of entries) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) {
      out.push(`dir ${r}/`);
      out.push(...(await walk(root, r)));
    } else if (e.isSymbolicLink()) {
      const abs = path.join(root, r);
      const st = await lstat(abs);
      out.push(`link ${r} -> ${await readlink(abs)} @${Math.floor(st.mtimeMs / 1000)}`);
    } else {
      const st = await lstat(path.join(root, r));
      out.push(`file ${r} ${st.size}`);
    }
  }
  return out;
}

/**
 * What a client could observe of a store: every entry under `links/` (directories too,
 * since `/list` of an empty directory is 200) with link targets and versions, and every
 * blob file with its size. Sorted, so two snapshots compare with deepEqual.
 */
export async function snapshotStore(dir: string): Promise<string[]> {
  const links = (await walk(path.join(dir, 'links'))).map((e) => `links: ${e}`);
  const blobs = (await walk(path.join(dir, 'blobs')))
    .filter((e) => !e.startsWith('dir '))
    .map((e) => `blobs: ${e}`);
  return [...links, ...blobs].sort();
}

/** Blob files (`blobs/xx/<sha256>`), as relative paths. */
export async function blobFiles(dir: string): Promise<string[]> {
  return (await walk(path.join(dir, 'blobs')))
    .filter((e) => e.startsWith('file '))
    .map((e) => e.split(' ')[1]!)
    .sort();
}

/** Entries left in `ft-tmp/` (uploads and links in flight). */
export async function tmpEntries(dir: string): Promise<string[]> {
  return readdir(path.join(dir, 'ft-tmp'));
}

/** Polls `check` every 20 ms until it returns true or `timeoutMs` passes; returns the last result. */
export async function waitUntil(
  check: () => Promise<boolean> | boolean,
  timeoutMs = 2_000,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** How long `ft-tmp/` must stay empty to count as settled. */
const QUIET_MS = 250;

/** What {@link assertStoreUnchanged} looks at: a StoreView of backends.ts, or a local dir. */
export interface StoreSnapshots {
  snapshot(): Promise<string[]>;
  tmpEntries(): Promise<string[]>;
}

/**
 * Asserts the store looks exactly as in `before` and `ft-tmp/` is empty, waiting up to
 * `timeoutMs` for a cleanup the server does after answering (or after the client left).
 * With a wait, `ft-tmp/` must be empty and stay so for QUIET_MS: a client that hung up
 * can be gone before the server has even created the upload's temp file.
 */
export async function assertStoreUnchanged(
  store: StoreSnapshots,
  before: string[],
  timeoutMs = 0,
): Promise<void> {
  let quietSince: number | undefined;
  await waitUntil(async () => {
    if ((await store.tmpEntries()).length > 0) {
      quietSince = undefined;
      return false;
    }
    quietSince ??= Date.now();
    return Date.now() - quietSince >= QUIET_MS;
  }, timeoutMs);
  assert.deepEqual(await store.tmpEntries(), [], 'ft-tmp/ is empty');
  assert.deepEqual(await store.snapshot(), before, 'store unchanged');
}
