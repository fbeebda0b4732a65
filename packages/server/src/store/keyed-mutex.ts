import { Mutex } from 'async-mutex';

/**
 * One async-mutex per key, created on demand and dropped when nobody holds or waits for it,
 * so memory follows the number of keys in use, not the number ever seen.
 */
export class KeyedMutex {
  readonly #entries = new Map<string, { mutex: Mutex; users: number }>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    let entry = this.#entries.get(key);
    if (!entry) {
      entry = { mutex: new Mutex(), users: 0 };
      this.#entries.set(key, entry);
    }
    entry.users++;
    try {
      return await entry.mutex.runExclusive(fn);
    } finally {
      if (--entry.users === 0) this.#entries.delete(key);
    }
  }
}
