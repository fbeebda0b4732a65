import type { MetadataEvents, MetadataStore } from './metadata-store.js';
import { ForwardingStore } from './forwarding-store.js';
import type { PutAdmission, PutRequest, PutResult, Store } from './store-api.js';

/**
 * Counters a metrics exporter may read. Blob and tombstone totals start from one pass over
 * the metadata store in the background after open (a snapshot taken before any request, so
 * adding the changes made since is exact).
 */
export interface StoreStats {
  dedupHits: number;
  /**
   * Disk bytes dedup hits did not write: per hit, the stored (gzip) size of the blob
   * already kept, the bytes a second copy would have taken (not the logical size: the
   * store keeps gzip, so that is what the disk saved).
   */
  dedupSavedBytes: number;
  uploadsInFlight: number;
  blobs: number;
  blobBytes: number;
  tombstones: number;
  /** The background count has finished: blobs, blobBytes and tombstones are totals. */
  countsReady: boolean;
}

/**
 * The store's counters, kept apart from the store: the metadata store reports blobs and
 * tombstones as they come and go ({@link MetadataEvents}), a {@link MeteredStore} the
 * uploads.
 */
export class StoreMetrics implements MetadataEvents {
  readonly stats: StoreStats = {
    dedupHits: 0,
    dedupSavedBytes: 0,
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

  /**
   * An upload is over; `savedBytes`: its content was stored already (a dedup hit), as a
   * blob of that stored size; undefined when it was not.
   */
  uploadEnded(savedBytes: number | undefined): void {
    this.stats.uploadsInFlight--;
    if (savedBytes === undefined) return;
    this.stats.dedupHits++;
    this.stats.dedupSavedBytes += savedBytes;
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

/**
 * A {@link Store} that counts the uploads of the store it wraps (bazel-remote's
 * `metricsDecorator`): the wrapped store mutates no counter. Reads pass straight through, a
 * method call each (the fast path's `peek` among them); a PUT is counted in flight from its
 * call to its answer, and as a dedup hit when its content was stored already, with the
 * stored size of the blob it did not write again.
 */
export class MeteredStore extends ForwardingStore {
  readonly #metrics: StoreMetrics;

  constructor(inner: Store, metrics: StoreMetrics) {
    super(inner);
    this.#metrics = metrics;
  }

  override get stats(): StoreStats {
    return this.#metrics.stats;
  }

  override put(req: PutRequest, admit?: PutAdmission): Promise<PutResult> {
    this.#metrics.uploadStarted();
    // One reaction on the answer, handlers made once: no closure per request.
    return this.inner.put(req, admit).then(this.#putDone, this.#putFailed);
  }

  readonly #putDone = (result: PutResult): PutResult => {
    this.#metrics.uploadEnded(result.dedup ? (result.storedSize ?? 0) : undefined);
    return result;
  };

  readonly #putFailed = (err: unknown): never => {
    this.#metrics.uploadEnded(undefined);
    throw err;
  };
}
