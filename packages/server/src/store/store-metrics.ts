import type { MetadataEvents, MetadataStore } from './metadata-store.js';

/**
 * Counters a metrics exporter may read. Blob and tombstone totals start from one pass over
 * the metadata store in the background after open (a snapshot taken before any request, so
 * adding the changes made since is exact).
 */
export interface StoreStats {
  dedupHits: number;
  uploadsInFlight: number;
  blobs: number;
  blobBytes: number;
  tombstones: number;
  /** The background count has finished: blobs, blobBytes and tombstones are totals. */
  countsReady: boolean;
}

/**
 * The store's counters, kept apart from the store (as bazel-remote's `metricsDecorator`
 * keeps its counters out of the cache it wraps): the metadata store reports blobs and
 * tombstones as they come and go ({@link MetadataEvents}), the store its uploads.
 */
export class StoreMetrics implements MetadataEvents {
  readonly stats: StoreStats = {
    dedupHits: 0,
    uploadsInFlight: 0,
    blobs: 0,
    blobBytes: 0,
    tombstones: 0,
    countsReady: false,
  };

  blobCountChanged(delta: 1 | -1, storedSize: number): void {
    this.stats.blobs += delta;
    this.stats.blobBytes += delta * storedSize;
  }

  tombstoneCountChanged(delta: 1 | -1): void {
    this.stats.tombstones += delta;
  }

  /** An upload's body starts to be read. */
  uploadStarted(): void {
    this.stats.uploadsInFlight++;
  }

  /** An upload is over; `dedup`: its content was stored already. */
  uploadEnded(dedup: boolean): void {
    this.stats.uploadsInFlight--;
    if (dedup) this.stats.dedupHits++;
  }

  /**
   * Counts the blobs and tombstones `metadata` holds, in the background. Both iterators are
   * created here, before any request: their snapshots plus the changes counted since are the
   * totals. `then` runs once the count has finished, with the number of blobs.
   */
  countTotals(metadata: MetadataStore, then: (blobs: number) => Promise<void>): void {
    const blobs = metadata.blobs();
    const tombstones = metadata.tombstones();
    void (async () => {
      let n = 0;
      let bytes = 0;
      for await (const [, record] of blobs) {
        n++;
        bytes += record.storedSize;
      }
      let t = 0;
      for await (const _ of tombstones) t++;
      this.stats.blobs += n;
      this.stats.blobBytes += bytes;
      this.stats.tombstones += t;
      this.stats.countsReady = true;
      await then(n);
    })().catch(() => {
      // Closed during the count: the numbers no longer matter.
    });
  }
}
