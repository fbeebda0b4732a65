import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { EXIT_STATUS } from '@filetracker/runtime';
import type { StatusSnapshot } from './request-stats.js';

/**
 * Several worker processes behind one port (node:cluster), for hosts with cores to spare.
 *
 * A worker is bound by CPU, most of it in Node's HTTP layer and the kernel: about 13 us per
 * small-file GET on 2 cores, where lighttpd takes 7 (the default count and its measurements
 * are at DEFAULT_WORKERS in cli-options.ts). The store is read only and every worker checks
 * the disk itself, so workers share nothing but the port. The primary answers no HTTP: it
 * starts the workers, replaces one that dies, passes signals on, and sums the workers'
 * counters for /status and /metrics, which any worker may be asked for.
 */

/** Messages between the primary and a worker, over the cluster's IPC channel. */
type Message =
  | { ft: 'listening'; port: number }
  | { ft: 'fatal'; message: string }
  | { ft: 'status?'; id: number }
  | { ft: 'status-of'; id: number }
  | { ft: 'status-is'; id: number; snapshot: StatusSnapshot }
  | { ft: 'status='; id: number; snapshot?: StatusSnapshot; error?: string }
  | { ft: 'metrics?'; id: number }
  | { ft: 'metrics='; id: number; text?: string; error?: string }
  | { ft: 'stop' | 'stop-now' | 'reopen' };

function isMessage(m: unknown): m is Message {
  return typeof m === 'object' && m !== null && typeof (m as { ft?: unknown }).ft === 'string';
}

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

/** The wait before a dead worker is replaced, doubled while they keep dying young... */
const RESTART_MIN_MS = 1_000;
const RESTART_MAX_MS = 30_000;
/** ...and back to the minimum once one has lived this long. */
const HEALTHY_AFTER_MS = 10_000;

/**
 * Runs the primary: forks the workers, logs one `listening` line once all of them listen,
 * and stops them on SIGTERM/SIGINT (a second signal stops them at once). Resolves with
 * the exit code (the caller flushes the log and exits): 0 after a clean stop, 1 after a
 * forced one or when a worker could not listen (its one-line reason goes to stderr).
 */
export function runPrimary(options: PrimaryOptions): Promise<number> {
  const { logger } = options;
  const started = Date.now();
  const aggregator = new AggregatorRegistry();
  let stopping = false;
  const listening = new Set<number>();
  let othersStarted = false;
  let resolveExit: (code: number) => void;
  const exit = new Promise<number>((resolve) => (resolveExit = resolve));
  let exitCode = 0;

  const alive = (): Worker[] =>
    Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w && !w.isDead());
  /**
   * Sends `m` to `worker` unless its channel is known to be closed; `failed` runs when the
   * write fails. A worker that has just died still looks connected until the primary reads
   * the end of its channel, and a message handled before that end (a `fatal` from a worker
   * that then exits, a `status?` while another worker is killed) writes into a closed pipe:
   * without a callback Node emits that EPIPE as an 'error' event, which crashed the primary
   * (issue 16). The 'exit' that follows is handled as for any death.
   */
  const post = (worker: Worker, m: Message, failed?: () => void): void => {
    if (!worker.isConnected()) {
      failed?.();
      return;
    }
    worker.send(m, (err: Error | null) => {
      if (!err) return;
      logger.debug({ err, pid: worker.process.pid, ft: m.ft }, 'a worker is gone; not sent');
      failed?.();
    });
  };
  const sendAll = (m: Message): void => {
    for (const w of alive()) post(w, m);
  };

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

  const onMessage = (worker: Worker, m: unknown): void => {
    if (!isMessage(m)) return;
    switch (m.ft) {
      case 'listening':
        listening.add(worker.id);
        // The first worker listened, so the port is ours: start the others (see below).
        if (listening.size === 1 && !othersStarted) {
          othersStarted = true;
          for (let i = 1; i < options.workers; i++) fork();
        }
        if (listening.size === options.workers) {
          logger.info(
            { url: options.url(m.port), workers: alive().map((w) => w.process.pid) },
            'listening',
          );
        }
        break;
      case 'fatal':
        if (!stopping) {
          process.stderr.write(`ft-legacy-static: ${m.message}\n`);
          exitCode = EXIT_STATUS.failed;
          stop('a worker could not listen', false);
        }
        break;
      case 'status?': {
        const id = nextId++;
        const workers = alive().filter((w) => w.isConnected());
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

  const bornAt = new Map<number, number>();
  let restartDelayMs = RESTART_MIN_MS;
  const fork = (): void => {
    const worker = cluster.fork();
    bornAt.set(worker.id, Date.now());
    worker.on('message', (m: unknown) => onMessage(worker, m));
    // prom-client's clusterMetrics() sends to every connected worker without a callback,
    // so a write to one that just died arrives here (see post()) instead of crashing us.
    worker.on('error', (err: Error) => {
      logger.warn({ err, pid: worker.process.pid }, 'a worker’s process reported an error');
    });
  };

  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      if (alive().length === 0) {
        logger.info('stopped');
        resolveExit(exitCode);
      }
      return;
    }
    // A worker that dies on its own (a crash, the OOM killer) is replaced; its open
    // connections are lost, the others' are not. One that dies soon after it started
    // (FT_ROOT gone, a bad disk) would die again: each such death doubles the wait
    // before the next start, up to RESTART_MAX_MS, instead of a restart and an error
    // line every second.
    const lived = Date.now() - (bornAt.get(worker.id) ?? 0);
    bornAt.delete(worker.id);
    if (lived >= HEALTHY_AFTER_MS) restartDelayMs = RESTART_MIN_MS;
    const delayMs = restartDelayMs;
    restartDelayMs = Math.min(restartDelayMs * 2, RESTART_MAX_MS);
    logger.error(
      { pid: worker.process.pid, code, signal, livedMs: lived, restartInMs: delayMs },
      'worker died; starting another',
    );
    listening.delete(worker.id);
    // Not unref'd: with every worker gone the primary holds no other handle, and must
    // stay to start the next one.
    setTimeout(() => {
      if (!stopping) fork();
    }, delayMs);
  });

  /** Graceful: workers finish what is in flight. `now`: they exit at once. */
  function stop(why: string, now: boolean): void {
    if (now) {
      exitCode = exitCode || EXIT_STATUS.failed;
      logger.warn({ why }, 'stopping workers at once');
      sendAll({ ft: 'stop-now' });
      setTimeout(() => {
        for (const w of alive()) w.process.kill('SIGKILL');
      }, 2_000).unref();
    } else if (!stopping) {
      logger.info({ why }, 'shutting down');
      for (const w of alive()) {
        // A worker still starting would lose the message: node:cluster hands one that
        // arrives before our listener to cluster.worker alone, and the worker would
        // then listen and never stop. A signal reaches it at any stage.
        if (listening.has(w.id)) post(w, { ft: 'stop' });
        else w.process.kill('SIGTERM');
      }
    }
    stopping = true;
    if (alive().length === 0) resolveExit(exitCode);
  }

  // A second signal while stopping means: now.
  process.on('SIGTERM', () => stop('SIGTERM', stopping));
  process.on('SIGINT', () => stop('SIGINT', stopping));
  process.on('SIGHUP', () => {
    options.reopenLog();
    logger.info('log reopened');
    sendAll({ ft: 'reopen' });
  });

  // One worker first: when the port cannot be had, only it finds out (Node 20's cluster
  // crashes the other workers with a TypeError if several fail to listen at once).
  fork();
  return exit;
}

