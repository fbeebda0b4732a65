import { formatBytes, formatDuration } from './format.js';
import type { MigrationSummary, SkipReason } from './migrator.js';
import type { ResumeDecision } from './resume-check.js';

/** What `--report FILE` holds: the summary plus where it ran (summary.ts). */
export type Report = MigrationSummary & {
  url: string;
  statePath: string | null;
  resume: ResumeDecision | null;
};

/**
 * Where the HTML report goes beside `--report FILE`: `report.json` gives `report.html`;
 * any other name gets `.html` added (`report` → `report.html`, `run.txt` → `run.txt.html`),
 * so no file but our own is ever overwritten.
 */
export function htmlReportPath(jsonPath: string): string {
  return jsonPath.endsWith('.json')
    ? jsonPath.slice(0, -'.json'.length) + '.html'
    : `${jsonPath}.html`;
}

function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]!,
  );
}

/**
 * An HTML template tag: every interpolated value is escaped, except what another `html`
 * call made ({@link Html}), so a name from the tree never becomes markup.
 */
class Html {
  constructor(readonly text: string) {}
}

type Part = Html | string | number | readonly Html[];

function html(strings: TemplateStringsArray, ...values: Part[]): Html {
  let out = strings[0]!;
  values.forEach((value, i) => {
    if (value instanceof Html) out += value.text;
    else if (Array.isArray(value)) out += value.map((v: Html) => v.text).join('');
    else out += escapeHtml(String(value));
    out += strings[i + 1]!;
  });
  return new Html(out);
}

/** A count shown exactly, marked for whoever reads the page by machine (tests). */
function figure(name: string, value: number): Html {
  return html`<span data-figure="${name}">${value}</span>`;
}

/** `12 files, 3456 bytes (3.38 KiB)`. */
function tally(name: string, t: { files: number; bytes: number }): Html {
  return html`${figure(`${name}-files`, t.files)} ${t.files === 1 ? 'file' : 'files'},
  ${figure(`${name}-bytes`, t.bytes)} ${t.bytes === 1 ? 'byte' : 'bytes'} (${formatBytes(t.bytes)})`;
}

function row(label: string, value: Html | string): Html {
  return html`<tr>
    <th scope="row">${label}</th>
    <td>${value}</td>
  </tr>`;
}

function omitted(name: string, count: number): Html {
  return count > 0
    ? html`<p class="note">…and ${figure(`${name}-omitted`, count)} more, not listed.</p>`
    : html``;
}

/** The outcome in one word, as the exit status has it. */
function verdict(report: Report): string {
  const differ = report.differences.length + report.differencesOmitted;
  if (report.interrupted) return `stopped early (${report.stopReason ?? 'interrupted'})`;
  if (report.failed.files > 0 || differ > 0) return 'finished with problems';
  return 'finished, nothing failed';
}

