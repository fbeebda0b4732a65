import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * The file beside LevelDB's `LOCK` that names the process holding it. The lock itself is
 * an flock on an empty file and tells nobody who holds it; an operator told only "in use"
 * had to hunt for the process (issue 17).
 */
export const HOLDER_FILE = 'LOCK.pid';

/**
 * Writes this process's PID beside the lock of the database in `dbDir`; call once the
 * lock is held. A failure is ignored: the store works without the file, and a second
 * process is then told the store is in use without the PID.
 */
export async function recordHolder(dbDir: string): Promise<void> {
  await writeFile(path.join(dbDir, HOLDER_FILE), `${process.pid}\n`).catch(() => {});
}

/**
 * Removes the file {@link recordHolder} wrote, if it still names this process; call while
 * the lock is still held, so that it cannot remove the file of the next holder.
 */
export async function forgetHolder(dbDir: string): Promise<void> {
  if ((await readHolder(dbDir)) === process.pid) {
    await rm(path.join(dbDir, HOLDER_FILE), { force: true }).catch(() => {});
  }
}

/**
 * The PID of the process that holds the lock of the database in `dbDir`, as its file says,
 * or undefined when there is no such file or the process it names is gone (a holder that
 * was killed leaves its file behind: that PID is no holder, and may be reused by another
 * program).
 */
export async function lockHolder(dbDir: string): Promise<number | undefined> {
  const pid = await readHolder(dbDir);
  if (pid === undefined || pid === process.pid) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (err) {
    // EPERM: it exists, under another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? pid : undefined;
  }
}

async function readHolder(dbDir: string): Promise<number | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(dbDir, HOLDER_FILE), 'utf8');
  } catch {
    return undefined;
  }
  const pid = Number(text.trim());
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * The one line ft-server, ft-recover and `ft-migrate --into` say when the store `root` is held by another
 * process (invariant 5), naming it by `pid` when known.
 */
export function inUseMessage(root: string, pid: number | undefined): string {
  const holder = pid === undefined ? '' : ` (pid ${pid})`;
  return `the store ${root} is in use by a running ft-server, ft-recover or ft-migrate --into${holder}; stop it first`;
}
