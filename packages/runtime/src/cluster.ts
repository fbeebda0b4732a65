import cluster, { type Worker } from 'node:cluster';
import { EXIT_STATUS } from './cli-error.js';
import type { StopLogger } from './graceful-stop.js';

/**
 * Several worker processes behind one port (node:cluster, each worker accepting from the
 * shared socket: see runPrimary), for `--workers N` of both servers. The primary answers
 * no HTTP, accepts no connection and opens no store: it starts the workers, replaces
 * one that dies, passes signals on, gathers a value from every worker for the one that asks
 * (a worker answering /status or /metrics sums its fellows' counters: see
 * WorkerChannel.gather), and relays what a tool adds on top. A worker serves on its own
 * and tells the primary when it listens, or why it cannot.
 */

/** The messages of the cluster itself, over the IPC channel; a tool may add its own. */
export type ClusterMessage =
  | { ft: 'listening'; port: number }
  | { ft: 'fatal'; message: string }
  | { ft: 'stop' | 'stop-now' | 'reopen' }
  | GatherMessage;

/**
 * A gather (see {@link WorkerChannel.gather}): a worker asks (`gather?`), the primary asks
 * every live worker (`gather-of`), each answers its value or why it has none
 * (`gather-is`), and the primary answers the asker with what came (`gather=`).
 */
type GatherMessage =
  | { ft: 'gather?'; id: number; topic: string }
  | { ft: 'gather-of'; id: number; topic: string }
  | { ft: 'gather-is'; id: number; value?: unknown; error?: string }
  | { ft: 'gather='; id: number; values: unknown[]; asked: number; missing: number };

/** What a gather brought: the values of the workers that answered in time. */
export interface Gathered<T> {
  values: T[];
  /** The workers asked: every live one, the asker too. */
  asked: number;
  /** Those asked that did not answer in time, could not, or died meanwhile. */
  missing: number;
}

/**
 * How long the primary waits for the workers' values before it answers with those it has:
 * a worker stuck (in a long synchronous task, or stopped) must not hang a scrape, and a
 * scraper's own timeout is often 10 s.
 */
export const GATHER_TIMEOUT_MS = 2_000;
/** How long a worker waits for the primary's answer: the primary's wait, and some margin. */
const GATHER_ASKER_TIMEOUT_MS = GATHER_TIMEOUT_MS + 1_000;

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

/** The primary's side of the gathers in flight. */
class Gathers {
  #nextId = 0;
  readonly #inFlight = new Map<
    number,
    {
      from: Worker;
      replyId: number;
      waiting: Set<number>;
      values: unknown[];
      asked: number;
      timer: NodeJS.Timeout;
    }
  >();

  constructor(private readonly logger: ClusterLogger) {}

  /** `from` asks for `topic` of every live worker (itself included). */
  start(from: Worker, replyId: number, topic: string): void {
    const id = this.#nextId++;
    const workers = aliveWorkers();
    this.#inFlight.set(id, {
      from,
      replyId,
      waiting: new Set(workers.map((w) => w.id)),
      values: [],
      asked: workers.length,
      timer: setTimeout(() => this.#finish(id), GATHER_TIMEOUT_MS),
    });
    for (const w of workers) {
      // A worker whose channel is closed is dead or dying: it cannot answer.
      postToWorker(this.logger, w, { ft: 'gather-of', id, topic }, () => this.#drop(id, w.id));
    }
  }

  answer(worker: Worker, m: { id: number; value?: unknown; error?: string }): void {
    const g = this.#inFlight.get(m.id);
    if (!g?.waiting.has(worker.id)) return;
    if (m.error === undefined) g.values.push(m.value);
    else this.logger.warn({ worker: worker.process.pid, why: m.error }, 'a worker had no value');
    this.#drop(m.id, worker.id);
  }

  /** A worker died: no gather waits for it any more. */
  gone(worker: Worker): void {
    for (const id of [...this.#inFlight.keys()]) this.#drop(id, worker.id);
  }

  #drop(id: number, workerId: number): void {
    const g = this.#inFlight.get(id);
    if (g?.waiting.delete(workerId) && g.waiting.size === 0) this.#finish(id);
  }

  #finish(id: number): void {
    const g = this.#inFlight.get(id);
    if (!g) return;
    this.#inFlight.delete(id);
    clearTimeout(g.timer);
    const m: GatherMessage = {
      ft: 'gather=',
      id: g.replyId,
      values: g.values,
      asked: g.asked,
      missing: g.asked - g.values.length,
    };
    postToWorker(this.logger, g.from, m);
  }
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

  const gathers = new Gathers(logger);
  const onMessage = (worker: Worker, m: unknown): void => {
    if (!isTaggedMessage(m)) return;
    const message = m as ClusterMessage;
    switch (message.ft) {
      case 'gather?':
        gathers.start(worker, message.id, message.topic);
        break;
      case 'gather-is':
        gathers.answer(worker, message);
        break;
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
      case 'gather-of':
      case 'gather=':
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
    gathers.gone(worker);
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
  readonly #providers = new Map<string, () => unknown>();
  readonly #asks = new Map<number, (m: Gathered<unknown>) => void>();
  #nextAsk = 0;

  constructor(hooks: WorkerHooks) {
    process.on('message', (m: unknown) => {
      if (!isTaggedMessage(m)) return;
      const message = m as ClusterMessage;
      switch (message.ft) {
        case 'gather-of':
          this.#provide(message.id, message.topic);
          return;
        case 'gather=':
          this.#asks.get(message.id)?.(message);
          return;
        default:
          break;
      }
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

  /** What this worker answers when any worker gathers `topic` (a value IPC can carry). */
  provide(topic: string, value: () => unknown): void {
    this.#providers.set(topic, value);
  }

  /**
   * The value of `topic` (see {@link provide}) of every live worker, this one included:
   * the primary asks them all and answers with what came within GATHER_TIMEOUT_MS (a
   * worker stopped, stuck or dying is left out and counted as missing). Rejects when the
   * primary cannot be asked or does not answer.
   */
  gather<T>(topic: string): Promise<Gathered<T>> {
    const id = this.#nextAsk++;
    return new Promise((resolve, reject) => {
      if (!this.connected) {
        reject(new Error('no channel to the primary'));
        return;
      }
      const timer = setTimeout(() => {
        this.#asks.delete(id);
        reject(new Error(`the primary did not answer within ${GATHER_ASKER_TIMEOUT_MS} ms`));
      }, GATHER_ASKER_TIMEOUT_MS);
      this.#asks.set(id, (m) => {
        clearTimeout(timer);
        this.#asks.delete(id);
        resolve(m as Gathered<T>);
      });
      this.send({ ft: 'gather?', id, topic });
    });
  }

  #provide(id: number, topic: string): void {
    const provider = this.#providers.get(topic);
    const answer = (m: { value?: unknown; error?: string }): void =>
      this.send({ ft: 'gather-is', id, ...m });
    if (provider === undefined) {
      answer({ error: `nothing provides ${topic}` });
      return;
    }
    Promise.resolve()
      .then(provider)
      .then(
        (value) => answer({ value }),
        (err: unknown) => answer({ error: err instanceof Error ? err.message : String(err) }),
      );
  }

  /** Whether the primary can still be asked anything. */
  get connected(): boolean {
    return process.connected && process.send !== undefined;
  }
}

export const isClusterWorker = (): boolean => cluster.isWorker;
