import { randomBytes } from 'node:crypto';
import { mkdir, open, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * byte -> character of contest-like text: digits, spaces and newlines. It gzips about 2:1,
 * like the test inputs a contest store is mostly made of (random bytes would not
 * compress, zeros would compress 1000:1; both would make gzip look cheaper than it is).
 */
const ALPHABET = (() => {
  const t = Buffer.alloc(256);
  for (let i = 0; i < 256; i++) {
    if (i < 210) t[i] = 0x30 + (i % 10);
    else if (i < 250) t[i] = 0x20;
    else t[i] = 0x0a;
  }
  return t;
})();

/** `n` bytes of random contest-like text (see ALPHABET). */
export function textBytes(n: number): Buffer {
  const b = randomBytes(n);
  for (let i = 0; i < n; i++) b[i] = ALPHABET[b[i]!]!;
  return b;
}

/** A size drawn uniformly from [min, max]. */
export function sizeBetween(min: number, max: number): number {
  return min + Math.floor(Math.random() * (max - min + 1));
}

/** Relative path of the i-th small file: 100 files per directory, as test packages go. */
export function smallName(i: number): string {
  return `d${String(Math.floor(i / 100)).padStart(4, '0')}/t${String(i).padStart(6, '0')}.in`;
}

/**
 * Writes `count` files of `min`..`max` bytes under `dir` (see {@link smallName}), 32 at
 * once, with mtime `mtimeS` when given; returns their relative paths.
 */
export async function writeSmallTree(
  dir: string,
  count: number,
  min: number,
  max: number,
  mtimeS?: number,
): Promise<string[]> {
  const names = Array.from({ length: count }, (_, i) => smallName(i));
  const parents = [...new Set(names.map((n) => path.dirname(path.join(dir, n))))];
  await Promise.all(parents.map((p) => mkdir(p, { recursive: true })));
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < names.length) {
      const file = path.join(dir, names[next++]!);
      await writeFile(file, textBytes(sizeBetween(min, max)));
      if (mtimeS !== undefined) await utimes(file, mtimeS, mtimeS);
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  return names;
}

/** Writes `bytes` of contest-like text to `file` (an 8 MiB pattern repeated, far beyond gzip's 32 KiB window). */
export async function writeLargeFile(file: string, bytes: number): Promise<void> {
  const chunk = textBytes(Math.min(bytes, 8 * 1024 * 1024));
  const fh = await open(file, 'w');
  try {
    for (let pos = 0; pos < bytes; pos += chunk.length) {
      const n = Math.min(chunk.length, bytes - pos);
      await fh.write(chunk, 0, n, pos);
    }
  } finally {
    await fh.close();
  }
}
