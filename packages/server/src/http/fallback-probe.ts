import type { Logger } from 'pino';
import { PROTOCOL_VERSION, parseVersionBody } from '@filetracker/shared-protocol';
import { requestRoot } from '@filetracker/shared-protocol/wire';

/** How often the fallback is probed; a probe starts this long after the last one ended. */
export const DEFAULT_PROBE_INTERVAL_MS = 5_000;

/**
 * The longest a probe waits for an answer. Shorter when the DELETE's own wait
 * (`--legacy-timeout`) is: a fallback slower than that fails DELETEs anyway.
 */
export const MAX_PROBE_TIMEOUT_MS = 3_000;

/** Why a probe got no HTTP answer. */
export type ProbeFailure = 'unreachable' | 'timeout';

/**
 * What the fallback is, from its answer to `GET /version`: `2.x` a filetracker 2.x server
 * (ft-server, the Python server: `{"protocol_versions": [2]}`), `1.x` anything else that
 * answers (a static server over a 1.x tree: ft-legacy-static, lighttpd), `unknown` before
 * an answer that tells (a 5xx tells nothing: a proxy whose backend is down).
 */
export type FallbackKind = '2.x' | '1.x' | 'unknown';

/** The most of a `/version` answer read: `{"protocol_versions": [2]}` is 27 bytes. */
const MAX_VERSION_BODY_BYTES = 4096;

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
  /** What the last answer that told said it is; kept while it is down. */
  kind: FallbackKind;
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
 * healthy. Every few seconds a `GET /version` (under the URL's prefix, as the clients send
 * it: see createApp's `root`): the fallback may be ft-legacy-static, lighttpd or any static
 * server over a 1.x tree, or a filetracker 2.x server, and each answers that with some
 * status; any HTTP answer within the timeout is up, a refused or reset connection or no
 * answer in time is down. A 2.x server's answer also tells its {@link FallbackKind}, shown
 * in `/status` and logged when it changes; nothing else depends on it (the redirects, HEADs
 * and listings have the same form for both kinds). Probes never overlap, and `/healthz` and
 * `/status` read the last result, so a hung fallback never holds them up. Timers are
 * unref'd: the probe never keeps a process alive, and close() cuts a probe in flight.
 */
export class FallbackProbe {
  readonly url: string;
  readonly #versionUrl: string;
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
    this.#versionUrl = `${requestRoot(this.url)}/version`;
    this.intervalMs = options.intervalMs ?? DEFAULT_PROBE_INTERVAL_MS;
    this.timeoutMs = Math.min(options.timeoutMs ?? MAX_PROBE_TIMEOUT_MS, MAX_PROBE_TIMEOUT_MS);
    if (!(this.intervalMs > 0) || !(this.timeoutMs > 0)) {
      throw new TypeError('FallbackProbe: intervalMs and timeoutMs must be positive');
    }
    this.#logger = options.logger;
    this.#status = {
      url: this.url,
      state: 'unknown',
      kind: 'unknown',
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

  /** Counts a failure of real traffic to the fallback (a DELETE's HEAD, a merged /list/), by error code. */
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
    let kind: FallbackKind = 'unknown';
    try {
      const res = await fetch(this.#versionUrl, { redirect: 'manual', signal: controller.signal });
      kind = await kindOf(res);
      result = { ms: performance.now() - started, status: res.status };
    } catch (err) {
      if (controller.signal.reason === CLOSED) return;
      const ms = performance.now() - started;
      if (controller.signal.reason === timeout) {
        result = { ms, error: 'timeout' };
        reason = `no answer to GET /version within ${this.timeoutMs} ms`;
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
    this.#record(result, reason, kind);
  }

  #record(result: ProbeResult, reason: string | undefined, kind: FallbackKind): void {
    const now = new Date().toISOString();
    const previous = this.#status;
    const state = result.error === undefined ? 'up' : 'down';
    const next: FallbackStatus = { ...previous, state, lastProbeAt: now };
    if (kind !== 'unknown') next.kind = kind;
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
          kind: next.kind,
          ...(previous.state === 'down' && { downSince: previous.since }),
        },
        `${previous.state === 'down' ? 'fallback is back up' : 'fallback is up'}: ${describeKind(next.kind, result.status)}`,
      );
    } else if (next.kind !== previous.kind && previous.kind !== 'unknown') {
      this.#logger?.warn(
        { fallbackUrl: this.url, status: result.status, kind: next.kind, was: previous.kind },
        `fallback changed: now ${describeKind(next.kind, result.status)}`,
      );
    }
    for (const listener of this.#listeners) listener(result);
  }
}

/**
 * The kind a `/version` answer tells: `2.x` for a 200 listing protocol 2, `unknown` for a
 * 5xx, `1.x` for anything else. Reads at most {@link MAX_VERSION_BODY_BYTES} of the body.
 */
async function kindOf(res: Response): Promise<FallbackKind> {
  if (res.status >= 500) {
    await res.body?.cancel();
    return 'unknown';
  }
  if (res.status !== 200 || res.body === null) {
    await res.body?.cancel();
    return '1.x';
  }
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      bytes += value.length;
      if (bytes > MAX_VERSION_BODY_BYTES) return '1.x';
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  try {
    const versions = parseVersionBody(Buffer.concat(chunks).toString('utf8'), res.status);
    return versions.includes(PROTOCOL_VERSION) ? '2.x' : '1.x';
  } catch {
    return '1.x';
  }
}

/** How the log names a kind of fallback. */
function describeKind(kind: FallbackKind, status: number | undefined): string {
  if (kind === '2.x') return 'a filetracker 2.x server';
  if (kind === '1.x') {
    return `not a filetracker 2.x server (GET /version answered ${status}): taken as a static server over a 1.x tree`;
  }
  return `of unknown kind (GET /version answered ${status})`;
}
