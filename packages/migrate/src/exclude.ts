import { createRequire } from 'node:module';
import type IgnoreModule from 'ignore';
import { InvalidArgumentError } from 'commander';

/**
 * `ignore`, loaded only when there are patterns: one big module, a measurable part of the
 * start-up of a run without --exclude (issue 15: start-up <= 0.25 s).
 */
function loadIgnore(): typeof IgnoreModule {
  return createRequire(import.meta.url)('ignore') as typeof IgnoreModule;
}

/**
 * `--exclude` patterns, gitignore-style, matched against paths relative to FILES. Tells
 * which pattern left a path out, or `undefined` when none did (or a later `!pattern`
 * brought it back).
 */
export type ExcludeMatcher = (relative: string, isDirectory: boolean) => string | undefined;

/**
 * `ignore` remembers the answer for every path it was asked about (and their parents), so
 * over a tree of millions of files it would grow without end: 300k paths held 43 MiB and
 * took 6.8 s; renewed every 4096 paths (from the compiled rules, which are shared), 0 MiB
 * and 3.4 s. The walk asks about each path once and never below an excluded directory,
 * so the cache buys nothing here.
 */
const RENEW_AFTER_PATHS = 4096;

/** The matcher of `patterns` (in the order given: a later one wins, as in .gitignore). */
export function excludeMatcher(patterns: readonly string[]): ExcludeMatcher | undefined {
  if (patterns.length === 0) return undefined;
  // `ignore` (eslint's and prettier's) implements the gitignore rules themselves: `*` not
  // crossing `/`, `**`, a leading `/` anchoring, a trailing `/` for directories only, `!`.
  // Case-sensitive, as git on Linux; one pattern each, never split at a newline.
  const ignore = loadIgnore();
  const rules = ignore({ ignoreCase: false }).add(patterns.map((pattern) => ({ pattern })));
  let matcher = rules;
  let asked = 0;
  return (relative, isDirectory) => {
    if (++asked % RENEW_AFTER_PATHS === 0) matcher = ignore({ ignoreCase: false }).add(rules);
    const result = matcher.checkIgnore(isDirectory ? `${relative}/` : relative);
    return result.ignored ? result.rule?.pattern : undefined;
  };
}

/**
 * commander's parser of a repeated `--exclude PATTERN`: collects them, refusing patterns
 * that would silently match nothing.
 */
export function collectPattern(value: string, previous: string[] = []): string[] {
  if (value.trim() === '') throw new InvalidArgumentError('expected a pattern, not nothing.');
  if (value.startsWith('#')) {
    throw new InvalidArgumentError(
      'a pattern starting with # is a comment in gitignore: write \\# for a name that starts with #.',
    );
  }
  if (/^\.\.?\//.test(value)) {
    throw new InvalidArgumentError(
      'patterns are relative to FILES without ./ or ../: write tmp/ (anywhere) or /tmp/ (at the top).',
    );
  }
  return [...previous, value];
}
