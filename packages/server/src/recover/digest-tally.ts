import { isDigest } from '../store/layout.js';

/**
 * digest -> number of links, for every blob file found. Memory: each digest is kept as its
 * 31 remaining raw bytes in a latin-1 string (about 48 bytes on V8) in one of 256 Maps
 * chosen by the first byte, about 100 bytes per digest with the Map entry: a million blobs
 * take ~100 MB, ten million ~1 GB. The sharding also keeps each Map far below V8's limit of
 * 2^24 entries per Map, which one Map of a large store would hit.
 */
export class DigestTally {
  readonly #shards: Map<string, number>[] = Array.from({ length: 256 }, () => new Map());

  #locate(digest: string): [Map<string, number>, string] {
    const raw = Buffer.from(digest, 'hex');
    return [this.#shards[raw[0]!]!, raw.subarray(1).toString('latin1')];
  }

  /** Records a blob file with no links counted yet. */
  addBlob(digest: string): void {
    const [shard, key] = this.#locate(digest);
    if (!shard.has(key)) shard.set(key, 0);
  }

  /** Counts a link to `digest`; false (nothing counted) when there is no such blob. */
  addLink(digest: string): boolean {
    const [shard, key] = this.#locate(digest);
    const n = shard.get(key);
    if (n === undefined) return false;
    shard.set(key, n + 1);
    return true;
  }

  /** Sets every link count back to 0, keeping the blobs. */
  clearLinks(): void {
    for (const shard of this.#shards) {
      for (const key of shard.keys()) shard.set(key, 0);
    }
  }

  /** Links counted to a blob, or undefined when there is no blob file of `digest`. */
  count(digest: string): number | undefined {
    if (!isDigest(digest)) return undefined;
    const [shard, key] = this.#locate(digest);
    return shard.get(key);
  }

  /** Every blob and its link count. */
  *entries(): Generator<[string, number]> {
    for (let first = 0; first < 256; first++) {
      const prefix = first.toString(16).padStart(2, '0');
      for (const [key, n] of this.#shards[first]!) {
        yield [prefix + Buffer.from(key, 'latin1').toString('hex'), n];
      }
    }
  }
}
