import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { createGunzip, gunzip } from 'node:zlib';
import { byteCountOfStream, sha256OfStream } from '@filetracker/runtime';

const gunzipAsync = promisify(gunzip);

/**
 * Blobs up to this size are read and inflated in one call (streams cost more than the work
 * for small files, which most blobs are), into at most {@link WHOLE_INFLATE_MAX_OUTPUT}
 * bytes; a blob that inflates to more is streamed instead.
 */
const WHOLE_INFLATE_BELOW = 1024 * 1024;
const WHOLE_INFLATE_MAX_OUTPUT = 32 * 1024 * 1024;

/**
 * Decompresses a blob, counting (and with `hash`, hashing) the content. Rejects when the
 * blob is not valid gzip or is truncated.
 */
export async function inflateBlob(
  file: string,
  options: { hash: boolean; storedSize?: number; signal?: AbortSignal | undefined },
): Promise<{ logicalSize: number; digest: string | undefined }> {
  if (options.storedSize !== undefined && options.storedSize < WHOLE_INFLATE_BELOW) {
    const content = await gunzipAsync(await readFile(file), {
      maxOutputLength: WHOLE_INFLATE_MAX_OUTPUT,
    }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) return undefined;
      throw err;
    });
    if (content) {
      return {
        logicalSize: content.length,
        digest: options.hash ? createHash('sha256').update(content).digest('hex') : undefined,
      };
    }
  }
  const source = [createReadStream(file), createGunzip()] as const;
  if (!options.hash) {
    return { logicalSize: await byteCountOfStream(source, options.signal), digest: undefined };
  }
  const { digest, size } = await sha256OfStream(source, options.signal);
  return { logicalSize: size, digest };
}
