import cluster, { type Worker } from 'node:cluster';
import { EXIT_STATUS } from './cli-error.js';
import type { StopLogger } from './graceful-stop.js';

/**
 * Several worker processes behind one port (node:cluster, each worker accepting from the
 * shared socket: see runPrimary), for `--workers N` of both servers. The primary answers
 * no HTTP, accepts no connection and opens no store: it starts the workers, replaces
 * one that dies, passes signals on, and relays what a tool adds on top (ft-legacy-static
 * sums its workers' /status and /metrics). A worker serves on its own and tells the
 * primary when it listens, or why it cannot.
 */

/** The messages of the cluster itself, over the IPC channel; a tool may add its own. */
export type ClusterMessage =
  | { ft: 'listening'; port: number }
  | { ft: 'fatal'; message: string }
  | { ft: 'stop' | 'stop-now' | 'reopen' };

/** Any message of ours: an object with a string `ft`. */
export interface TaggedMessage {
  ft: string;
  [field: string]: unknown;
}

export function isTaggedMessage(m: unknown): m is TaggedMessage {
  return typeof m === 'object' && m !== null && typeof (m as { ft?: unknown }).ft === 'string';
}

/** The logging the primary needs (a pino logger has it). */
export interface ClusterLogger extends StopLogger {
  debug(details: object, message: string): void;
}

/** What the primary does to a worker's life. */
export interface PrimaryOptions {
  /** The tool's name, before the one-line reason on stderr when no worker could start. */
  tool: string;
  workers: number;
  logger: ClusterLogger;
  /** The log handle's reopen, for SIGHUP. */
  reopenLog(): void;
  /** The URL to log once every worker listens, from the port they got. */
  url(port: number): string;
  /** More fields for the `listening` line (where the store is). */
  listeningDetails?: Record<string, unknown>;
  /** A message from a worker that is not one of {@link ClusterMessage}. */
  onMessage?(worker: Worker, m: TaggedMessage): void;
}

/** The wait before a dead worker is replaced, doubled while they keep dying young... */
const RESTART_MIN_MS = 1_000;
const RESTART_MAX_MS = 30_000;
/** ...and back to the minimum once one has lived this long. */
const HEALTHY_AFTER_MS = 10_000;
/** A graceful stop that takes longer than this becomes a SIGKILL of the workers left. */
const STOP_NOW_AFTER_MS = 2_000;

/** The workers that have not exited. */
export function aliveWorkers(): Worker[] {
  return Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w && !w.isDead());
}

/**
 * Sends `m` to `worker` unless its channel is known to be closed; `failed` runs when the
 * write fails. A worker that has just died still looks connected until the primary reads
 * the end of its channel, and a message handled before that end (a `fatal` from a worker
 * that then exits, a status request while another worker is killed) writes into a closed
 * pipe: without a callback Node emits that EPIPE as an 'error' event, which crashed the
 * primary (issue 16). The 'exit' that follows is handled as for any death.
 */
export function postToWorker(
  logger: ClusterLogger,
  worker: Worker,
  m: TaggedMessage,
  failed?: () => void,
): void {
  if (!worker.isConnected()) {
    failed?.();
    return;
  }
  worker.send(m, (err: Error | null) => {
    if (!err) return;
    logger.debug({ err, worker: worker.process.pid, ft: m.ft }, 'a worker is gone; not sent');
    failed?.();
  });
}

/**
 * Runs the primary: forks the workers, logs one `listening` line (with every worker's pid)
 * once all of them listen, and stops them on SIGTERM/SIGINT (a second signal stops them at
 * once). Resolves with the exit code (the caller flushes the log and exits): 0 after a
 * clean stop, 1 after a forced one or when the first worker could not start (its one-line
 * reason goes to stderr). A worker that cannot start later (a replacement while the
 * database is down) is a death like any other: it is started again, with a backoff.
 */
