/**
 * Readers' looks at names, batched: one statement answers every look that is waiting.
 *
 * Why: a GET on the scale-out backend asks the database for its name (names are not cached,
 * see open-scale-out.ts), and each statement costs a round trip's system calls in the
 * process and a statement's parse, plan and executor start in the database. Under load
 * these, not the index lookups, were the GET's cost (profile: a fifth of the process in
 * pg's socket writes; the database at two thirds of a core for 1,700 GETs a second). One
 * statement of N names pays them once.
 *
 * The contract:
 * - A look is answered by a statement **sent after the look was asked**: a look joins only
 *   a batch not yet sent, never one in flight. So it sees every change committed before it
 *   was asked (what a reader on another process needs after a writer's acknowledged PUT),
 *   and each name whole (one statement, one snapshot).
 * - At most `maxInFlight` statements at once (connections of the bounded pool are left to
 *   writers); looks asked meanwhile wait and go together in the next, up to `maxBatch`
 *   names a statement. Alone (an idle server), a look goes at once, in the event loop's
 *   next turn: looks of requests read in one turn go together.
 * - A failed statement whose error says the database is unavailable (`isOutage`) fails
 *   every look it carried and every look waiting, with that error: a database gone silent
 *   answers each request within one statement's timeout, not one timeout per batch queued
 *   behind it. Any other failure (a bug, or one name the database refuses) is not shared:
 *   each name it carried is asked again alone, so one bad name fails only its own look.
 */
export class LookupBatcher<R> {
  readonly #fetch: (names: string[]) => Promise<Map<string, R>>;
  readonly #missing: R;
  readonly #maxInFlight: number;
  readonly #maxBatch: number;
  readonly #isOutage: (err: unknown) => boolean;
  /** Looks not yet sent, by name (a name asked twice goes once). */
  #waiting = new Map<string, { resolve: (r: R) => void; reject: (e: unknown) => void }[]>();
  #inFlight = 0;
  #scheduled = false;

  /**
   * `fetch`: one statement for the names, answering each found one (a name it leaves out
   * is answered `missing`).
   */
  constructor(
    fetch: (names: string[]) => Promise<Map<string, R>>,
    missing: R,
    {
      maxInFlight = 2,
      maxBatch = 256,
      isOutage = () => true,
    }: { maxInFlight?: number; maxBatch?: number; isOutage?: (err: unknown) => boolean } = {},
  ) {
    this.#isOutage = isOutage;
    this.#fetch = fetch;
    this.#missing = missing;
    this.#maxInFlight = maxInFlight;
    this.#maxBatch = maxBatch;
  }

  /** Looks `name` up (see the class comment for when and with whom). */
  get(name: string): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const waiters = this.#waiting.get(name);
      if (waiters) waiters.push({ resolve, reject });
      else this.#waiting.set(name, [{ resolve, reject }]);
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => {
          this.#scheduled = false;
          this.#send();
        });
      }
    });
  }

  /** Sends waiting looks, as many statements as the in-flight bound allows. */
  #send(): void {
    while (this.#waiting.size > 0 && this.#inFlight < this.#maxInFlight) {
      const batch = new Map<string, { resolve: (r: R) => void; reject: (e: unknown) => void }[]>();
      for (const [name, waiters] of this.#waiting) {
        if (batch.size >= this.#maxBatch) break;
        batch.set(name, waiters);
      }
      for (const name of batch.keys()) this.#waiting.delete(name);
      this.#inFlight++;
      this.#fetch([...batch.keys()])
        .then(
          (found) => {
            for (const [name, waiters] of batch) {
              const r = found.has(name) ? found.get(name)! : this.#missing;
              for (const w of waiters) w.resolve(r);
            }
          },
          (err: unknown) => {
            if (this.#isOutage(err) || batch.size === 1) {
              const waiting = this.#isOutage(err) ? [...this.#waiting.values()] : [];
              if (waiting.length > 0) this.#waiting.clear();
              for (const waiters of [...batch.values(), ...waiting]) {
                for (const w of waiters) w.reject(err);
              }
              return;
            }
            for (const [name, waiters] of batch) {
              this.#fetch([name]).then(
                (found) => {
                  const r = found.has(name) ? found.get(name)! : this.#missing;
                  for (const w of waiters) w.resolve(r);
                },
                (alone: unknown) => {
                  for (const w of waiters) w.reject(alone);
                },
              );
            }
          },
        )
        .finally(() => {
          this.#inFlight--;
          this.#send();
        });
    }
  }
}
