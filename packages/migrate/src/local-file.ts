import fs from 'node:fs';

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;

/**
 * Reads a small regular file whole, `size` bytes by its lstat, in two calls to the
 * thread pool (open, read) where `fs.readFile` after a `stat` made five; the
 * migrator's per-file cost was mostly such round trips (issue 15). Without
 * `followSymlinks` a file replaced by a symlink since its lstat is not followed (`ELOOP`);
 * a FIFO put in its place does not block the open (`O_NONBLOCK`). A file whose size
 * is not `size` any more fails with code `CHANGED`.
 */
export function readSmallFile(
  path: string,
  size: number,
  followSymlinks: boolean,
): Promise<Buffer> {
  const flags = O_RDONLY | O_NONBLOCK | (followSymlinks ? 0 : O_NOFOLLOW);
  return new Promise((resolve, reject) => {
    fs.open(path, flags, (openErr, fd) => {
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
