import type { LocalMetadataStore } from './local-metadata-store.js';
import type { StoreLayout } from './layout.js';
import { MeteredStore, type StoreMetrics } from './store-metrics.js';
import type { PortStore } from './store.js';

/**
 * The store of one directory on local disk (blobs/, links/, meta/, ft-tmp/), counted: what
 * `openStore` gives. Besides the {@link Store} interface, its owner (main.ts, the tests, the
 * tools) reaches the layout and the local ports.
 */
export class LocalStore extends MeteredStore {
  /** Where the store lives; named in errors and logs. */
  readonly layout: StoreLayout;
  readonly metadata: LocalMetadataStore;
  /** Leftovers found in `ft-tmp/` at open (from a crash), now removed. */
  readonly tmpLeftovers: number;

  constructor(store: PortStore<LocalMetadataStore>, metrics: StoreMetrics, tmpLeftovers: number) {
    super(store, metrics);
    this.layout = store.layout;
    this.metadata = store.metadata;
    this.tmpLeftovers = tmpLeftovers;
  }
}
