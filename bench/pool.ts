import { createHash } from 'node:crypto';
import { open, readFile, writeFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { sizeBetween, smallName, textBytes } from './data.js';

/** One pre-built PUT: the gzip of a small file and the headers the Python client sends. */
export interface PoolEntry {
  /** The name, e.g. `/put/d0000/t000000.in`. */
  name: string;
  sha256: string;
  logicalSize: number;
  offset: number;
  length: number;
}

/** Where a pool lives: an index (one entry a line) and the gzip bodies back to back. */
export interface PoolFiles {
  index: string;
  bodies: string;
}

/**
 * Builds `count` distinct small files (1-10 KiB of contest-like text), gzipped at level 6
 * as the Python client does, with their SHA-256 and size. Index lines are
 * `/files{name} sha256 logicalSize offset length`, the format the wrk PUT script reads.
 */
export async function buildPool(
  files: PoolFiles,
  count: number,
  minBytes: number,
  maxBytes: number,
): Promise<void> {
  const out = await open(files.bodies, 'w');
  const lines: string[] = [];
  let offset = 0;
  try {
    for (let i = 0; i < count; i++) {
      const data = textBytes(sizeBetween(minBytes, maxBytes));
      const gz = gzipSync(data, { level: 6 });
      const sha = createHash('sha256').update(data).digest('hex');
      await out.write(gz);
      lines.push(`/files/put/${smallName(i)} ${sha} ${data.length} ${offset} ${gz.length}\n`);
      offset += gz.length;
    }
  } finally {
    await out.close();
  }
  await writeFile(files.index, lines.join(''));
}

/** Reads a pool back (for the bare write/fsync/rename script). */
export async function readPool(files: PoolFiles): Promise<{ entries: PoolEntry[]; data: Buffer }> {
  const [index, data] = await Promise.all([readFile(files.index, 'utf8'), readFile(files.bodies)]);
  const entries = index
    .split('\n')
    .filter((l) => l.length > 0)
    .map((line) => {
      const [p, sha256, size, offset, length] = line.split(' ');
      return {
        name: p!.slice('/files'.length),
        sha256: sha256!,
        logicalSize: Number(size),
        offset: Number(offset),
        length: Number(length),
      };
    });
  return { entries, data };
}
