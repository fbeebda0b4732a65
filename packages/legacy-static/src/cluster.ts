import type { Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { AggregatorRegistry, type Registry } from 'prom-client';
import {
  WorkerChannel,
  aliveWorkers,
  isTaggedMessage,
  postToWorker,
  runPrimary as runClusterPrimary,
} from '@filetracker/runtime';
import type { StatusSnapshot } from './request-stats.js';

/**
 * Several worker processes behind one port (node:cluster, run by the runtime package's
 * cluster.ts), for hosts with cores to spare.
 *
 * A worker is bound by CPU, most of it in Node's HTTP layer and the kernel: about 13 us per
 * small-file GET on 2 cores, where lighttpd takes 7 (the default count and its measurements
 * are at DEFAULT_WORKERS in cli-options.ts). The store is read only and every worker checks
 * the disk itself, so workers share nothing but the port. What this file adds to the
 * runtime's cluster: the primary sums the workers' counters for /status and /metrics,
 * which any worker may be asked for.
 */

/** The status and metrics messages between the primary and a worker. */
type Message =
  | { ft: 'status?'; id: number }
  | { ft: 'status-of'; id: number }
  | { ft: 'status-is'; id: number; snapshot: StatusSnapshot }
  | { ft: 'status='; id: number; snapshot?: StatusSnapshot; error?: string }
  | { ft: 'metrics?'; id: number }
  | { ft: 'metrics='; id: number; text?: string; error?: string };

/** How long a worker waits for the primary, and the primary for the workers, on a scrape. */
const ASK_TIMEOUT_MS = 5_000;

/** What the primary does to a worker's life: the events main.ts hooks its own code to. */
export interface PrimaryOptions {
  workers: number;
  logger: Logger;
  /** The log handle's reopen, for SIGHUP. */
  reopenLog(): void;
  /** The URL to log once every worker listens, from the port they got. */
  url(port: number): string;
}

/**
 * Runs the primary (see the runtime's runPrimary) and answers the workers' requests for
 * /status and /metrics summed over all of them.
 */
export function runPrimary(options: PrimaryOptions): Promise<number> {
  const { logger } = options;
  const started = Date.now();
  const aggregator = new AggregatorRegistry();
  const post = (worker: Worker, m: Message, failed?: () => void): void =>
    postToWorker(logger, worker, m, failed);

  // Status requests in flight: the worker that asked, and the answers gathered so far.
  let nextId = 0;
  const statusAsks = new Map<
    number,
    { from: Worker; replyId: number; pending: number; sum: StatusSnapshot; timer: NodeJS.Timeout }
  >();
  const finishStatus = (id: number): void => {
    const ask = statusAsks.get(id);
    if (!ask) return;
    statusAsks.delete(id);
    clearTimeout(ask.timer);
    ask.sum.uptimeSeconds = Math.floor((Date.now() - started) / 1000);
    // A worker that is alive and does not answer cannot serve files either.
    if (ask.pending > 0) {
      ask.sum.problem ??= `${ask.pending} worker(s) did not answer within ${ASK_TIMEOUT_MS} ms`;
    }
    post(ask.from, { ft: 'status=', id: ask.replyId, snapshot: ask.sum });
  };

  const onMessage = (worker: Worker, raw: { ft: string }): void => {
    const m = raw as Message;
    switch (m.ft) {
      case 'status?': {
        const id = nextId++;
        const workers = aliveWorkers().filter((w) => w.isConnected());
        statusAsks.set(id, {
          from: worker,
          replyId: m.id,
          pending: workers.length,
          sum: { uptimeSeconds: 0, requests: 0, bytesSent: 0 },
          timer: setTimeout(() => finishStatus(id), ASK_TIMEOUT_MS),
        });
        // A worker that is gone cannot answer: count it as answered, not as a wait.
        const gone = (): void => {
          const ask = statusAsks.get(id);
          if (ask && --ask.pending === 0) finishStatus(id);
        };
        for (const w of workers) post(w, { ft: 'status-of', id }, gone);
        break;
      }
      case 'status-is': {
        const ask = statusAsks.get(m.id);
        if (!ask) break;
        ask.sum.requests += m.snapshot.requests;
        ask.sum.bytesSent += m.snapshot.bytesSent;
        ask.sum.problem ??= m.snapshot.problem;
        if (--ask.pending === 0) finishStatus(m.id);
        break;
      }
      case 'metrics?':
        aggregator.clusterMetrics().then(
          (text) => post(worker, { ft: 'metrics=', id: m.id, text }),
          (err: Error) => {
            logger.error({ err }, 'summing the workers’ metrics failed');
            post(worker, { ft: 'metrics=', id: m.id, error: err.message });
          },
        );
        break;
      default:
        break;
    }
  };

  return runClusterPrimary({ ...options, tool: 'ft-legacy-static', onMessage });
}

/** A worker's side: asks the primary for the summed /status and /metrics. */
export class WorkerLink {
  #nextId = 0;
  readonly #waiting = new Map<number, (m: Message) => void>();
  readonly #channel: WorkerChannel;
  #localStatus: () => Promise<StatusSnapshot> = () =>
    Promise.resolve({ uptimeSeconds: 0, requests: 0, bytesSent: 0 });

  /**
   * `hooks`: what this worker does when the primary asks it to stop (gracefully or at
   * once) or to reopen its log.
   */
  constructor(hooks: { stop(): void; stopNow(): void; reopen(): void }) {
    this.#channel = new WorkerChannel({
      ...hooks,
      onMessage: (raw) => {
        if (!isTaggedMessage(raw)) return;
        const m = raw as Message;
        switch (m.ft) {
          case 'status-of':
            void this.#localStatus().then((snapshot) =>
              this.#channel.send({ ft: 'status-is', id: m.id, snapshot }),
            );
            break;
          case 'status=':
          case 'metrics=':
            this.#waiting.get(m.id)?.(m);
            break;
          default:
            break;
        }
      },
    });
  }

  /** This worker's own registry and counters, for the primary to sum. */
  provide(registry: Registry, localStatus: () => Promise<StatusSnapshot>): void {
    this.#localStatus = localStatus;
    AggregatorRegistry.setRegistries([registry]);
    // prom-client answers the primary's metric requests once an AggregatorRegistry exists.
    new AggregatorRegistry();
  }

  listening(port: number): void {
    this.#channel.listening(port);
  }

  fatal(message: string): Promise<void> {
    return this.#channel.fatal(message);
  }

  async status(): Promise<StatusSnapshot> {
    const m = await this.#ask('status?');
    if (m.ft !== 'status=' || !m.snapshot) throw new Error('no status from the primary');
    return m.snapshot;
  }

  async metrics(): Promise<string> {
    const m = await this.#ask('metrics?');
    if (m.ft !== 'metrics=' || m.text === undefined) {
      throw new Error(`no metrics from the primary${m.ft === 'metrics=' ? `: ${m.error}` : ''}`);
    }
    return m.text;
  }

  #ask(ft: 'status?' | 'metrics?'): Promise<Message> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        reject(new Error(`the primary did not answer ${ft} within ${ASK_TIMEOUT_MS} ms`));
      }, ASK_TIMEOUT_MS);
      this.#waiting.set(id, (m) => {
        clearTimeout(timer);
        this.#waiting.delete(id);
        resolve(m);
      });
      if (!this.#channel.connected) {
        clearTimeout(timer);
        this.#waiting.delete(id);
        reject(new Error('no channel to the primary'));
        return;
      }
      this.#channel.send({ ft, id });
    });
  }
}

export { isClusterWorker as isWorker } from '@filetracker/runtime';
