/**
 * A first-in first-out queue of at most `capacity` items between one producer and several
 * consumers: `push` waits while the queue is full, `shift` while it is empty. It is what
 * keeps the migrator's memory independent of the tree size: the walker can only run
 * `capacity` entries ahead of the uploaders.
 */
export class BoundedQueue<T> {
  readonly #capacity: number;
  #items: T[] = [];
  #closed = false;
  #consumers: ((item: T | undefined) => void)[] = [];
  #producers: (() => void)[] = [];

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new TypeError(`A queue capacity is a positive integer, got ${capacity}`);
    }
    this.#capacity = capacity;
  }

  /** Items waiting to be taken. */
  get length(): number {
    return this.#items.length;
  }

  /** Adds `item`, waiting for room; resolves `false` (item dropped) once the queue is closed. */
  async push(item: T): Promise<boolean> {
    while (!this.#closed && this.#items.length >= this.#capacity) {
      await new Promise<void>((resolve) => this.#producers.push(resolve));
    }
    if (this.#closed) return false;
    const consumer = this.#consumers.shift();
    if (consumer) consumer(item);
    else this.#items.push(item);
    return true;
  }

  /** The next item, waiting for one; `undefined` once the queue is closed and empty. */
  shift(): Promise<T | undefined> {
    if (this.#items.length > 0) {
      const item = this.#items.shift();
      this.#producers.shift()?.();
      return Promise.resolve(item);
    }
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#consumers.push(resolve));
  }

  /**
   * No more items: waiting consumers get `undefined` once the queue is drained, waiting
   * producers `false`. With `discard`, items not yet taken are dropped too.
   */
  close(discard = false): void {
    this.#closed = true;
    if (discard) this.#items = [];
    for (const consumer of this.#consumers.splice(0)) consumer(undefined);
    for (const producer of this.#producers.splice(0)) producer();
  }
}
