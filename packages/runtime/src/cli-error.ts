import { CommanderError } from 'commander';

/**
 * The exit statuses of every tool (ft-server, ft-recover, ft-migrate, ft-legacy-static),
 * as in the README's "Command lines".
 */
export const EXIT_STATUS = {
  /** Done (with ft-recover --check: the store is consistent). */
  ok: 0,
  /**
   * The command line was understood but the work failed: a port in use, a store locked or
   * unreadable, a server unreachable, a path that does not exist, files that failed.
   */
  failed: 1,
  /** The command line is wrong (unknown option, bad value, missing argument): nothing done. */
  usage: 2,
} as const;

/**
 * A failure the user can fix, found once the command line was parsed: the tool prints
 * `tool: message` on one line, with no stack, and exits {@link EXIT_STATUS}.failed. The
 * message says what failed and what to do (STYLE.md "Errors"); `code` (UPPER_SNAKE) is
 * for programs and tests, the message is not.
 */
/** Marks every CliError, whichever copy of this module made it (see hasInstance). */
const CLI_ERROR = Symbol.for('@filetracker/runtime CliError');

export class CliError extends Error {
  /**
   * `instanceof CliError` holds for an error made by another copy of this module:
   * ft-migrate runs bundled (scripts/bundle-migrate.mjs), and the `--into` code it loads
   * lazily throws this package's own.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (this !== CliError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return typeof value === 'object' && value !== null && CLI_ERROR in value;
  }

  readonly [CLI_ERROR] = true;
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CliError';
    this.code = code;
  }
}

/**
 * The exit status for an error that ended a tool, after saying why on stderr: a
 * {@link CliError} is printed as `tool: message` and is a failure; a commander error was
 * printed by commander (with the usage hint) and is a usage error, or success for --help
 * and --version. Anything else is a bug: undefined, for the caller to rethrow (a stack).
 */
export function exitStatusOf(tool: string, err: unknown): number | undefined {
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT_STATUS.ok : EXIT_STATUS.usage;
  if (err instanceof CliError) {
    process.stderr.write(`${tool}: ${err.message}\n`);
    return EXIT_STATUS.failed;
  }
  return undefined;
}

/**
 * Runs a tool's body and sets `process.exitCode` by the one rule above: the status `run`
 * resolves with (none: leave it, e.g. a server that goes on listening), or the one
 * {@link exitStatusOf} gives for what it threw. Other errors propagate (a bug: stack, 1).
 */
export async function runCommand(tool: string, run: () => Promise<number | void>): Promise<void> {
  try {
    const status = await run();
    if (status !== undefined) process.exitCode = status;
  } catch (err) {
    const status = exitStatusOf(tool, err);
    if (status === undefined) throw err;
    process.exitCode = status;
  }
}
