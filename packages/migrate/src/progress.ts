import {
  REPORTED_SKIPS,
  type MigrateMode,
  type Migrator,
  type ScanProgress,
  type Tally,
} from './migrator.js';

/** A line worth keeping on screen: a failure, a reported skip or a verify difference. */
export interface Notice {
  kind: 'failed' | 'skipped' | 'difference';
  path: string;
  name: string;
  /** Why, in one line. */
  text: string;
}

/** Everything a progress display shows, at one instant. Plain data: views only render it. */
export interface ProgressState {
  mode: MigrateMode;
  finished: boolean;
  interrupted: boolean;
  elapsedMs: number;
  /** The concurrent count of the tree (the totals). */
  scan: ScanProgress;
  /** Entries handled, whatever the outcome. */
  processed: Tally;
  /** Uploaded (dry run: would upload; verify: identical). */
  done: Tally;
  skipped: number;
  failed: number;
  differences: number;
  /** Files being worked on right now. */
  inFlight: number;
  retries: number;
  /** Over the last ~10 s. */
  filesPerSecond: number;
  bytesPerSecond: number;
  /** Unknown until the count is done and something moved. */
  etaMs: number | undefined;
  /** For `<Static>`: only ever appended to, at most {@link NOTICE_CAP}. */
  notices: Notice[];
  noticesOmitted: number;
  /** The latest failures (and differences), newest last. */
  lastErrors: Notice[];
}

/** Lines kept for the terminal; the rest are counted (the report lists them all). */
export const NOTICE_CAP = 500;
const LAST_ERRORS = 3;
const RATE_WINDOW_MS = 10_000;

interface Sample {
  atMs: number;
  files: number;
  bytes: number;
}

/**
 * Turns a {@link Migrator}'s events into {@link ProgressState} snapshots for the ink view
 * and the plain log. Holds counters and at most {@link NOTICE_CAP} lines.
 */
export class ProgressTracker {
  readonly #mode: MigrateMode;
  readonly #now: () => number;
  readonly #startedMs: number;
  #finished = false;
  #interrupted = false;
  #scan: ScanProgress = { files: 0, bytes: 0, done: false };
  readonly #processed: Tally = { files: 0, bytes: 0 };
  readonly #done: Tally = { files: 0, bytes: 0 };
  #skipped = 0;
  #failed = 0;
  #differences = 0;
  #started = 0;
  #retries = 0;
  readonly #notices: Notice[] = [];
  #noticesOmitted = 0;
  #lastErrors: Notice[] = [];
  #samples: Sample[] = [];

  constructor(migrator: Migrator, options: { now?: () => number } = {}) {
    this.#mode = migrator.mode;
    this.#now = options.now ?? Date.now;
    this.#startedMs = this.#now();
    migrator.on('scan', (scan) => (this.#scan = scan));
    migrator.on('file-start', () => (this.#started += 1));
    migrator.on('file-done', (file) => {
      this.#count(file.size);
      this.#done.files += 1;
      this.#done.bytes += file.size;
    });
    migrator.on('file-skip', (file) => {
      this.#count(file.size);
      this.#skipped += 1;
      if (REPORTED_SKIPS.has(file.reason)) {
        this.#notice({ kind: 'skipped', path: file.path, name: file.name, text: file.detail });
      }
    });
    migrator.on('file-fail', (file) => {
      this.#count(file.size);
      this.#failed += 1;
      this.#error({ kind: 'failed', path: file.path, name: file.name, text: file.reason });
    });
    migrator.on('file-diff', (diff) => {
      this.#count(0);
      this.#differences += 1;
      this.#error({ kind: 'difference', path: diff.path, name: diff.name, text: diff.detail });
    });
    migrator.on('file-retry', () => (this.#retries += 1));
    migrator.on('finished', (summary) => {
      this.#finished = true;
      this.#interrupted = summary.interrupted;
    });
  }

  /** The state now; also samples the counters for the rates. */
  snapshot(): ProgressState {
    const nowMs = this.#now();
    const sample = { atMs: nowMs, files: this.#processed.files, bytes: this.#processed.bytes };
    const last = this.#samples.at(-1);
    if (!last || nowMs - last.atMs >= 250) this.#samples.push(sample);
    while (this.#samples.length > 2 && nowMs - this.#samples[0]!.atMs > RATE_WINDOW_MS) {
      this.#samples.shift();
    }
    const first = this.#samples[0]!;
    // Over the window; in the first second, since the start.
    const from = nowMs - first.atMs >= 1000 ? first : { atMs: this.#startedMs, files: 0, bytes: 0 };
    const seconds = (nowMs - from.atMs) / 1000;
    const filesPerSecond = seconds > 0 ? (sample.files - from.files) / seconds : 0;
    const bytesPerSecond = seconds > 0 ? (sample.bytes - from.bytes) / seconds : 0;
    return {
      mode: this.#mode,
      finished: this.#finished,
      interrupted: this.#interrupted,
      elapsedMs: nowMs - this.#startedMs,
      scan: { ...this.#scan },
      processed: { ...this.#processed },
      done: { ...this.#done },
      skipped: this.#skipped,
      failed: this.#failed,
      differences: this.#differences,
      inFlight: this.#started - this.#processed.files,
      retries: this.#retries,
      filesPerSecond,
      bytesPerSecond,
      etaMs: this.#eta(filesPerSecond, bytesPerSecond),
      // A copy: <Static> renders the items past those it has seen, by index.
      notices: this.#notices.slice(),
      noticesOmitted: this.#noticesOmitted,
      lastErrors: this.#lastErrors,
    };
  }

  #count(bytes: number): void {
    this.#processed.files += 1;
    this.#processed.bytes += bytes;
  }

  #notice(notice: Notice): void {
    if (this.#notices.length < NOTICE_CAP) this.#notices.push(notice);
    else this.#noticesOmitted += 1;
  }

  #error(notice: Notice): void {
    this.#notice(notice);
    this.#lastErrors = [...this.#lastErrors.slice(1 - LAST_ERRORS), notice];
  }

  /** Whichever of the files left and the bytes left takes longer at the current rates. */
  #eta(filesPerSecond: number, bytesPerSecond: number): number | undefined {
    if (!this.#scan.done || this.#finished) return undefined;
    const filesLeft = Math.max(0, this.#scan.files - this.#processed.files);
    const bytesLeft = Math.max(0, this.#scan.bytes - this.#processed.bytes);
    if (filesLeft === 0) return 0;
    const estimates: number[] = [];
    if (filesPerSecond > 0) estimates.push(filesLeft / filesPerSecond);
    if (bytesLeft > 0 && bytesPerSecond > 0) estimates.push(bytesLeft / bytesPerSecond);
    if (estimates.length === 0) return undefined;
    return Math.round(Math.max(...estimates) * 1000);
  }
}
