import fs, { type Stats } from 'node:fs';
import { SMALL_FILE_BYTES } from '@filetracker/shared-protocol/wire';

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;

/** A small regular file opened before its stat, and its stat taken on the descriptor. */
export interface OpenedFile {
  fd: number;
  info: Stats;
}

/**
 * Opens what the walk saw as a regular file and takes its stat on the descriptor: one
 * trip to the thread pool where an lstat and then the open made two (issue 15), as the
 * open is what waits for the disk and an fstat of an open file never does. Undefined,
 * with nothing left open, unless it is still a regular file below the client's in-memory
 * limit: gone, unreadable, replaced by a symlink (never followed here: `O_NOFOLLOW`) or by
 * something else, or large. The caller then takes the usual way (lstat, then read by path)
 * and reports what it finds as it always did. A FIFO put in its place does not block the
 * open (`O_NONBLOCK`). The caller reads the file with {@link readSmallFile}, which closes
 * it, or closes it itself.
 */
export function openSmallFile(path: string): Promise<OpenedFile | undefined> {
  return new Promise((resolve) => {
    fs.open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW, (err, fd) => {
      if (err) {
        resolve(undefined);
        return;
      }
      let info: Stats | undefined;
      try {
        info = fs.fstatSync(fd);
      } catch {
        // left to the usual way
      }
      if (info?.isFile() && info.size < SMALL_FILE_BYTES) {
        resolve({ fd, info });
        return;
      }
      closeQuietly(fd);
      resolve(undefined);
    });
  });
}

/** Closes a descriptor only read from: nothing to write back, so nothing to report. */
export function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // EBADF would be our bug; EIO cannot come from a descriptor only read from
  }
}

/**
 * Reads a small regular file whole, `size` bytes by its lstat, in two calls to the
 * thread pool (open, read) where `fs.readFile` after a `stat` made five; the
 * migrator's per-file cost was mostly such round trips (issue 15). Without
 * `followSymlinks` a file replaced by a symlink since its lstat is not followed (`ELOOP`);
 * a FIFO put in its place does not block the open (`O_NONBLOCK`). A file whose size
 * is not `size` any more fails with code `CHANGED`. `opened`: the file's descriptor from
 * {@link openSmallFile}, read instead of opening the path again (one call to the pool);
 * closed here in any case.
 */
export function readSmallFile(
  path: string,
  size: number,
  followSymlinks: boolean,
  opened?: number,
): Promise<Buffer> {
  const flags = O_RDONLY | O_NONBLOCK | (followSymlinks ? 0 : O_NOFOLLOW);
  const open = (then: (err: Error | null, fd: number) => void): void => {
    if (opened === undefined) fs.open(path, flags, then);
    else then(null, opened);
  };
  return new Promise((resolve, reject) => {
    open((openErr, fd) => {
      if (openErr) {
        reject(openErr);
        return;
      }
      // One byte more than expected, to see a file that grew.
      const buffer = Buffer.allocUnsafe(size + 1);
      let filled = 0;
      const finish = (err: Error | null): void => {
        // Closing a descriptor only read from writes nothing back: cheaper on this thread
        // than a round trip through the pool.
        try {
          fs.closeSync(fd);
        } catch (closeErr) {
          err ??= closeErr as Error;
        }
        if (err) reject(err);
        else resolve(buffer.subarray(0, filled));
      };
      const readMore = (): void => {
        const wanted = buffer.length - filled;
        fs.read(fd, buffer, filled, wanted, filled, (readErr, n) => {
          if (readErr) {
            finish(readErr);
            return;
          }
          filled += n;
          // A short read of a regular file is its end.
          if (n < wanted) finish(filled === size ? null : changed(size, filled));
          else if (filled > size) finish(changed(size, filled));
          else readMore();
        });
      };
      readMore();
    });
  });
}

function changed(size: number, read: number): Error {
  return Object.assign(
    new Error(
      `changed while it was read (${size} bytes by its stat, ${read}${read > size ? ' or more' : ''} read): run again to upload it`,
    ),
    { code: 'CHANGED' },
  );
}
