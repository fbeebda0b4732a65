import type { Logger } from 'pino';

/** How often the fallback is probed; a probe starts this long after the last one ended. */
export const DEFAULT_PROBE_INTERVAL_MS = 5_000;

/**
 * The longest a probe waits for an answer. Shorter when the DELETE's own wait
 * (`--legacy-timeout`) is: a fallback slower than that fails DELETEs anyway.
 */
export const MAX_PROBE_TIMEOUT_MS = 3_000;

/** Why a probe got no HTTP answer. */
export type ProbeFailure = 'unreachable' | 'timeout';

/** One probe, as the metrics see it. */
export interface ProbeResult {
  ms: number;
  /** The HTTP status it got; any status means the fallback is up. */
  status?: number;
  error?: ProbeFailure;
}

/** The fallback's state, as `/status` shows it. */
export interface FallbackStatus {
  url: string;
  /** `unknown` until the first probe has ended. */
  state: 'unknown' | 'up' | 'down';
  /** When it entered this state (ISO 8601); the start while unknown. */
  since: string;
  /** When the last probe ended, or null before the first. */
  lastProbeAt: string | null;
  /** The HTTP status of the last answered probe, or null before one. */
  lastStatus: number | null;
  /** Why the last failed probe failed, kept after recovery; null if none has failed. */
  lastError: string | null;
  lastErrorAt: string | null;
}

export interface FallbackProbeOptions {
  /** Default {@link DEFAULT_PROBE_INTERVAL_MS}. */
  intervalMs?: number;
  /** At most {@link MAX_PROBE_TIMEOUT_MS} is used. */
  timeoutMs?: number;
  /** Where changes of state are logged (down: warn, up: info). */
  logger?: Logger;
}

/** The abort reason of a probe cut off by close(), told apart from a timeout. */
const CLOSED = new Error('probe closed');

/**
 * Probes the migration-mode fallback server in the background (issue 18, item 2): a dead
 * or hung fallback fails every unmigrated read at the clients while ft-server itself looks
 * healthy. Every few seconds a `HEAD /`: the fallback may be ft-legacy-static, lighttpd or
 * any static server over a 1.x tree, or a 2.x filetracker, and each answers that with some
 * status; any HTTP answer within the timeout is up, a refused or reset connection or no
 * answer in time is down. Probes never overlap, and `/healthz` and `/status` read the last
 * result, so a hung fallback never holds them up. Timers are unref'd: the probe never
 * keeps a process alive, and close() cuts a probe in flight.
 */
export class FallbackProbe {
  readonly url: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly #logger: Logger | undefined;
  readonly #listeners: ((result: ProbeResult) => void)[] = [];
  /** DELETEs whose HEAD to the fallback failed, by error code. */
  readonly requestErrors = new Map<string, number>();
  #status: FallbackStatus;
  #started = false;
  #closed = false;
  #loop: Promise<void> = Promise.resolve();
  #inFlight: AbortController | undefined;
  #timer: NodeJS.Timeout | undefined;
  #wake: (() => void) | undefined;
  #closing: Promise<void> | undefined;

  constructor(url: string, options: FallbackProbeOptions = {}) {
    this.url = url.replace(/\/+$/, '');
    this.intervalMs = options.intervalMs ?? DEFAULT_PROBE_INTERVAL_MS;
    this.timeoutMs = Math.min(options.timeoutMs ?? MAX_PROBE_TIMEOUT_MS, MAX_PROBE_TIMEOUT_MS);
    if (!(this.intervalMs > 0) || !(this.timeoutMs > 0)) {
      throw new TypeError('FallbackProbe: intervalMs and timeoutMs must be positive');
    }
    this.#logger = options.logger;
    this.#status = {
      url: this.url,
      state: 'unknown',
      since: new Date().toISOString(),
      lastProbeAt: null,
      lastStatus: null,
      lastError: null,
      lastErrorAt: null,
    };
  }

  /** Starts probing (the first probe at once); idempotent, and a no-op once closed. */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.#loop = this.#run();
  }

  /** Idempotent: stops probing, cuts a probe in flight; every call returns the same promise. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      clearTimeout(this.#timer);
      this.#wake?.();
      this.#inFlight?.abort(CLOSED);
      await this.#loop;
    })();
    return this.#closing;
  }

  /** Calls `listener` after every probe. */
  onProbe(listener: (result: ProbeResult) => void): void {
    this.#listeners.push(listener);
  }

  /** Counts a failure of real traffic to the fallback (a DELETE's HEAD), by error code. */
  noteRequestError(code: string): void {
    this.requestErrors.set(code, (this.requestErrors.get(code) ?? 0) + 1);
  }

  /** A copy of the current state. */
  status(): FallbackStatus {
    return { ...this.#status };
  }

  /** One line saying why the fallback is down, or undefined while it is not known down. */
  degradedReason(): string | undefined {
    const s = this.#status;
    if (s.state !== 'down') return undefined;
    return `fallback ${this.url} is down since ${s.since}: ${s.lastError}`;
  }

  async #run(): Promise<void> {
    while (!this.#closed) {
      await this.#probe();
      if (this.#closed) return;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        this.#timer = setTimeout(resolve, this.intervalMs);
        this.#timer.unref();
      });
    }
  }

  async #probe(): Promise<void> {
    const controller = new AbortController();
    this.#inFlight = controller;
    const timeout = new Error('probe timed out');
    const timer = setTimeout(() => controller.abort(timeout), this.timeoutMs);
    timer.unref();
    const started = performance.now();
    let result: ProbeResult;
    let reason: string | undefined;
    try {
      const res = await fetch(this.url + '/', {
        method: 'HEAD',
        redirect: 'manual',
        signal: controller.signal,
      });
      await res.body?.cancel();
      result = { ms: performance.now() - started, status: res.status };
    } catch (err) {
      if (controller.signal.reason === CLOSED) return;
      const ms = performance.now() - started;
      if (controller.signal.reason === timeout) {
        result = { ms, error: 'timeout' };
        reason = `no answer to HEAD / within ${this.timeoutMs} ms`;
      } else {
        // fetch's TypeError says only "fetch failed"; the cause names the errno.
        const cause = (err as Error).cause as Error | undefined;
        result = { ms, error: 'unreachable' };
        reason = `unreachable: ${cause?.message ?? (err as Error).message}`;
      }
    } finally {
      clearTimeout(timer);
      this.#inFlight = undefined;
    }
    this.#record(result, reason);
  }

  #record(result: ProbeResult, reason: string | undefined): void {
    const now = new Date().toISOString();
    const previous = this.#status;
    const state = result.error === undefined ? 'up' : 'down';
    const next: FallbackStatus = { ...previous, state, lastProbeAt: now };
    if (state !== previous.state) next.since = now;
    if (result.status !== undefined) next.lastStatus = result.status;
    if (reason !== undefined) {
      next.lastError = reason;
      next.lastErrorAt = now;
    }
    this.#status = next;
    if (state === 'down' && previous.state !== 'down') {
      this.#logger?.warn(
        { fallbackUrl: this.url, reason },
        'fallback is down: reads of names not migrated yet fail at the clients',
      );
    } else if (state === 'up' && previous.state !== 'up') {
      this.#logger?.info(
        {
          fallbackUrl: this.url,
          status: result.status,
          ...(previous.state === 'down' && { downSince: previous.since }),
        },
        previous.state === 'down' ? 'fallback is back up' : 'fallback is up',
      );
    }
    for (const listener of this.#listeners) listener(result);
  }
}
