import { open } from 'node:fs/promises';

/**
 * Deflate cannot compress better than about 1032:1 (RFC 1951: a 258-byte match coded in one
 * bit plus block overhead), so a gzip smaller than this holds less than 4 GiB and its ISIZE
 * trailer (the content size mod 2^32) is the exact size. Larger blobs are decompressed.
 */
export const ISIZE_EXACT_BELOW = Math.floor(2 ** 32 / 1032);

/** What the first and last bytes of a blob say, read without decompressing it. */
export interface GzipFrame {
  storedSize: number;
  /** Starts with the gzip magic bytes 1f 8b. */
  isGzip: boolean;
  /** The ISIZE trailer (last 4 bytes, little endian), or undefined when too short. */
  isize: number | undefined;
}

export async function readGzipFrame(file: string): Promise<GzipFrame> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const head = Buffer.alloc(2);
    const tail = Buffer.alloc(4);
    if (size >= 2) await handle.read(head, 0, 2, 0);
    // A gzip is at least 18 bytes: 10 of header, an empty deflate block, 8 of trailer.
    if (size >= 18) await handle.read(tail, 0, 4, size - 4);
    return {
      storedSize: size,
      isGzip: size >= 18 && head[0] === 0x1f && head[1] === 0x8b,
      isize: size >= 18 ? tail.readUInt32LE(0) : undefined,
    };
  } finally {
    await handle.close();
  }
}

/**
 * The logical size the trailer gives, when it can be trusted: the blob is gzip, too small to
 * hold 4 GiB, and not much larger than the size it claims (a gzip of several members, which
 * our uploads never make, would carry only the last member's size; its frame then usually
 * fails this test and the blob is decompressed instead).
 */
export function trailerLogicalSize(frame: GzipFrame): number | undefined {
  if (!frame.isGzip || frame.isize === undefined) return undefined;
  if (frame.storedSize >= ISIZE_EXACT_BELOW) return undefined;
  // Stored deflate blocks add 5 bytes per <= 64 KiB; headers may carry a file name.
  if (frame.storedSize > frame.isize + Math.ceil(frame.isize / 16) + 1024) return undefined;
  return frame.isize;
}
