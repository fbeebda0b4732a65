import type { Logger } from 'pino';
import { inBatches } from '@filetracker/runtime';
import {
  FallbackError,
  FiletrackerError,
  HEADER,
  LAST_MODIFIED_PARAM,
  NotADirectoryError,
  encodeName,
  formatHttpDate,
  joinName,
  splitLines,
  splitName,
} from '@filetracker/shared-protocol';
import type { MigrationMode } from '../store/migration.js';
import type { Store } from '../store/store-api.js';

/** Names of the fallback's answer checked at once: enough to hide the lookups' latency. */
const BATCH = 64;

/**
 * The longest line taken from the fallback: far above any path a file system holds (4096
 * bytes on Linux), and a bound on what a fallback that never sends a `\n` can make us hold.
 */
const MAX_LINE_CHARS = 64 * 1024;

/** What the fallback said of a directory's listing, once its status is known. */
type FallbackAnswer =
  { kind: 'lines'; body: AsyncIterable<Uint8Array> } | { kind: 'no-such-directory' };

/** A listing ready to be sent: its lines, and how to let go of the fallback's answer. */
export interface Listing {
  /** Chunks of `\n`-terminated names. */
  lines: AsyncIterable<string>;
  /** Releases the fallback's connection; idempotent. Call it when the response ends. */
  close(): void;
}

/**
 * Migration mode's `/list` (issue 17, item 5): our listing merged with the fallback's for
 * the same directory and cutoff, so the 1.x tree not yet migrated is listed too. A name of
 * the fallback's is listed exactly when a GET of it would be redirected there: not when we
 * hold the name (ours wins, whatever its version: a GET serves ours), nor when it has a
 * tombstone (deleted during the migration: a GET is 404).
 *
 * Neither listing is sorted (both are directory walks), so instead of a sorted merge or a
 * set of names seen (memory growing with the directory) each name of the fallback's is
 * looked up in our metadata as it arrives, {@link BATCH} at a time. Memory is bounded by
 * one batch of names, one partial line of at most {@link MAX_LINE_CHARS}, fetch's buffer of
 * the fallback's body (read only as fast as our client takes the answer), and our own
 * walk (one open directory per level): never the listing.
 *
 * Order: the fallback's names first, then ours. A name present throughout on either side is
 * listed at least once; one that the migrator (or a client) moves onto our store while the
 * listing runs may be listed twice (checked before it moved, then walked in ours), but is
 * never missing, which the other order would risk.
 *
 * A fallback that cannot answer fails the listing rather than giving ours alone (a
 * listing that silently lacks the old tree is what this fixes): unreachable or a 5xx 502
 * `FALLBACK_UNREACHABLE`, no answer in time 504 `FALLBACK_TIMEOUT`, no `/list` at all (a
 * static server such as lighttpd: 404, 405...) 502 `FALLBACK_CANNOT_LIST`. Each cause is
 * logged once as a warning; the request log has every failed request. A fallback that
 * fails once the body has begun cuts the connection, so the client sees a truncated
 * answer, not a short list.
 */
export class MergedListing {
  readonly #store: Store;
  readonly #migration: MigrationMode;
  readonly #fallbackUrl: string;
  readonly #timeoutMs: number;
  readonly #logger: Logger;
  readonly #warned = new Set<string>();
  readonly #onFailure: (code: FallbackError['code']) => void;

  /**
   * `fallbackUrl` as `requestRoot` gives it; `timeoutMs` bounds each wait on the fallback;
   * `onFailure` counts every listing the fallback failed (the warning is logged once).
   */
  constructor(
    store: Store,
    migration: MigrationMode,
    fallbackUrl: string,
    timeoutMs: number,
    logger: Logger,
    onFailure: (code: FallbackError['code']) => void = () => {},
  ) {
    this.#store = store;
    this.#migration = migration;
    this.#fallbackUrl = fallbackUrl;
    this.#timeoutMs = timeoutMs;
    this.#logger = logger;
    this.#onFailure = onFailure;
  }

  /**
   * Asks both sides: resolves once the status is known (400 `NOT_A_DIRECTORY` when neither
   * has the directory; the fallback's failure as described above), with the lines unread.
   */
  async open(components: readonly string[], cutoff: number): Promise<Listing> {
    let ours: AsyncIterable<string> | undefined;
    try {
      ours = await this.#store.list(components, cutoff);
    } catch (err) {
      if (!(err instanceof FiletrackerError && err.code === 'NOT_A_DIRECTORY')) throw err;
    }
    const controller = new AbortController();
    const close = () => controller.abort();
    let theirs: FallbackAnswer;
    try {
      theirs = await this.#ask(joinName(components), cutoff, controller);
    } catch (err) {
      close();
      if (err instanceof FallbackError) this.#failed(err, joinName(components));
      throw err;
    }
    if (theirs.kind === 'no-such-directory') {
      close();
      if (ours === undefined) throw new NotADirectoryError();
      return { lines: ours, close };
    }
    return { lines: this.#merge(components, theirs.body, ours, close), close };
  }

  /** GET `/list{name}` of the fallback, with the cutoff spelled as a date. */
  async #ask(name: string, cutoff: number, controller: AbortController): Promise<FallbackAnswer> {
    const url =
      `${this.#fallbackUrl}/list${encodeName(name)}` +
      `?${LAST_MODIFIED_PARAM}=${encodeURIComponent(formatHttpDate(cutoff))}`;
    const res = await this.#timed(controller, () =>
      fetch(url, { redirect: 'manual', signal: controller.signal }),
    );
    if (res.status === 200 && res.body !== null) {
      return { kind: 'lines', body: this.#timedBody(res.body, controller) };
    }
    await res.body?.cancel().catch(() => {});
    if (res.status === 400 && isNotADirectory(res.headers)) return { kind: 'no-such-directory' };
    if (res.status >= 500) {
      throw new FallbackError('FALLBACK_UNREACHABLE', `Fallback server answered ${res.status}`);
    }
    throw new FallbackError(
      'FALLBACK_CANNOT_LIST',
      `Fallback server cannot list (it answered ${res.status} to /list/): a static server such as lighttpd cannot; serve the 1.x tree with ft-legacy-static, which can`,
    );
  }