export function runPrimary(options: PrimaryOptions): Promise<number> {
  const { logger } = options;
  let stopping = false;
  const listening = new Set<number>();
  let everListened = false;
  let othersStarted = false;
  let resolveExit: (code: number) => void;
  const exit = new Promise<number>((resolve) => (resolveExit = resolve));
  let exitCode = 0;

  const post = (worker: Worker, m: ClusterMessage): void => postToWorker(logger, worker, m);
  const sendAll = (m: ClusterMessage): void => {
    for (const w of aliveWorkers()) post(w, m);
  };

  const onMessage = (worker: Worker, m: unknown): void => {
    if (!isTaggedMessage(m)) return;
    const message = m as ClusterMessage;
    switch (message.ft) {
      case 'listening':
        listening.add(worker.id);
        everListened = true;
        // The first worker listened, so the port is ours: start the others (see below).
        if (listening.size === 1 && !othersStarted) {
          othersStarted = true;
          for (let i = 1; i < options.workers; i++) fork();
        }
        // Logged again once a replacement listens: the line names the workers serving.
        if (listening.size === options.workers) {
          logger.info(
            {
              url: options.url(message.port),
              ...options.listeningDetails,
              workers: aliveWorkers().map((w) => w.process.pid),
            },
            'listening',
          );
        }
        break;
      case 'fatal':
        if (stopping) break;
        if (!everListened) {
          process.stderr.write(`${options.tool}: ${message.message}\n`);
          exitCode = EXIT_STATUS.failed;
          stop('a worker could not start', false);
        } else {
          logger.error(
            { worker: worker.process.pid, why: message.message },
            'worker could not start',
          );
        }
        break;
      case 'stop':
      case 'stop-now':
      case 'reopen':
        break;
      default:
        options.onMessage?.(worker, m);
    }
  };

  const bornAt = new Map<number, number>();
  let restartDelayMs = RESTART_MIN_MS;
  const fork = (): void => {
    const worker = cluster.fork();
    bornAt.set(worker.id, Date.now());
    worker.on('message', (m: unknown) => onMessage(worker, m));
    // A write to a worker that just died may arrive here (see postToWorker), as may
    // prom-client's, which sends without a callback: a warning, not a crash.
    worker.on('error', (err: Error) => {
      logger.warn({ err, worker: worker.process.pid }, 'a worker’s process reported an error');
    });
  };

  cluster.on('exit', (worker, code, signal) => {
    listening.delete(worker.id);
    if (stopping) {
      if (aliveWorkers().length === 0) {
        logger.info('stopped');
        resolveExit(exitCode);
      }
      return;
    }
    // A worker that dies on its own (a crash, the OOM killer, a kill -9) is replaced; its
    // open connections are lost, the others' are not. One that dies soon after it started
    // (a bad disk, the database down) would die again: each such death doubles the wait
    // before the next start, up to RESTART_MAX_MS, instead of a restart and an error line
    // every second.
    const lived = Date.now() - (bornAt.get(worker.id) ?? 0);
    bornAt.delete(worker.id);
    if (!everListened) {
      // The first worker died before it listened (a bug, or a reason it could not send):
      // another would too. Its stderr is ours, so the reason is already there.
      logger.error({ worker: worker.process.pid, code, signal }, 'the first worker died; stopping');
      exitCode = EXIT_STATUS.failed;
      stop('the first worker died before it listened', false);
      return;
    }
    if (lived >= HEALTHY_AFTER_MS) restartDelayMs = RESTART_MIN_MS;
    const delayMs = restartDelayMs;
    restartDelayMs = Math.min(restartDelayMs * 2, RESTART_MAX_MS);
    logger.error(
      { worker: worker.process.pid, code, signal, livedMs: lived, restartInMs: delayMs },
      'worker died; starting another',
    );
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
        for (const w of aliveWorkers()) w.process.kill('SIGKILL');
      }, STOP_NOW_AFTER_MS).unref();
    } else if (!stopping) {
      logger.info({ why, workers: aliveWorkers().map((w) => w.process.pid) }, 'shutting down');
      for (const w of aliveWorkers()) {
        // A worker still starting would lose the message: node:cluster hands one that
        // arrives before our listener to cluster.worker alone, and the worker would
        // then listen and never stop. A signal reaches it at any stage.
        if (listening.has(w.id)) post(w, { ft: 'stop' });
        else w.process.kill('SIGTERM');
      }
    }
    stopping = true;
    if (aliveWorkers().length === 0) resolveExit(exitCode);
  }

  // A second signal while stopping means: now.
  process.on('SIGTERM', () => stop('SIGTERM', stopping));
  process.on('SIGINT', () => stop('SIGINT', stopping));
  process.on('SIGHUP', () => {
    options.reopenLog();
    logger.info('log reopened');
    sendAll({ ft: 'reopen' });
  });

  // The workers accept from the one listening socket themselves (SCHED_NONE), not through
  // the primary (SCHED_RR, Node's default). The round-robin primary accepts each connection
  // and hands it to a worker, then holds it until that worker says it took it: a worker
  // that has just died (a crash, the OOM killer, kill -9) never says so, and the primary,
  // not yet aware of the death, keeps the connection open and unanswered forever (Node 20's
  // RoundRobinHandle; a plain cluster script lost 21 of 120 requests sent right after a
  // SIGKILL, and ft-server's test hung on one). With SCHED_NONE a connection waits in the
  // kernel's queue until a live worker accepts it; one a dying worker had accepted is closed
  // by the kernel, which a client sees at once. The primary is also off the path of every
  // connection. The kernel's spread over the workers is uneven for a burst of new
  // connections, even enough over time (measured: 91/109 of 200 sequential connections).
  // Set before the first fork, as Node requires.
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  // One worker first: when the port cannot be had, only it finds out (Node 20's cluster
  // crashes the other workers with a TypeError if several fail to listen at once).
  fork();
  return exit;
}

