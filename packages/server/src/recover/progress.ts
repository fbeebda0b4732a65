import type { RecoverOptions, RecoverPhase, RecoverProgress } from './recover.js';

/** Counts work per phase and reports it on a timer (not per item: millions of items). */
export class PhaseProgressReporter {
  readonly #onProgress: ((p: RecoverProgress) => void) | undefined;
  readonly #timer: NodeJS.Timeout | undefined;
  #phase: RecoverPhase = 'ft-tmp';
  #unit = 'entries';
  #done = 0;
  #startedAt = Date.now();

  constructor(options: RecoverOptions) {
    this.#onProgress = options.onProgress;
    if (this.#onProgress) {
      this.#timer = setInterval(() => this.#report(), options.progressIntervalMs ?? 2000);
      this.#timer.unref();
    }
  }

  start(phase: RecoverPhase, unit: string): void {
    this.#phase = phase;
    this.#unit = unit;
    this.#done = 0;
    this.#startedAt = Date.now();
  }

  tick(): void {
    this.#done++;
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
  }

  #report(): void {
    const elapsedMs = Date.now() - this.#startedAt;
    this.#onProgress?.({
      phase: this.#phase,
      unit: this.#unit,
      done: this.#done,
      elapsedMs,
      ratePerSecond: elapsedMs > 0 ? Math.round((this.#done * 1000) / elapsedMs) : 0,
    });
  }
}
