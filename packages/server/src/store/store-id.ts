import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { rename, unlink, writeDurably } from './fs-calls.js';
import { tmpFile, type StoreLayout } from './layout.js';

/**
 * The file in the store root holding the store's identity. Beside Python's `blobs/`,
 * `links/`, `db/` and `locks/`, not in `meta/`: ft-recover rebuilds `meta/` (adopting a
 * store, or after losing it) and must not give the store a new identity.
 */
export const STORE_ID_FILE = 'ft-store-id';

/** What {@link loadStoreId} accepts as an identity (a UUID, or one an operator chose). */
const STORE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Never follow a symlink out of the store (see store.ts, READ_BLOB). */
const READ_NO_FOLLOW = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW;

/**
 * The identity of the store at `layout`, made (a random UUID) at its first open: a new
 * store, a store from before identities, or one ft-recover adopted from the Python server.
 * ft-migrate binds its state file to it (issue 18: a rehearsal's state must not skip the
 * files of another store). Call it holding the store's lock, `ft-tmp/` emptied.
 *
 * Written to `ft-tmp/` with O_SYNC and renamed into place; the caller fsyncs the root.
 * Losing a new identity to a power cut before that fsync only makes another one at the
 * next open, which a migration's state then does not match: it re-checks the store
 * instead of trusting itself, which is the safe side. For the same reason a file that
 * holds no identity (a hand edit) is replaced, with a warning, instead of refusing to open.
 */
export async function loadStoreId(
  layout: StoreLayout,
  warn: (details: Record<string, unknown>, message: string) => void,
): Promise<string> {
  const file = path.join(layout.root, STORE_ID_FILE);
  let text: string | undefined;
  try {
    const handle = await open(file, READ_NO_FOLLOW);
    try {
      text = await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') text = '(a symlink)';
    else if (code !== 'ENOENT') throw err;
  }
  if (text !== undefined) {
    const id = text.trim();
    if (STORE_ID.test(id)) return id;
    warn(
      { file, found: text.slice(0, 80) },
      'the store identity file holds no identity: a new one replaces it',
    );
  }
  const id = randomUUID();
  const tmp = tmpFile(layout.tmp, 'identity');
  try {
    await writeDurably(tmp, Buffer.from(`${id}\n`));
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  return id;
}
