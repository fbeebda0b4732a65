/**
 * Group commit: what is submitted under a key while a flush of that key is in flight waits
 * for the next flush, which takes everything submitted meanwhile at once. Never joins the
 * flush in flight (it may have begun before the caller's change was made): one flush in
 * flight and one gathering per key, however many callers. A failed flush fails every
 * submission it took; the next one starts afresh.
 *
 * The store's durable steps are all of this shape: one fsync of a directory makes every
 * rename into it before the fsync began durable, and one synced LevelDB batch writes every
 * record waiting. Under 64 concurrent uploads this turns a blocking call per upload into
 * one per group, and keeps libuv's four threads free for the rest.
 */
export class GroupCommit<K, T> {
  readonly #flush: (key: K, items: T[]) => Promise<void>;
  readonly #keys = new Map<K, KeyState<T>>();

  constructor(flush: (key: K, items: T[]) => Promise<void>) {
    this.#flush = flush;
  }

  /** Resolves once a flush that began after this call, and took `item`, has succeeded. */
  submit(key: K, item: T): Promise<void> {
    const state = this.#keys.get(key);
    if (state === undefined) return this.#start(key, [item]);
    if (state.next === undefined) {
      const items = [item];
      state.next = {
        items,
        done: state.current.then(noop, noop).then(() => this.#start(key, items)),
      };
    } else {
      state.next.items.push(item);
    }
    return state.next.done;
  }

  #start(key: K, items: T[]): Promise<void> {
    let current: Promise<void>;
    try {
      current = this.#flush(key, items);
    } catch (err) {
      current = Promise.reject(err as Error);
    }
    const state: KeyState<T> = { current, next: undefined };
    this.#keys.set(key, state);
    // Attached before any `next` is, so it runs first: a key with a flush gathering stays.
    current.then(noop, noop).then(() => {
      if (this.#keys.get(key) === state && state.next === undefined) this.#keys.delete(key);
    });
    return current;
  }
}

interface KeyState<T> {
  current: Promise<void>;
  next: { items: T[]; done: Promise<void> } | undefined;
}

function noop(): void {}
