import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** The sha256 (hex) and byte count of a stream, read in bounded memory. */
export async function sha256OfStream(
  stream: Readable,
  signal?: AbortSignal,
): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  await pipeline(
    stream,
    async (chunks: AsyncIterable<Buffer>) => {
      for await (const chunk of chunks) {
        hash.update(chunk);
        size += chunk.length;
      }
    },
    { signal },
  );
  return { digest: hash.digest('hex'), size };
}

/** The sha256 (hex) and byte count of a file. */
export function sha256OfFile(
  path: string,
  signal?: AbortSignal,
): Promise<{ digest: string; size: number }> {
  return sha256OfStream(createReadStream(path), signal);
}