/** What a worker does when the primary asks it to stop (gracefully or at once) or reopen its log. */
export interface WorkerHooks {
  stop(): void;
  stopNow(): void;
  reopen(): void;
  /** A message from the primary that is not one of {@link ClusterMessage}. */
  onMessage?(m: TaggedMessage): void;
}

/** A worker's side of the channel to the primary. */
export class WorkerChannel {
  constructor(hooks: WorkerHooks) {
    process.on('message', (m: unknown) => {
      if (!isTaggedMessage(m)) return;
      switch (m.ft) {
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
          hooks.onMessage?.(m);
      }
    });
    // The primary is gone (killed): stop rather than hold the port for nobody.
    process.on('disconnect', () => hooks.stop());
    // The primary passes SIGHUP on as a message (logrotate signals only the primary); a
    // SIGHUP sent to the whole group must not kill the worker, which is Node's default.
    process.on('SIGHUP', () => {});
  }

  listening(port: number): void {
    this.send({ ft: 'listening', port });
  }

  /** Tells the primary why this worker cannot start; resolves once it was sent (or failed). */
  fatal(message: string): Promise<void> {
    return new Promise((resolve) => this.send({ ft: 'fatal', message }, resolve));
  }

  /**
   * Sends `m` to the primary, if there is still a channel. A primary that was killed leaves
   * a closed pipe: the write's EPIPE goes to the callback, not to an 'error' event that
   * would crash this worker, which stops on 'disconnect' anyway.
   */
  send(m: TaggedMessage, sent: () => void = () => {}): void {
    if (process.connected && process.send) process.send(m, undefined, {}, () => sent());
    else sent();
  }

  /** Whether the primary can still be asked anything. */
  get connected(): boolean {
    return process.connected && process.send !== undefined;
  }
}

export const isClusterWorker = (): boolean => cluster.isWorker;
