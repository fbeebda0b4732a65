/** The median of `values` (the mean of the middle two for an even count); NaN if empty. */
export function median(values: readonly number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** Per-round ratios a[i] / b[i]: a ratio is only taken between figures of one round. */
export function ratios(a: readonly number[], b: readonly number[]): number[] {
  return a.map((x, i) => x / (b[i] ?? NaN));
}

/** A number for a table: 3 significant digits, thousands without separators. */
export function num(x: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  if (Math.abs(x) >= 100) return String(Math.round(x));
  if (Math.abs(x) >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

/** `0.42x` */
export function ratio(x: number): string {
  return Number.isFinite(x) ? `${x.toFixed(2)}x` : 'n/a';
}

/** The rounds of a figure, for the table: `123 (118, 123, 130)`. */
export function withRounds(values: readonly number[]): string {
  const m = num(median(values));
  return values.length > 1 ? `${m} (${values.map(num).join(', ')})` : m;
}

export const MiB = 1024 * 1024;
