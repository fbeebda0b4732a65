import { writeFile } from 'node:fs/promises';
import { formatBytes, formatDuration, formatRate, plural } from './format.js';
import type { MigrationSummary, SkipReason } from './migrator.js';
import { htmlReportPath, renderHtmlReport, type Report } from './report-html.js';
import type { ResumeDecision } from './resume-check.js';

/** Each reason's count in words: `1 symlink`, `2 special files`. */
const SKIP_WORDS: Record<SkipReason, (n: number) => string> = {
  'already-done': (n) => `${n} finished earlier`,
  'already-there': (n) => `${n} already on the server`,
  'server-newer': (n) => `${n} newer on the server`,
  'deleted-on-server': (n) => `${n} deleted on the server`,
  symlink: (n) => plural(n, 'symlink'),
  'symlink-outside': (n) => `${plural(n, 'symlink')} out of FILES`,
  special: (n) => plural(n, 'special file'),
  vanished: (n) => `${n} vanished`,
  interrupted: (n) => `${n} interrupted`,
  excluded: (n) => `${n} excluded`,
};

/** A path or name on one line: control characters (a newline in a name) are escaped. */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return /[\x00-\x1f\x7f]/.test(text) ? JSON.stringify(text) : text;
}

/** `1 file`, `2 files`. */
function files(count: number): string {
  return plural(count, 'file');
}

function skippedWords(summary: MigrationSummary): string {
  const parts = Object.entries(summary.skipped.byReason)
    .filter(([, n]) => n > 0)
    .map(([reason, n]) => SKIP_WORDS[reason as SkipReason](n));
  return `skipped ${summary.skipped.files}${parts.length > 0 ? ` (${parts.join(', ')})` : ''}`;
}

/** The closing lines for stdout (what was done) and stderr (what needs attention). */
export function summaryLines(
  summary: MigrationSummary,
  context: { statePath?: string; reportPath?: string },
): { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  const took = formatDuration(summary.durationMs);
  const rate =
    `${formatRate(summary.throughput.filesPerSecond)} files/s, ` +
    `${formatRate(summary.throughput.mibPerSecond)} MiB/s`;
  const where = context.reportPath ? ` and in ${context.reportPath}` : '';
  if (summary.mode === 'upload') {
    out.push(
      `ft-migrate: uploaded ${files(summary.uploaded.files)} (${formatBytes(summary.uploaded.bytes)})` +
        ` in ${took} (${rate}); ${skippedWords(summary)}; ${summary.failed.files} failed`,
    );
  } else if (summary.mode === 'dry-run') {
    out.push(
      `ft-migrate: dry run: would upload ${files(summary.wouldUpload.files)} ` +
        `(${formatBytes(summary.wouldUpload.bytes)}); ${skippedWords(summary)}; ` +
        `${summary.failed.files} unreadable`,
    );
  } else {
    const differ = summary.differences.length + summary.differencesOmitted;
    // Those the interruption cut short were not verified (they are among the skipped).
    const verified = summary.processed.files - summary.skipped.byReason.interrupted;
    out.push(
      `ft-migrate: verified ${files(verified)} in ${took} (${rate}): ` +
        `${summary.verified.files} identical, ${differ} differ, ${skippedWords(summary)}, ` +
        `${summary.failed.files} failed`,
    );
    if (differ > 0)
      err.push(
        `ft-migrate: ${files(differ)} ${differ === 1 ? 'differs' : 'differ'} on the server ` +
          `(listed above${where})`,
      );
  }
  // A rerun cannot help a name that is not UTF-8: it gets its own advice (issue 17).
  const retryable = summary.failed.files - summary.notUtf8;
  if (retryable > 0) {
    err.push(
      `ft-migrate: ${files(retryable)} failed (listed above${where}): fix the cause ` +
        'and run the same command again to retry them',
    );
  }
  if (summary.notUtf8 > 0) {
    err.push(
      `ft-migrate: ${summary.notUtf8} ${summary.notUtf8 === 1 ? 'name is' : 'names are'} not ` +
        `valid UTF-8 (listed above by their bytes${where}) and cannot be filetracker names: ` +
        'rename them, or leave them out with --exclude; running again will not help',
    );
  }
  if (summary.interrupted) {
    const resume =
      summary.mode === 'upload' && context.statePath
        ? `progress is saved in ${context.statePath}; run the same command again to resume`
        : 'run the same command again to start over';
    err.push(`ft-migrate: stopped early (${summary.stopReason ?? 'interrupted'}): ${resume}`);
  }
  return { out, err };
}

/**
 * Writes `--report FILE`: the summary plus where it ran, as JSON, and the same as a
 * self-contained HTML page beside it (`report.json` → `report.html`, see htmlReportPath).
 */
export async function writeReport(
  file: string,
  summary: MigrationSummary,
  context: { url: string; statePath?: string; resume?: ResumeDecision | undefined },
): Promise<void> {
  const report: Report = {
    url: context.url,
    statePath: context.statePath ?? null,
    // What was made of the state's finished files, and why (resume-check.ts).
    resume: context.resume ?? null,
    ...summary,
  };
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(htmlReportPath(file), renderHtmlReport(report, SKIP_WORDS));
}
