import type { PositionalReader } from './positional-reader.js';
import { Readable } from 'node:stream';

/** A stream of a file's bytes that counts what it has read, as fs.ReadStream does. */
export type ReadAheadStream = Readable & { readonly bytesRead: number };

/**
 * A file's bytes as a stream, read `chunkBytes` at a time with the next read already in
 * flight while the current chunk is written out. Closes the handle at the end, on error,
 * and when the consumer stops early (a client that hangs up).
 *
 * fs.ReadStream reads only when its buffer has room, so the disk read and the socket
 * write of a download take turns. Measured on a 512 MiB file served to curl over
 * loopback: ReadStream with 1 MiB reads about 1,900 MiB/s, this about 2,900 MiB/s
 * (lighttpd's sendfile about 4,300 MiB/s). Memory: at most three chunks per download.
 *
 * For an HTTP answer sent as it is, sendFile is faster still (it reuses its buffers);
 * this is for a stream that goes on through a transform (ft-server inflating a blob for a
 * client that does not take gzip).
 *
 * `length`: the bytes the answer promised (its Content-Length). The stream ends right
 * after them, with no read at the end of the file that a client who has all its bytes
 * could hang up during; a file found shorter fails the stream.
 */
export function readAhead(
  handle: PositionalReader,
  chunkBytes: number,
  length = Infinity,
): ReadAheadStream {
  const read = (position: number) => {
    const n = Math.min(chunkBytes, length - position);
    return handle.read(Buffer.allocUnsafe(n), 0, n, position);
  };
  async function* chunks(): AsyncGenerator<Buffer> {
    let next: ReturnType<typeof read> | undefined = length > 0 ? read(0) : undefined;
    let position = 0;
    try {
      while (next) {
        const { bytesRead, buffer } = await next;
        next = undefined;
        if (bytesRead === 0) {
          if (length !== Infinity) throw new Error(`file ended at ${position} of ${length} bytes`);
          return;
        }
        position += bytesRead;
        stream.bytesRead = position;
        if (position < length) next = read(position);
        yield bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead);
      }
    } finally {
      // Stopped early: let the read in flight finish (its result is dropped), then close.
      await next?.catch(() => undefined);
      await handle.close();
    }
  }
  const stream = Object.assign(Readable.from(chunks(), { objectMode: false, highWaterMark: 1 }), {
    bytesRead: 0,
  });
  return stream;
}
