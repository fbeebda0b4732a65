import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Writable, type Duplex, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** What {@link sha256OfStream} found: the content's digest and length. */
export interface StreamDigest {
  /** sha256, 64 lowercase hex digits. */
  digest: string;
  /** Bytes read. */
  size: number;
}

/** A stream, or a stream and the transforms its bytes go through (a gunzip), in order. */
export type ByteSource = Readable | readonly [Readable, ...Duplex[]];

/** Reads `source` to its end, feeding `hash` if given; resolves with the bytes read. */
async function drain(
  source: ByteSource,
  hash: Hash | undefined,
  signal: AbortSignal | undefined,
): Promise<number> {
  let size = 0;
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      hash?.update(chunk);
      size += chunk.length;
      callback();
    },
  });
  const streams = Array.isArray(source) ? source : [source as Readable];
  await pipeline([...streams, sink], { signal });
  return size;
}

/**
 * The sha256 (hex) and byte count of a stream (or of what comes out of its transforms),
 * read in bounded memory: each chunk is hashed and dropped. Rejects with any stream's
 * error, or when `signal` aborts; every stream is destroyed then.
 */
export async function sha256OfStream(
  source: ByteSource,
  signal?: AbortSignal,
): Promise<StreamDigest> {
  const hash = createHash('sha256');
  const size = await drain(source, hash, signal);
  return { digest: hash.digest('hex'), size };
}

/** The byte count of a stream (or of what comes out of its transforms), as above. */
export function byteCountOfStream(source: ByteSource, signal?: AbortSignal): Promise<number> {
  return drain(source, undefined, signal);
}

/** The sha256 (hex) and byte count of a file. */
export function sha256OfFile(path: string, signal?: AbortSignal): Promise<StreamDigest> {
  return sha256OfStream(createReadStream(path), signal);
}
