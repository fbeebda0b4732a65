import type { Command } from 'commander';
import { expandLongOptionPrefixes } from './option-prefixes.js';

/**
 * Parses `argv` (as `process.argv`) with `program`, the way every tool does: unique
 * prefixes of long options expanded first (`--fall URL`), then `rewrite` applied to each
 * argument. A usage error or --help throws commander's error instead of exiting, after
 * commander has printed it, so {@link runCommand} gives the one exit status.
 */
export function parseCommandLine(
  program: Command,
  argv: readonly string[],
  rewrite: (arg: string) => string = (arg) => arg,
): Command {
  const longNames = program.options.map((o) => o.long).filter((n): n is string => n !== undefined);
  const args = expandLongOptionPrefixes(argv.slice(2), longNames).map(rewrite);
  program.exitOverride();
  program.parse([...argv.slice(0, 2), ...args]);
  return program;
}
