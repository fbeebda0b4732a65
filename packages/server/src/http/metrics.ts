import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from 'pino';
import type { Store } from '../store/store.js';

/** One finished request, as the log line and the metrics see it. */
export interface RequestRecord {
  method: string;
  path: string;
  /** The protocol endpoint (`files`, `list`, ...), or `invalid` for a path the grammar refused. */
  endpoint: string;
  status: number;
  bytesIn: number;
  bytesOut: number;
  ms: number;
}

/**
 * The server's Prometheus metrics, in a registry of its own (so several servers in one
 * process, as in tests, do not share counters). Store totals are read from counters the
 * store keeps as it goes; nothing is scanned at scrape time.
 */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly #requests: Counter<'endpoint' | 'method' | 'status'>;
  readonly #duration: Histogram<'endpoint' | 'method'>;
  readonly #bytesIn: Counter;
  readonly #bytesOut: Counter;

  constructor(store: Store) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'ft_' });
    this.#requests = new Counter({
      name: 'ft_http_requests_total',
      help: 'HTTP requests answered, by endpoint, method and status',
      labelNames: ['endpoint', 'method', 'status'],
      registers,
    });
    this.#duration = new Histogram({
      name: 'ft_http_request_duration_seconds',
      help: 'Time from request to the end of the answer',
      labelNames: ['endpoint', 'method'],
      buckets: [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120,
      ],
      registers,
    });
    this.#bytesIn = new Counter({
      name: 'ft_http_received_bytes_total',
      help: 'Bytes received',
      registers,
    });
    this.#bytesOut = new Counter({
      name: 'ft_http_sent_bytes_total',
      help: 'Bytes sent',
      registers,
    });
    const gauge = (name: string, help: string, read: () => number): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    };
    gauge('ft_uploads_in_flight', 'Uploads being received now', () => store.stats.uploadsInFlight);
    new Counter({
      name: 'ft_dedup_hits_total',
      help: 'Uploads whose content was already stored',
      registers,
      collect() {
        this.reset();
        this.inc(store.stats.dedupHits);
      },
    });
    gauge('ft_blobs', 'Blobs stored (distinct contents)', () => store.stats.blobs);
    gauge('ft_blob_bytes', 'Bytes of stored blobs (gzip)', () => store.stats.blobBytes);
    gauge(
      'ft_tombstones',
      'Names deleted during an online migration (tombstones)',
      () => store.stats.tombstones,
    );
    gauge(
      'ft_store_counts_ready',
      '1 once the start-up count of blobs and tombstones has finished',
      () => (store.stats.countsReady ? 1 : 0),
    );
  }

  observe(r: RequestRecord): void {
    this.#requests.inc({ endpoint: r.endpoint, method: r.method, status: String(r.status) });
    this.#duration.observe({ endpoint: r.endpoint, method: r.method }, r.ms / 1000);
    this.#bytesIn.inc(r.bytesIn);
    this.#bytesOut.inc(r.bytesOut);
  }
}

/** Where every finished request goes: one log line, and the metrics. */
export class Telemetry {
  readonly #logger: Logger;
  readonly metrics: ServerMetrics;

  constructor(logger: Logger, store: Store) {
    this.#logger = logger;
    this.metrics = new ServerMetrics(store);
  }

  get logger(): Logger {
    return this.#logger;
  }

  record(r: RequestRecord): void {
    this.#logger.info({
      method: r.method,
      path: r.path,
      status: r.status,
      bytesIn: r.bytesIn,
      bytesOut: r.bytesOut,
      ms: r.ms,
    });
    this.metrics.observe(r);
  }
}