function summaryTable(report: Report): Html {
  const rows: Html[] = [
    row('Outcome', verdict(report)),
    row('Mode', report.mode),
    row('Files', report.files),
    row('Server', report.url),
    row('Started', report.startedAt),
    row(
      'Took',
      html`${formatDuration(report.durationMs)} (${figure('duration-ms', report.durationMs)} ms)`,
    ),
    row('Processed', tally('processed', report.processed)),
  ];
  if (report.mode === 'upload') rows.push(row('Uploaded', tally('uploaded', report.uploaded)));
  if (report.mode === 'dry-run') {
    rows.push(row('Would upload', tally('would-upload', report.wouldUpload)));
  }
  if (report.mode === 'verify') rows.push(row('Identical', tally('verified', report.verified)));
  rows.push(
    row('Skipped', tally('skipped', report.skipped)),
    row('Failed', tally('failed', report.failed)),
    row('Names not valid UTF-8', html`${figure('not-utf8', report.notUtf8)}`),
    row('Retries', html`${figure('retries', report.retries)}`),
    row(
      'Rate',
      html`${figure('files-per-second', round2(report.throughput.filesPerSecond))} files/s,
      ${figure('mib-per-second', round2(report.throughput.mibPerSecond))} MiB/s`,
    ),
    row('State file', report.statePath ?? 'none'),
  );
  if (report.resume?.message) rows.push(row('Resume', report.resume.message));
  return html`<table class="summary">
    ${rows}
  </table>`;
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

/** A column of a {@link table}: its title, and `n` for a right-aligned number. */
type Column = [title: string, align?: 'n'];

/**
 * A table of `items`, one row each (`cells` gives a row's cells, in column order), and
 * how many more were not listed; `None.` when there is nothing to list.
 */
function table<T>(
  id: string,
  columns: readonly Column[],
  items: readonly T[],
  cells: (item: T) => Html[],
  omittedCount = 0,
): Html {
  if (items.length === 0) return html`<p>None.</p>`;
  const head = columns.map(([title, align]) => html`<th class="${align ?? ''}">${title}</th>`);
  const rows = items.map((item) => {
    const tds = cells(item).map(
      (cell, i) => html`<td class="${columns[i]?.[1] ?? ''}">${cell}</td>`,
    );
    return html`<tr>
      ${tds}
    </tr>`;
  });
  return html`<table id="${id}">
      <thead>
        <tr>
          ${head}
        </tr>
      </thead>
      <tbody>
        ${rows}
      </tbody>
    </table>
    ${omitted(id, omittedCount)}`;
}

/** A path of the tree, as the JSON has it (a name not UTF-8 escaped by bytes). */
function pathCell(path: string): Html {
  return html`<span class="path">${path}</span>`;
}

function code(text: string): Html {
  return html`<code>${text}</code>`;
}

function skippedTable(report: Report, words: Record<SkipReason, (n: number) => string>): Html {
  const reasons = Object.entries(report.skipped.byReason).filter(([, n]) => n > 0);
  return table(
    'skipped-by-reason',
    [['Reason'], ['Files', 'n'], ['In words']],
    reasons,
    ([reason, n]) => [
      code(reason),
      figure(`skipped-${reason}`, n),
      html`${words[reason as SkipReason](n)}`,
    ],
  );
}

function failuresTable(report: Report): Html {
  return table(
    'failures',
    [['Path'], ['Code'], ['Status', 'n'], ['Reason']],
    report.failures,
    (f) => [pathCell(f.path), code(f.code), html`${f.status ?? ''}`, html`${f.reason}`],
    report.failuresOmitted,
  );
}

function skippedFilesTable(report: Report): Html {
  return table(
    'skipped-files',
    [['Path'], ['Reason'], ['Detail']],
    report.skippedFiles,
    (s) => [pathCell(s.path), code(s.reason), html`${s.detail}`],
    report.skippedFilesOmitted,
  );
}

function differencesTable(report: Report): Html {
  return table(
    'differences',
    [['Path'], ['Kind'], ['Detail']],
    report.differences,
    (d) => [pathCell(d.path), code(d.kind), html`${d.detail}`],
    report.differencesOmitted,
  );
}

/** Content-Security-Policy of the report: no script, nothing loaded, no request at all. */
const REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'";

const STYLE = `
  body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 1.5rem auto;
    padding: 0 1rem; color: #1f2328; }
  h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 1.6rem;
    border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; }
  table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
  th, td { padding: .2rem .8rem; border-bottom: 1px solid #d0d7de; text-align: left;
    vertical-align: top; }
  .n { text-align: right; } .path { font-family: ui-monospace, monospace;
    word-break: break-all; } .note { color: #57606a; }
`;

/**
 * The `--report` summary as a self-contained HTML page (issue 17, item 8): no script, no
 * external asset, so an operator opens it from disk with a double-click. Figures are the
 * JSON's, to the file.
 */
export function renderHtmlReport(
  report: Report,
  skipWords: Record<SkipReason, (n: number) => string>,
): string {
  const page = html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta http-equiv="Content-Security-Policy" content="${REPORT_CSP}" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>ft-migrate report: ${report.files}</title>
        <style>
          ${new Html(STYLE)}
        </style>
      </head>
      <body>
        <h1>ft-migrate report</h1>
        <h2>Summary</h2>
        ${summaryTable(report)}
        <h2>Failed</h2>
        ${failuresTable(report)}
        <h2>Skipped, by reason</h2>
        ${skippedTable(report, skipWords)}
        <h2>Skipped files worth a look</h2>
        ${skippedFilesTable(report)}
        ${
          report.mode === 'verify'
            ? html`<h2>Differences</h2>
                ${differencesTable(report)}`
            : html``
        }
      </body>
    </html> `;
  return page.text;
}
