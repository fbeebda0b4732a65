import { legacyHealth } from './metrics.js';

/** How long a probe of `FT_ROOT/files` may take before the tree counts as unreadable. */
export const READ_PROBE_TIMEOUT_MS = 2_000;

function slow(ms: number): string {
  return `reading FT_ROOT/files has not finished in ${Math.round(ms)} ms`;
}

/**
 * Whether `FT_ROOT/files` can be read now, for /healthz and /status, answered within
 * `timeoutMs`. The probe goes through the thread pool as every file read does, so reads
 * stuck there (a hung disk or mount; before issue 16, GETs of a FIFO) show as a probe
 * that does not finish: /healthz timed out and /status said 200 then. While a probe still
 * hangs, later callers are told so at once rather than queuing probes behind it.
 */
export class ReadProbe {
  readonly #realRoot: string;
  readonly #timeoutMs: number;
  #inFlight: { startedMs: number; done: Promise<string | undefined> } | undefined;

  constructor(realRoot: string, timeoutMs = READ_PROBE_TIMEOUT_MS) {
    this.#realRoot = realRoot;
    this.#timeoutMs = timeoutMs;
  }

  /** Undefined while the tree can be read; else the one-line reason. */
  async check(): Promise<string | undefined> {
    if (this.#inFlight === undefined) {
      const probe = {
        startedMs: performance.now(),
        done: legacyHealth(this.#realRoot).finally(() => {
          if (this.#inFlight === probe) this.#inFlight = undefined;
        }),
      };
      this.#inFlight = probe;
    }
    const { startedMs, done } = this.#inFlight;
    const elapsedMs = performance.now() - startedMs;
    const leftMs = this.#timeoutMs - elapsedMs;
    if (leftMs <= 0) return slow(elapsedMs);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(slow(this.#timeoutMs)), leftMs);
    });
    try {
      return await Promise.race([done, late]);
    } finally {
      clearTimeout(timer);
    }
  }
}
