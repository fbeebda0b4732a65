import {
  formatBytes,
  formatDuration,
  formatEta,
  formatOutOf,
  formatRates,
  formatVersion,
  plural,
} from './format.js';
import type { Migrator } from './migrator.js';
import { REPORTED_SKIPS } from './migrator.js';
import type { ProgressState, ProgressTracker } from './progress.js';
import { printable } from './summary.js';

/** Where plain lines go (process.stdout/stderr, or a test's collector). */
export interface LineSink {
  write(text: string): unknown;
}

const VERB = { upload: 'uploading', 'dry-run': 'listing', verify: 'verifying' } as const;

/**
 * One progress line, no escape codes: for logs, pipes and CI. The last one (finished)
 * says `done` or `interrupted` and carries the summary's average rates.
 */
export function progressLine(state: ProgressState): string {
  const known = state.scan.done;
  const files = formatOutOf(state.processed.files, state.scan.files, known);
  const bytes = known
    ? `${formatBytes(state.processed.bytes)}/${formatBytes(state.scan.bytes)}`
    : formatBytes(state.processed.bytes);
  const verb = state.finished ? (state.interrupted ? 'interrupted' : 'done') : VERB[state.mode];
  return (
    `ft-migrate: ${verb} ${files} files, ${bytes}, ${formatRates(state)}, ` +
    (state.finished ? '' : `ETA ${formatEta(state.eta)}, `) +
    `${state.inFlight} in flight, ${plural(state.retries, 'retry', 'retries')}, ` +
    `${state.failed} failed` +
    (state.mode === 'verify' ? `, ${state.differences} differ` : '') +
    (state.interruptedFiles > 0 ? `, ${state.interruptedFiles} interrupted` : '') +
    `, ${formatDuration(state.elapsedMs)} elapsed`
  );
}

/**
 * Prints a run as plain lines: failures (and reported skips) to `err` as they happen,
 * verify differences and dry-run listings to `out`, and a progress line to `out` every
 * `intervalMs`. `silent`: failures and differences only.
 */
export function startPlainLog(
  migrator: Migrator,
  tracker: ProgressTracker,
  options: { out: LineSink; err: LineSink; intervalMs: number; silent: boolean },
): { stop(): void } {
  const { out, err, silent } = options;
  migrator.on('file-fail', (file) => {
    err.write(`ft-migrate: FAILED ${printable(file.path)}: ${file.reason} [${file.code}]\n`);
  });
  migrator.on('file-diff', (diff) => {
    out.write(
      `ft-migrate: DIFFERS ${printable(diff.name)} (${printable(diff.path)}): ${diff.detail}\n`,
    );
  });
  if (!silent) {
    migrator.on('file-skip', (file) => {
      if (REPORTED_SKIPS.has(file.reason)) {
        err.write(`ft-migrate: skipped ${printable(file.path)}: ${file.detail}\n`);
      }
    });
    if (migrator.mode === 'dry-run') {
      migrator.on('file-done', (file) => {
        out.write(
          `would upload ${printable(file.name)} (${plural(file.size, 'byte')}, ` +
            `version ${formatVersion(file.version)})\n`,
        );
      });
    }
  }
  const timer = silent
    ? undefined
    : setInterval(() => out.write(`${progressLine(tracker.snapshot())}\n`), options.intervalMs);
  timer?.unref();
  // The last line, with the summary's counts and rates, right before the summary.
  if (!silent) migrator.on('finished', () => out.write(`${progressLine(tracker.snapshot())}\n`));
  return {
    stop() {
      if (timer) clearInterval(timer);
    },
  };
}
