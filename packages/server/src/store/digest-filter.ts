import { BloomFilter } from 'bloomfilter';

/** The share of never-stored digests the filter answers "maybe" for, at its capacity. */
const FALSE_POSITIVES = 0.01;

/**
 * Which digests `meta/` may hold a record of, as a Bloom filter (about 1.2 MB per million
 * digests). Its "no" is certain, so an upload of content the store has never held skips
 * the database read that would say so: one trip through the thread pool of about ten per
 * new name (PUT on tmpfs, 64 connections: 5,000 -> 5,600/s with that read skipped).
 *
 * A "no" that is wrong would make an upload of stored content start its refcount again at
 * 1, so the filter must hold every digest the database holds. It is built from a snapshot
 * of the database, plus every digest {@link add}ed from the moment before the snapshot is
 * taken; {@link add} must be called after each write of a record has settled (landed or
 * failed), so a write the snapshot misses is one the build sees added. Records deleted
 * stay in the filter (a "maybe", so a read). Until the first build ends every answer is
 * "maybe". When more digests have been added than it was sized for, its "maybe" grows
 * common, so it is built again, twice the size, while the old one goes on answering.
 */
export class DigestFilter {
  readonly #scan: () => AsyncIterable<string>;
  readonly #minCapacity: number;
  #filter: BloomFilter | undefined;
  #capacity = 0;
  /** Digests in the filter, as far as known (a digest added twice counts twice). */
  #count = 0;
  /** While a build runs: the digests added since it started. */
  #since: Set<string> | undefined;

  /**
   * `scan` lists the database's digests from a snapshot taken when iteration starts;
   * `minCapacity`: the least number of digests a filter is sized for.
   */
  constructor(scan: () => AsyncIterable<string>, minCapacity = 1_000_000) {
    this.#scan = scan;
    this.#minCapacity = minCapacity;
  }

  /** False only for a digest the database certainly holds no record of. */
  mayHold(digest: string): boolean {
    return this.#filter === undefined || this.#filter.test(digest);
  }

  /** Whether the filter answers yet (false until the first build ends). */
  get ready(): boolean {
    return this.#filter !== undefined;
  }

  /** How many digests the current filter was sized for (0 before the first build). */
  get capacity(): number {
    return this.#capacity;
  }

  /** Notes a digest whose record was just written (or whose write failed: it may have landed). */
  add(digest: string): void {
    this.#since?.add(digest);
    if (this.#filter === undefined) return;
    this.#filter.add(digest);
    if (++this.#count > this.#capacity && this.#since === undefined) {
      void this.build(2 * this.#count).catch(() => {
        // Closed meanwhile: the old filter stays, still right.
      });
    }
  }

  /**
   * Builds a filter for at least `expected` digests from a scan of the database and puts
   * it in place of the current one. A failed scan (a closed database) leaves the current
   * one. One build at a time: a call while one runs returns at once.
   */
  async build(expected: number): Promise<void> {
    if (this.#since !== undefined) return;
    const capacity = Math.max(this.#minCapacity, Math.ceil(expected));
    const filter = BloomFilter.withTargetError(capacity, FALSE_POSITIVES);
    // Before the scan's snapshot exists: a write it misses settles after this point.
    const since = new Set<string>();
    this.#since = since;
    let count = 0;
    try {
      for await (const digest of this.#scan()) {
        filter.add(digest);
        count++;
      }
    } finally {
      this.#since = undefined;
    }
    for (const digest of since) filter.add(digest);
    this.#filter = filter;
    this.#capacity = capacity;
    this.#count = count + since.size;
  }
}