  /**
   * Runs `step` (a wait on the fallback) with {@link #timeoutMs} to answer, turning a
   * network failure or the timeout into a {@link FallbackError}. The clock runs only while
   * we wait for the fallback, not while our own client is slow to take the answer.
   */
  async #timed<T>(controller: AbortController, step: () => Promise<T>): Promise<T> {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.#timeoutMs);
    try {
      return await step();
    } catch (err) {
      if (timedOut) {
        throw new FallbackError(
          'FALLBACK_TIMEOUT',
          `Fallback server did not answer in ${this.#timeoutMs} ms`,
          err,
        );
      }
      if (err instanceof FallbackError) throw err;
      throw new FallbackError('FALLBACK_UNREACHABLE', 'Fallback server is unreachable', err);
    } finally {
      clearTimeout(timer);
    }
  }

  async *#timedBody(
    body: ReadableStream<Uint8Array>,
    controller: AbortController,
  ): AsyncGenerator<Uint8Array> {
    const reader = body.getReader();
    try {
      for (;;) {
        const { done, value } = await this.#timed(controller, () => reader.read());
        if (done) return;
        yield value;
      }
    } finally {
      reader.releaseLock();
    }
  }

  async *#merge(
    dir: readonly string[],
    theirs: AsyncIterable<Uint8Array>,
    ours: AsyncIterable<string> | undefined,
    close: () => void,
  ): AsyncGenerator<string> {
    try {
      for await (const batch of inBatches(this.#fallbackLines(dir, theirs), BATCH)) {
        const names = await Promise.all(batch.map((line) => this.#servedByFallback(dir, line)));
        const chunk = names.map((n) => (n === undefined ? '' : n + '\n')).join('');
        if (chunk) yield chunk;
      }
      close();
      if (ours) yield* ours;
    } finally {
      close();
    }
  }

  /** The fallback's lines; its failures (not ours) become a warned {@link FallbackError}. */
  async *#fallbackLines(
    dir: readonly string[],
    theirs: AsyncIterable<Uint8Array>,
  ): AsyncGenerator<string> {
    try {
      yield* splitLines(theirs, MAX_LINE_CHARS);
    } catch (err) {
      const failure =
        err instanceof FallbackError
          ? err
          : new FallbackError('FALLBACK_UNREACHABLE', 'Fallback server sent a bad listing', err);
      this.#failed(failure, joinName(dir));
      throw failure;
    }
  }

  /**
   * `line` (a name relative to `dir`, from the fallback) as it is to be listed, or
   * undefined when a GET of it would not reach the fallback: we hold it, or it was deleted
   * during the migration. A line no client could ask for (`..`, an empty component) is
   * dropped with a warning.
   */
  async #servedByFallback(dir: readonly string[], line: string): Promise<string | undefined> {
    let relative: string[];
    try {
      relative = splitName(line);
    } catch (err) {
      this.#warnOnce(err as FiletrackerError, joinName(dir), 'dropped a name the fallback listed');
      return undefined;
    }
    if (relative.length === 0) return undefined;
    const components = [...dir, ...relative];
    if ((await this.#store.stat(components)) !== null) return undefined;
    if (!(await this.#migration.redirects(components))) return undefined;
    return relative.join('/');
  }

  /** A listing the fallback failed: counted every time, warned once. */
  #failed(err: FallbackError, dir: string): void {
    this.#onFailure(err.code);
    this.#warnOnce(err, dir);
  }

  /** One warning per error code (and message): a broken fallback must not flood the log. */
  #warnOnce(
    err: FiletrackerError,
    dir: string,
    message = 'cannot merge the fallback into /list',
  ): void {
    const key = `${err.code} ${err.message}`;
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.#logger.warn(
      { err, code: err.code, dir, fallbackUrl: this.#fallbackUrl },
      `${message}: ${err.message} (said once per cause)`,
    );
  }
}

/**
 * The fallback lacks the directory: ours says so with the code; the Python 2.x server only
 * with its reason (compat).
 */
function isNotADirectory(headers: Headers): boolean {
  return (
    headers.get(HEADER.errorCode) === 'NOT_A_DIRECTORY' ||
    (headers.get(HEADER.exception) ?? '').startsWith("Path doesn't exist")
  );
}
