import type { Agent } from 'node:http';
import { Counter, Gauge, Histogram, type Metric, type Registry } from 'prom-client';

/** Why a call to the database failed, as `ft_db_errors_total{kind}` counts it. */
export type DbErrorKind = 'unavailable' | 'timeout' | 'conflict' | 'query';

/** Why a request to the object store failed, as `ft_object_store_errors_total{kind}` counts it. */
export type ObjectStoreErrorKind = 'unavailable' | 'timeout' | 'server' | 'refused';

const DB_KINDS: readonly DbErrorKind[] = ['unavailable', 'timeout', 'conflict', 'query'];
const OBJECT_STORE_KINDS: readonly ObjectStoreErrorKind[] = [
  'unavailable',
  'timeout',
  'server',
  'refused',
];
/** The operations of every upload and read, whose error counts start at 0. */
const OBJECT_STORE_OPERATIONS = [
  'PutObject',
  'CopyObject',
  'GetObject',
  'HeadObject',
  'DeleteObject',
];

/** A round trip on loopback is ~0.2 ms; a stalled service answers at its timeout (10-20 s). */
const BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30,
];

/** What a bounded pool holds now. */
interface PoolState {
  max: number;
  open: number;
  inUse: number;
  waiting: number;
}

/** The numbers of a pg.Pool's state that the gauges read (pg-pool's getters). */
export interface PgPoolView {
  readonly options: { max: number };
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
}

const count = (lists: NodeJS.ReadOnlyDict<unknown[]>): number =>
  Object.values(lists).reduce((n, list) => n + (list?.length ?? 0), 0);

/**
 * The scale-out store's view of the services it depends on (issue 14): database statement
 * latency and failures by kind, object-store request latency and failures by operation and
 * kind, and the use of both connection pools. The metrics are made with the store, before
 * any /metrics registry exists, and added to the server's registry by {@link register}; an
 * observation is a histogram or counter update, nothing more.
 */
export class EngineMetrics {
  readonly #metrics: Metric[] = [];
  readonly #dbDuration: Histogram;
  readonly #dbErrors: Counter<'kind'>;
  readonly #lookupStatements: Counter;
  readonly #lookupNames: Counter;
  readonly #s3Duration: Histogram<'operation'>;
  readonly #s3Errors: Counter<'operation' | 'kind'>;

  constructor() {
    this.#dbDuration = this.#keep(
      new Histogram({
        name: 'ft_db_query_duration_seconds',
        help: 'Time a statement sent to the database took, to its answer or its failure',
        buckets: BUCKETS,
        registers: [],
      }),
    );
    this.#dbErrors = this.#keep(
      new Counter({
        name: 'ft_db_errors_total',
        help: 'Failed calls to the database, by kind (unavailable, timeout, conflict, query)',
        labelNames: ['kind'],
        registers: [],
      }),
    );
    // Present at 0 from the start, so rate() and increase() see the first error.
    for (const kind of DB_KINDS) this.#dbErrors.inc({ kind }, 0);
    this.#lookupStatements = this.#keep(
      new Counter({
        name: 'ft_db_name_lookup_statements_total',
        help: 'Statements that looked names up for readers (each answers every look waiting, see ft_db_name_lookups_total)',
        registers: [],
      }),
    );
    this.#lookupNames = this.#keep(
      new Counter({
        name: 'ft_db_name_lookups_total',
        help: "Names looked up for readers (GETs, HEADs, a PUT's first look), batched into ft_db_name_lookup_statements_total statements",
        registers: [],
      }),
    );
    this.#s3Duration = this.#keep(
      new Histogram({
        name: 'ft_object_store_request_duration_seconds',
        help: 'Time a request to the object store took (retries included), by S3 operation',
        labelNames: ['operation'],
        buckets: BUCKETS,
        registers: [],
      }),
    );
    this.#s3Errors = this.#keep(
      new Counter({
        name: 'ft_object_store_errors_total',
        help: 'Failed requests to the object store, by S3 operation and kind (unavailable, timeout, server, refused)',
        labelNames: ['operation', 'kind'],
        registers: [],
      }),
    );
    for (const operation of OBJECT_STORE_OPERATIONS) {
      for (const kind of OBJECT_STORE_KINDS) this.#s3Errors.inc({ operation, kind }, 0);
    }
  }

  #keep<M extends Metric>(metric: M): M {
    this.#metrics.push(metric);
    return metric;
  }

  /** Adds these metrics to a server's registry (several servers may share one store). */
  register(registry: Registry): void {
    for (const metric of this.#metrics) registry.registerMetric(metric);
  }

  dbStatement(seconds: number): void {
    this.#dbDuration.observe(seconds);
  }

  /** One statement of readers' looks, carrying `names` names. */
  nameLookups(names: number): void {
    this.#lookupStatements.inc();
    this.#lookupNames.inc(names);
  }

  dbError(kind: DbErrorKind): void {
    this.#dbErrors.inc({ kind });
  }

  objectStoreRequest(operation: string, seconds: number, error?: ObjectStoreErrorKind): void {
    this.#s3Duration.observe({ operation }, seconds);
    if (error !== undefined) this.#s3Errors.inc({ operation, kind: error });
  }

  /** `ft_db_pool_*`: the database connections of this process. */
  watchDbPool(pool: PgPoolView): void {
    this.#poolGauges('db', 'database connections', () => ({
      max: pool.options.max,
      open: pool.totalCount,
      inUse: pool.totalCount - pool.idleCount,
      waiting: pool.waitingCount,
    }));
  }

  /** `ft_object_store_pool_*`: the sockets of this process to the object store. */
  watchObjectStoreAgent(agent: Agent): void {
    this.#poolGauges('object_store', 'sockets to the object store', () => {
      const free = count(agent.freeSockets);
      const open = count(agent.sockets) + free;
      return { max: agent.maxSockets, open, inUse: open - free, waiting: count(agent.requests) };
    });
  }

  #poolGauges(prefix: string, what: string, read: () => PoolState): void {
    const gauge = (name: keyof PoolState, suffix: string, help: string): void => {
      this.#keep(
        new Gauge({
          name: `ft_${prefix}_pool_${suffix}`,
          help,
          registers: [],
          collect() {
            this.set(read()[name]);
          },
        }),
      );
    };
    gauge('max', 'size', `Most ${what} this process opens at once`);
    gauge('open', 'open', `Open ${what}`);
    gauge('inUse', 'in_use', `Open ${what} serving a request now`);
    gauge('waiting', 'waiting', `Requests waiting for one of the ${what}`);
  }
}
