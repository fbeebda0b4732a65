import type { Eta } from './progress.js';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** `0 B`, `512 B`, `1.5 KiB`, `12.3 MiB`, `1.02 GiB`: binary units, 3 significant digits. */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${Math.round(value)} B`;
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${UNITS[unit]}`;
}

/** `42s`, `3m05s`, `2h07m`; `?` when unknown. */
export function formatDuration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '?';
  const total = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(s).padStart(2, '0')}s`;
  return `${s}s`;
}

/** A rate with at most one decimal: `0`, `7.5`, `1234`. */
export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond) || perSecond <= 0) return '0';
  return perSecond >= 100 ? String(Math.round(perSecond)) : perSecond.toFixed(1);
}

/** `done/total (pct%)`, or `done/≥counted` while the count is still running. */
export function formatOutOf(done: number, total: number, totalKnown: boolean): string {
  if (!totalKnown) return `${done}/≥${Math.max(done, total)}`;
  const pct = total > 0 ? Math.min(100, Math.floor((done / total) * 100)) : 100;
  return `${done}/${total} (${pct}%)`;
}

/** `1 file`, `2 files`, `0 files`; `plural` for words that take more than an `s`. */
export function plural(n: number, singular: string, many = `${singular}s`): string {
  return `${n} ${n === 1 ? singular : many}`;
}

/**
 * A version (whole seconds since the epoch, the file's mtime) as people read it:
 * ISO 8601 in UTC, `2026-11-25T10:15:08Z`. A number no date can hold stays a number.
 */
export function formatVersion(version: number): string {
  const date = new Date(version * 1000);
  if (!Number.isFinite(date.getTime())) return String(version);
  return date.toISOString().replace('.000Z', 'Z');
}

/** `2m30s`, `29s–7m51s` (the time left lies in there), `estimating`, `? (counting)`. */
export function formatEta(eta: Eta): string {
  switch (eta.kind) {
    case 'counting':
      return '? (counting)';
    case 'estimating':
      return 'estimating';
    case 'none':
      return '-';
    case 'known':
      return formatDuration(eta.ms);
    case 'range':
      return `${formatDuration(eta.lowMs)}–${formatDuration(eta.highMs)}`;
  }
}

/**
 * The rates of a progress line or frame: over the last seconds while running; once
 * finished, the summary's (its files and MiB per second over the whole run), said so.
 */
export function formatRates(state: {
  finished: boolean;
  filesPerSecond: number;
  bytesPerSecond: number;
}): string {
  const rates =
    `${formatRate(state.filesPerSecond)} files/s, ` +
    `${formatRate(state.bytesPerSecond / 2 ** 20)} MiB/s`;
  return state.finished ? `${rates} on average` : rates;
}
