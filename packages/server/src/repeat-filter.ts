/**
 * Which of many identical log lines to write: a given text passes at most once per
 * interval, and the repeats held back in between are counted and reported with the next one
 * that passes. For what an outage repeats on every request (the object store's client
 * warning, a 503's stack), so that it is a line a minute, not a line per request.
 *
 * Bounded: at most `maxTexts` texts are remembered; beyond, the one least recently seen is
 * forgotten (a text that keeps coming stays remembered).
 */
export class RepeatFilter {
  /** Per text: when it last passed, and the repeats held back since. In order of last sight. */
  readonly #seen = new Map<string, { at: number; repeated: number }>();

  constructor(
    readonly intervalMs = 60_000,
    private readonly maxTexts = 256,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Undefined when `text` is held back (counted); else it passes, and the number is how many
   * of it were held back since it last passed.
   */
  admit(text: string): number | undefined {
    const seen = this.#seen;
    const t = this.now();
    const last = seen.get(text);
    seen.delete(text);
    if (last !== undefined && t - last.at < this.intervalMs) {
      last.repeated++;
      seen.set(text, last);
      return undefined;
    }
    // Forget texts that passed an interval ago and were not repeated since (a repeated one
    // keeps its count for its next line); then, if still full, the one least recently seen.
    for (const [key, entry] of seen) {
      if (t - entry.at >= this.intervalMs && entry.repeated === 0) seen.delete(key);
    }
    if (seen.size >= this.maxTexts) seen.delete(seen.keys().next().value!);
    seen.set(text, { at: t, repeated: 0 });
    return last?.repeated ?? 0;
  }
}
