import { readFile, writeFile } from 'node:fs/promises';
import { ratio } from './stats.js';

/** A target of the issue and how this run did against it. */
export interface TargetCheck {
  what: string;
  /** Measured ratio (median over rounds); NaN when not measured. */
  ratio: number;
  /** `>= target` for ratios; with `atMost`, `<= target` (an absolute limit). */
  target: number;
  atMost?: boolean;
  /** `> target` (strictly) instead of `>= target`. */
  above?: boolean;
  /** How `ratio` is shown when it is not a ratio (e.g. `143 MiB`). */
  shown?: string;
  targetShown?: string;
}

export interface Table {
  caption?: string;
  head: string[];
  rows: string[][];
}

/** One section of BENCHMARKS.md, as a bench module returns it. */
export interface Section {
  /** The heading; the smoke test looks for these. */
  title: string;
  /** How it was measured: one paragraph per entry. */
  method: string[];
  tables: Table[];
  targets: TargetCheck[];
  notes: string[];
  /** Why a comparison was not made (tool missing, migrator not ready...). */
  skipped: string[];
}

export function emptySection(title: string): Section {
  return { title, method: [], tables: [], targets: [], notes: [], skipped: [] };
}

export interface Machine {
  nproc: number;
  cpu: string;
  memGiB: number;
  node: string;
  kernel: string;
  lighttpd: string;
  wrk: string;
  curl: string;
  tmpFs: string;
}

export interface RunInfo {
  command: string;
  /** `git rev-parse --short HEAD`, and whether the work tree had changes. */
  commit: string;
  date: string;
  durationS: number;
  short: boolean;
  rounds: number;
}

function verdict(t: TargetCheck): string {
  if (!Number.isFinite(t.ratio)) return 'not measured';
  const met = t.atMost ? t.ratio <= t.target : t.above ? t.ratio > t.target : t.ratio >= t.target;
  return met ? 'met' : '**missed**';
}

function targetRow(t: TargetCheck): string[] {
  // Three decimals: a 0.349x must not read as the 0.35x it misses.
  const measured = t.shown ?? (Number.isFinite(t.ratio) ? `${t.ratio.toFixed(3)}x` : 'n/a');
  const target = t.targetShown ?? `${t.atMost ? '<=' : t.above ? '>' : '>='} ${ratio(t.target)}`;
  return [t.what, measured, target, verdict(t)];
}

function renderTable(t: Table): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|');
  const lines = [
    `| ${t.head.map(esc).join(' | ')} |`,
    `| ${t.head.map(() => '---').join(' | ')} |`,
    ...t.rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ];
  return (t.caption ? `${t.caption}\n\n` : '') + lines.join('\n');
}

const NOTES_BEGIN = '<!-- BEGIN hand-written notes: kept when pnpm bench rewrites this file -->';
const NOTES_END = '<!-- END hand-written notes -->';

/** The hand-written block of an existing report, so a new run keeps it. */
async function keptNotes(file: string | undefined): Promise<string> {
  if (!file) return '';
  const old = await readFile(file, 'utf8').catch(() => '');
  const a = old.indexOf(NOTES_BEGIN);
  const b = old.indexOf(NOTES_END);
  if (a < 0 || b < a) return '';
  return old.slice(a + NOTES_BEGIN.length, b).trim();
}

/** The whole BENCHMARKS.md. */
export async function renderReport(
  sections: Section[],
  machine: Machine,
  info: RunInfo,
  keepNotesFrom?: string,
): Promise<string> {
  const out: string[] = [];
  out.push('# Benchmarks');
  out.push(
    `Written by \`${info.command}\` on ${info.date} at commit ${info.commit} ` +
      `(${Math.round(info.durationS)} s, ` +
      `${info.short ? 'short mode: toy sizes, figures are not meaningful' : `${info.rounds} rounds unless a table says otherwise`}). ` +
      'Do not edit the figures by hand: rerun the command. Every figure is a ratio of two ' +
      'things measured side by side in the same run (median of the per-round ratios), ' +
      'with the absolute numbers beside it (median, then each round). The machine is ' +
      'shared with other work, so single rounds are noisy; compare ratios, not absolutes.',
  );
  out.push('## Machine');
  out.push(
    renderTable({
      head: ['what', 'value'],
      rows: [
        ['CPUs (nproc)', String(machine.nproc)],
        ['CPU', machine.cpu],
        ['memory', `${machine.memGiB} GiB`],
        ['node', machine.node],
        ['kernel', machine.kernel],
        ['lighttpd', machine.lighttpd],
        ['wrk', machine.wrk],
        ['curl', machine.curl],
        ['temp dir file system', machine.tmpFs],
      ],
    }),
  );
  out.push('## Targets');
  out.push(
    renderTable({
      head: ['target', 'measured', 'target', 'verdict'],
      rows: sections.flatMap((s) => s.targets.map(targetRow)),
    }),
  );
  for (const s of sections) {
    out.push(`## ${s.title}`);
    out.push(...s.method);
    for (const t of s.tables) out.push(renderTable(t));
    if (s.skipped.length > 0) out.push(s.skipped.map((x) => `- Skipped: ${x}`).join('\n'));
    if (s.notes.length > 0) out.push(s.notes.map((x) => `- ${x}`).join('\n'));
  }
  const notes = await keptNotes(keepNotesFrom);
  out.push(`${NOTES_BEGIN}\n${notes ? `\n${notes}\n\n` : ''}${NOTES_END}`);
  return out.join('\n\n') + '\n';
}

export async function writeReport(file: string, text: string): Promise<void> {
  await writeFile(file, text);
}
