import {
  REPORTED_SKIPS,
  type MigrateMode,
  type MigrationSummary,
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
  /** Entries finished, whatever the outcome; not those the interruption cut short. */
  processed: Tally;
  /** Uploaded (dry run: would upload; verify: identical). */
  done: Tally;
  /** Skipped for a reason of their own (not counted: those cut short, `interrupted`). */
  skipped: number;
  /** Cut short by the interruption: not finished, to do again on the next run. */
  interruptedFiles: number;
  failed: number;
  differences: number;
  /** Files being worked on right now. */
  inFlight: number;
  retries: number;
  /**
   * While running: entries over the last ~10 s. Once finished: the summary's figures
   * (`throughput`: uploaded files, or processed ones for a dry run or a verify, over the
   * whole run), so the last line and the summary agree.
   */
  filesPerSecond: number;
  bytesPerSecond: number;
  eta: Eta;
  /** For `<Static>`: only ever appended to, at most {@link NOTICE_CAP}. */
  notices: Notice[];
  noticesOmitted: number;
  /** The latest failures (and differences), newest last. */
  lastErrors: Notice[];
}

/**
 * The time left: `counting` until the tree is counted, `estimating` until enough was seen
 * (a few seconds and some files), then a figure, or the range it lies in while the run
 * has not yet shown how much of its time goes per file and how much per byte; `none`
 * once finished.
 */
export type Eta =
  | { kind: 'counting' | 'estimating' | 'none' }
  | { kind: 'known'; ms: number }
  | { kind: 'range'; lowMs: number; highMs: number };

/** Lines kept for the terminal; the rest are counted (the report lists them all). */
export const NOTICE_CAP = 500;
const LAST_ERRORS = 3;
const RATE_WINDOW_MS = 10_000;
/** No ETA before this much of the run and this many files were seen. */
const SETTLE_MS = 3000;
const SETTLE_FILES = 10;
/** Intervals of the ETA's model: each at least this long and ending with a finished file. */
const INTERVAL_MS = 1000;
/** The last ~5 minutes of them (at least a second each). */
const INTERVALS_KEPT = 300;
/** A range narrower than this (high/low) is shown as its high end. */
const RANGE_SHOWN = 1.25;

interface Sample {
  atMs: number;
  files: number;
  bytes: number;
}

/** The files and bytes finished over `ms` of the run. */
interface Interval {
  ms: number;
  files: number;
  bytes: number;
}

/**
 * Turns a {@link Migrator}'s events into {@link ProgressState} snapshots for the ink view
 * and the plain log. Holds counters, at most {@link NOTICE_CAP} lines and
 * {@link INTERVALS_KEPT} intervals.
 */
export class ProgressTracker {
  readonly #mode: MigrateMode;
  readonly #now: () => number;
  readonly #startedMs: number;
  #summary: MigrationSummary | undefined;
  #scan: ScanProgress = { files: 0, bytes: 0, done: false };
  readonly #processed: Tally = { files: 0, bytes: 0 };
  readonly #done: Tally = { files: 0, bytes: 0 };
  #skipped = 0;
  #interrupted = 0;
  #failed = 0;
  #differences = 0;
  #started = 0;
  #retries = 0;
  readonly #notices: Notice[] = [];
  #noticesOmitted = 0;
  #lastErrors: Notice[] = [];
  #samples: Sample[] = [];
  #intervals: Interval[] = [];
  /** Where the open interval starts. */
  #cut: Sample;