/** A worker's side: asks the primary for the summed /status and /metrics. */
export class WorkerLink {
  #nextId = 0;
  readonly #waiting = new Map<number, (m: Message) => void>();
  #localStatus: () => Promise<StatusSnapshot> = () =>
    Promise.resolve({ uptimeSeconds: 0, requests: 0, bytesSent: 0 });

  /**
   * `hooks`: what this worker does when the primary asks it to stop (gracefully or at
   * once) or to reopen its log.
   */
  constructor(hooks: { stop(): void; stopNow(): void; reopen(): void }) {
    process.on('message', (m: unknown) => {
      if (!isMessage(m)) return;
      switch (m.ft) {
        case 'status-of':
          void this.#localStatus().then((snapshot) =>
            toPrimary({ ft: 'status-is', id: m.id, snapshot }),
          );
          break;
        case 'status=':
        case 'metrics=':
          this.#waiting.get(m.id)?.(m);
          break;
        case 'stop':
          hooks.stop();
          break;
        case 'stop-now':
          hooks.stopNow();
          break;
        case 'reopen':
          hooks.reopen();
          break;
        default:
          break;
      }
    });
    // The primary is gone (killed): stop rather than hold the port for nobody.
    process.on('disconnect', () => hooks.stop());
  }

  /** This worker's own registry and counters, for the primary to sum. */
  provide(registry: Registry, localStatus: () => Promise<StatusSnapshot>): void {
    this.#localStatus = localStatus;
    AggregatorRegistry.setRegistries([registry]);
    // prom-client answers the primary's metric requests once an AggregatorRegistry exists.
    new AggregatorRegistry();
  }

  listening(port: number): void {
    toPrimary({ ft: 'listening', port });
  }

  fatal(message: string): void {
    toPrimary({ ft: 'fatal', message });
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
      if (!process.connected || !process.send) {
        clearTimeout(timer);
        this.#waiting.delete(id);
        reject(new Error('no channel to the primary'));
        return;
      }
      toPrimary({ ft, id });
    });
  }
}

/**
 * Sends `m` to the primary, if there is still a channel. A primary that was killed leaves
 * a closed pipe: the write's EPIPE goes to the callback, not to an 'error' event that
 * would crash this worker, which stops on 'disconnect' anyway.
 */
function toPrimary(m: Message): void {
  if (process.connected) process.send?.(m, undefined, {}, () => {});
}

export const isWorker = (): boolean => cluster.isWorker;
