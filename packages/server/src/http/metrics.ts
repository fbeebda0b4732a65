import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from 'pino';
import type { AnswerReason } from '@filetracker/shared-protocol';
import { AccessLog, RequestMetrics } from '@filetracker/http-telemetry';
import type { Store } from '../store/store-api.js';
import type { FallbackProbe } from './fallback-probe.js';
import { watchSweeper } from './sweeper-metrics.js';

/** One finished request, as the log line and the metrics see it. */
export interface RequestRecord {
  method: string;
  path: string;
  /** The protocol endpoint (`files`, `list`, ...), or `invalid` for a path the grammar refused. */
  endpoint: string;
  status: number;
  /** Request body bytes received (as sent: gzip when the upload was). */
  bodyBytesIn: number;
  /** Response body bytes sent: no status line, headers or chunk framing. */
  bodyBytesOut: number;
  ms: number;
  /** For a 4xx or 5xx: the code and reason the answer gave (answerReason). */
  error?: AnswerReason | undefined;
}

/**
 * The server's Prometheus metrics, in a registry of its own (so several servers in one
 * process, as in tests, do not share counters). Store totals are read from counters the
 * store keeps as it goes; nothing is scanned at scrape time.
 */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly #requests: RequestMetrics;

  constructor(store: Store) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'ft_' });
    this.#requests = new RequestMetrics({
      registry: this.registry,
      labelNames: ['endpoint', 'method'],
      requests: {
        name: 'ft_http_requests_total',
        help: 'HTTP requests answered, by endpoint, method and status',
      },
      duration: {
        name: 'ft_http_request_duration_seconds',
        help: 'Time from request to the end of the answer',
        buckets: [
          0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120,
        ],
      },
      bodyBytesIn: { name: 'ft_http_received_bytes_total', help: 'Request body bytes received' },
      bodyBytesOut: { name: 'ft_http_sent_bytes_total', help: 'Response body bytes sent' },
    });
    store.registerMetrics?.(this.registry);
    /**
     * `aggregator`: how `--workers N` sums this gauge over the workers (worker-sums.ts):
     * `sum` for what each worker has of its own, `max` for a count of the whole store
     * each worker keeps, `min` for a state that holds only when it holds in every worker.
     */
    const gauge = (
      name: string,
      help: string,
      read: () => number,
      aggregator: 'sum' | 'max' | 'min' = 'sum',
    ): void => {
      new Gauge({
        name,
        help,
        registers,
        aggregator,
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
    new Counter({
      name: 'ft_dedup_saved_bytes_total',
      help: 'Disk bytes dedup hits did not write: the stored (gzip) size of the blob already kept, per hit',
      registers,
      collect() {
        this.reset();
        this.inc(store.stats.dedupSavedBytes);
      },
    });
    gauge('ft_blobs', 'Blobs stored (distinct contents)', () => store.stats.blobs, 'max');
    gauge('ft_blob_bytes', 'Bytes of stored blobs (gzip)', () => store.stats.blobBytes, 'max');
    gauge(
      'ft_tombstones',
      'Names deleted during an online migration (tombstones)',
      () => store.stats.tombstones,
      'max',
    );
    gauge(
      'ft_store_counts_ready',
      '1 once the start-up count of blobs and tombstones has finished',
      () => (store.stats.countsReady ? 1 : 0),
      'min',
    );
    if (store.stats.sweeper !== undefined) watchSweeper(this.registry, store.stats.sweeper);
  }

  /**
   * Migration mode: the fallback's probes (issue 18). Only then are these metrics present,
   * so `ft_fallback_up == 0` never fires on a server without a fallback.
   */
  watchFallback(probe: FallbackProbe): void {
    const registers = [this.registry];
    const probes = new Counter({
      name: 'ft_fallback_probes_total',
      help: 'Probes (GET /version) of the migration-mode fallback server',
      registers,
    });
    const errors = new Counter({
      name: 'ft_fallback_probe_errors_total',
      help: 'Probes of the fallback that got no HTTP answer, by reason (unreachable, timeout)',
      labelNames: ['reason'],
      registers,
    });
    // Present at 0 from the start, so rate() and increase() see the first error.
    for (const reason of ['unreachable', 'timeout']) errors.inc({ reason }, 0);
    const duration = new Histogram({
      name: 'ft_fallback_probe_duration_seconds',
      help: 'Time a probe of the fallback took, to its answer or its failure',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    new Gauge({
      name: 'ft_fallback_up',
      help: '1 while the last probe of the fallback got an HTTP answer in time, else 0',
      registers,
      // --workers N: each worker probes; up only while every one finds it up.
      aggregator: 'min',
      collect() {
        this.set(probe.status().state === 'up' ? 1 : 0);
      },
    });
    new Counter({
      name: 'ft_fallback_request_errors_total',
      help: "Client requests the fallback failed, by error code: a DELETE that could not ask it for a name's version, a /list/ it could not merge",
      labelNames: ['code'],
      registers,
      collect() {
        this.reset();
        for (const code of ['FALLBACK_UNREACHABLE', 'FALLBACK_TIMEOUT', 'FALLBACK_CANNOT_LIST']) {
          this.inc({ code }, probe.requestErrors.get(code) ?? 0);
        }
      },
    });
    probe.onProbe((r) => {
      probes.inc();
      duration.observe(r.ms / 1000);
      if (r.error !== undefined) errors.inc({ reason: r.error });
    });
  }

  observe(r: RequestRecord): void {
    this.#requests.observe(
      [r.endpoint, r.method],
      r.status,
      r.ms / 1000,
      r.bodyBytesIn,
      r.bodyBytesOut,
    );
  }
}

/** Where every finished request goes: one log line, and the metrics. */
export class Telemetry {
  readonly #logger: Logger;
  readonly #log: AccessLog;
  readonly metrics: ServerMetrics;
  /** Requests answered since start, for `/status`. */
  requests = 0;

  constructor(logger: Logger, store: Store) {
    this.#logger = logger;
    this.#log = new AccessLog(logger);
    this.metrics = new ServerMetrics(store);
  }

  get logger(): Logger {
    return this.#logger;
  }

  record(r: RequestRecord): void {
    if (this.#log.enabled) {
      this.#log.request(r.method, r.path, r.status, r.bodyBytesIn, r.bodyBytesOut, r.ms, r.error);
    }
    this.requests++;
    this.metrics.observe(r);
  }
}