  constructor(migrator: Migrator, options: { now?: () => number } = {}) {
    this.#mode = migrator.mode;
    this.#now = options.now ?? Date.now;
    this.#startedMs = this.#now();
    this.#cut = { atMs: this.#startedMs, files: 0, bytes: 0 };
    migrator.on('scan', (scan) => (this.#scan = scan));
    migrator.on('file-start', () => (this.#started += 1));
    migrator.on('file-done', (file) => {
      this.#count(file.size);
      this.#done.files += 1;
      this.#done.bytes += file.size;
    });
    migrator.on('file-skip', (file) => {
      // Cut short, not finished: counted apart, or an interrupted view would read 100%.
      if (file.reason === 'interrupted') {
        this.#interrupted += 1;
        return;
      }
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
    migrator.on('finished', (summary) => (this.#summary = summary));
  }

  /** The state now; also samples the counters for the rates. */
  snapshot(): ProgressState {
    const summary = this.#summary;
    const nowMs = this.#now();
    const { filesPerSecond, bytesPerSecond } = summary
      ? {
          filesPerSecond: summary.throughput.filesPerSecond,
          bytesPerSecond: summary.throughput.mibPerSecond * 2 ** 20,
        }
      : this.#windowRates(nowMs);
    const elapsedMs = summary ? summary.durationMs : nowMs - this.#startedMs;
    return {
      mode: this.#mode,
      finished: summary !== undefined,
      interrupted: summary?.interrupted ?? false,
      elapsedMs,
      scan: { ...this.#scan },
      processed: { ...this.#processed },
      done: { ...this.#done },
      skipped: this.#skipped,
      interruptedFiles: this.#interrupted,
      failed: this.#failed,
      differences: this.#differences,
      inFlight: this.#started - this.#processed.files - this.#interrupted,
      retries: this.#retries,
      filesPerSecond,
      bytesPerSecond,
      eta: summary ? { kind: 'none' } : this.#eta(elapsedMs),
      // A copy: <Static> renders the items past those it has seen, by index.
      notices: this.#notices.slice(),
      noticesOmitted: this.#noticesOmitted,
      lastErrors: this.#lastErrors,
    };
  }

  /** Entries per second over the last {@link RATE_WINDOW_MS} (in the first second, since the start). */
  #windowRates(nowMs: number): { filesPerSecond: number; bytesPerSecond: number } {
    const sample = { atMs: nowMs, files: this.#processed.files, bytes: this.#processed.bytes };
    const last = this.#samples.at(-1);
    if (!last || nowMs - last.atMs >= 250) this.#samples.push(sample);
    while (this.#samples.length > 2 && nowMs - this.#samples[0]!.atMs > RATE_WINDOW_MS) {
      this.#samples.shift();
    }
    const first = this.#samples[0]!;
    const from = nowMs - first.atMs >= 1000 ? first : { atMs: this.#startedMs, files: 0, bytes: 0 };
    const seconds = (nowMs - from.atMs) / 1000;
    return {
      filesPerSecond: seconds > 0 ? (sample.files - from.files) / seconds : 0,
      bytesPerSecond: seconds > 0 ? (sample.bytes - from.bytes) / seconds : 0,
    };
  }

  #count(bytes: number): void {
    this.#processed.files += 1;
    this.#processed.bytes += bytes;
    const atMs = this.#now();
    if (atMs - this.#cut.atMs < INTERVAL_MS) return;
    this.#intervals.push({
      ms: atMs - this.#cut.atMs,
      files: this.#processed.files - this.#cut.files,
      bytes: this.#processed.bytes - this.#cut.bytes,
    });
    if (this.#intervals.length > INTERVALS_KEPT) this.#intervals.shift();
    this.#cut = { atMs, ...this.#processed };
  }

  #notice(notice: Notice): void {
    if (this.#notices.length < NOTICE_CAP) this.#notices.push(notice);
    else this.#noticesOmitted += 1;
  }

  #error(notice: Notice): void {
    this.#notice(notice);
    this.#lastErrors = [...this.#lastErrors.slice(1 - LAST_ERRORS), notice];
  }

  /**
   * The time left, from the files and the bytes left both. A run spends some time per
   * file (requests, opens) and some per byte: t = a·files + c·bytes, a, c ≥ 0. The
   * intervals seen give a and c by least squares once the mix of sizes has varied (small
   * files first, large ones later); until then only the range is known: whatever the
   * split, the time left lies between `files left / files rate` and `bytes left / bytes
   * rate` (a whole-run rate each). Following either alone was the ETA of 7m51s four
   * seconds into a run of 34 s (issue 17): bytes crawl while small files go first.
   */
  #eta(elapsedMs: number): Eta {
    if (!this.#scan.done) return { kind: 'counting' };
    const filesLeft = Math.max(0, this.#scan.files - this.#processed.files);
    const bytesLeft = Math.max(0, this.#scan.bytes - this.#processed.bytes);
    if (filesLeft === 0) return { kind: 'known', ms: 0 };
    const settled =
      elapsedMs >= SETTLE_MS &&
      this.#processed.files >= Math.min(SETTLE_FILES, this.#scan.files) &&
      this.#intervals.length >= 2;
    if (!settled) return { kind: 'estimating' };
    let ms = 0;
    let files = 0;
    let bytes = 0;
    for (const interval of this.#intervals) {
      ms += interval.ms;
      files += interval.files;
      bytes += interval.bytes;
    }
    const byFiles = (filesLeft * ms) / files;
    const byBytes = bytes > 0 ? (bytesLeft * ms) / bytes : byFiles;
    const low = Math.min(byFiles, byBytes);
    const high = Math.max(byFiles, byBytes);
    const fitted = bytes > 0 ? this.#fit(filesLeft, bytesLeft, bytes / files) : undefined;
    if (fitted !== undefined) {
      return { kind: 'known', ms: Math.round(Math.min(high, Math.max(low, fitted))) };
    }
    if (high <= low * RANGE_SHOWN) return { kind: 'known', ms: Math.round(high) };
    return { kind: 'range', lowMs: Math.round(low), highMs: Math.round(high) };
  }

  /**
   * `a·filesLeft + c·bytesLeft` with a and c (≥ 0) fitted to the intervals by least
   * squares; `undefined` while the intervals' bytes per file have hardly varied (the two
   * cannot be told apart). `scale`: bytes per file on average, to keep the sums in range.
   */
  #fit(filesLeft: number, bytesLeft: number, scale: number): number | undefined {
    let xx = 0;
    let xy = 0;
    let yy = 0;
    let tx = 0;
    let ty = 0;
    for (const { ms, files: x, bytes } of this.#intervals) {
      const y = bytes / scale;
      xx += x * x;
      xy += x * y;
      yy += y * y;
      tx += ms * x;
      ty += ms * y;
    }
    // 1 - cos² of the files and bytes columns: near 0 when one is a multiple of the other.
    if (yy === 0 || 1 - (xy * xy) / (xx * yy) < 0.05) return undefined;
    const det = xx * yy - xy * xy;
    let a = (tx * yy - ty * xy) / det;
    let c = (ty * xx - tx * xy) / det;
    if (a < 0) [a, c] = [0, ty / yy];
    else if (c < 0) [a, c] = [tx / xx, 0];
    return a * filesLeft + (c * bytesLeft) / scale;
  }
}
