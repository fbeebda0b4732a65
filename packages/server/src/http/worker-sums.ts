import { AggregatorRegistry, Gauge, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import { GATHER_TIMEOUT_MS, type Gathered, type WorkerChannel } from '@filetracker/runtime';

/** One worker's counters in `/status`. */
export interface WorkerStatus {
  pid: number;
  /** HTTP requests this worker answered since it started. */
  requests: number;
  uploadsInFlight: number;
}

/** `/status` of a `--workers N` server: the workers' counters summed, and who answered. */
export interface StatusSums {
  requests: number;
  uploadsInFlight: number;
  workers: {
    /** The workers summed (the one answering too). */
    pids: number[];
    /** Live workers left out: no answer within GATHER_TIMEOUT_MS, or died meanwhile. */
    missing: number;
    /** Why the sum is partial or local, when it is. */
    problem?: string;
  };
}

/**
 * `/status` and `/metrics` of `ft-server --workers N` summed over every worker, whichever
 * one a scrape reaches: the worker answering gathers its fellows' counters through the
 * primary (runtime's WorkerChannel.gather) and sums them. A worker that does not answer
 * within GATHER_TIMEOUT_MS is left out, and the answer says so. `/healthz` stays the
 * answering worker's own: a load balancer checks the process it talks to.
 */
export class WorkerSums {
  readonly #channel: WorkerChannel;
  readonly #local: () => WorkerStatus;
  readonly #registry: Registry;
  readonly #logger: Logger;

  constructor(
    channel: WorkerChannel,
    local: () => WorkerStatus,
    registry: Registry,
    logger: Logger,
  ) {
    this.#channel = channel;
    this.#local = local;
    this.#registry = registry;
    this.#logger = logger;
    channel.provide('status', local);
    channel.provide('metrics', () => registry.getMetricsAsJSON());
  }

  /**
   * The summed counters. Never fails: /status must stay 200 while this worker serves
   * (sioworkers probes it), so without an answer from the primary it is this worker's own,
   * with the reason.
   */
  async status(): Promise<StatusSums> {
    let got: Gathered<WorkerStatus>;
    try {
      got = await this.#channel.gather<WorkerStatus>('status');
    } catch (err) {
      this.#logger.warn({ err }, '/status: the workers could not be asked; answering this one’s');
      const own = this.#local();
      return {
        requests: own.requests,
        uploadsInFlight: own.uploadsInFlight,
        workers: { pids: [own.pid], missing: 0, problem: (err as Error).message },
      };
    }
    this.#noteMissing('/status', got);
    return {
      requests: sum(got.values.map((v) => v.requests)),
      uploadsInFlight: sum(got.values.map((v) => v.uploadsInFlight)),
      workers: {
        pids: got.values.map((v) => v.pid).sort((a, b) => a - b),
        missing: got.missing,
        ...(got.missing > 0 && { problem: missingLine(got.missing) }),
      },
    };
  }

  /**
   * The workers' metrics summed by prom-client's aggregation: counters and histograms
   * summed, each gauge as its `aggregator` says (see metrics.ts), plus
   * `ft_workers_summed` and `ft_workers_missing`. Rejects (a 500) when the primary cannot
   * be asked: a scrape that fails is seen, a partial one taken for the whole is not.
   */
  async metrics(): Promise<{ text: string; contentType: string }> {
    const got =
      await this.#channel.gather<Awaited<ReturnType<Registry['getMetricsAsJSON']>>>('metrics');
    this.#noteMissing('/metrics', got);
    const summed = AggregatorRegistry.aggregate(got.values);
    const registers = [summed];
    new Gauge({
      name: 'ft_workers_summed',
      help: 'Worker processes whose metrics this answer sums (--workers N)',
      registers,
    }).set(got.values.length);
    new Gauge({
      name: 'ft_workers_missing',
      help: `Live workers left out of this answer: no answer within ${GATHER_TIMEOUT_MS} ms, or died meanwhile`,
      registers,
    }).set(got.missing);
    return { text: await summed.metrics(), contentType: this.#registry.contentType };
  }

  #noteMissing(what: string, got: Gathered<unknown>): void {
    if (got.missing > 0) {
      this.#logger.warn(
        { missing: got.missing, asked: got.asked },
        `${what}: ${missingLine(got.missing)}`,
      );
    }
  }
}

function missingLine(missing: number): string {
  return `${missing} worker(s) left out: no answer within ${GATHER_TIMEOUT_MS} ms`;
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}
