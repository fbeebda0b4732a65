import { CommanderError, type Command } from 'commander';
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
  try {
    program.parse([...argv.slice(0, 2), ...args]);
  } catch (err) {
    // --help or --version was printed: nothing else will be written to stdout.
    if (err instanceof CommanderError && err.exitCode === 0) ignoreClosedStdout();
    throw err;
  }
  return program;
}

/**
 * A reader that stops early (`ft-server --help | head -1`) closes the pipe under the text
 * just written; Node reports that as an EPIPE 'error' on stdout on the next tick, which
 * unhandled is a stack trace and exit 1. The reader has what it wanted: the tool ends with
 * the status it had, quietly. Any other stdout error is still thrown.
 */
function ignoreClosedStdout(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
}
