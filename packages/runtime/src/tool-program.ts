import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';

/** How a tool's `--help` ends: the exit statuses, then where the documentation is. */
export interface ToolProgramOptions {
  /** The tool's `package.json` (`new URL('../package.json', import.meta.url)` from `dist/`). */
  packageJson: URL;
  /** What the tool's exit statuses add to the common rule: a line or two (or none). */
  exitStatusNote?: string;
}

/** The clone these packages were built in: `packages/runtime/dist/` is three levels down. */
const REPOSITORY = new URL('../../../', import.meta.url);

/** The version in a package.json; a tool without one is a packaging bug. */
function versionOf(packageJson: URL): string {
  const { version } = JSON.parse(readFileSync(packageJson, 'utf8')) as { version?: unknown };
  if (typeof version !== 'string') throw new TypeError(`${packageJson.href} has no version`);
  return version;
}

/** Where the documentation is: the README section named after the tool, and docs/. */
function docsLine(name: string): string {
  const where = existsSync(new URL('README.md', REPOSITORY))
    ? `in ${fileURLToPath(REPOSITORY).replace(/\/$/, '')}`
    : 'of the repository';
  return `Documentation: README.md ("${name}") and docs/ ${where}`;
}

/**
 * A tool's command with what all four tools share, so they read alike: `-V, --version`
 * (`NAME VERSION` from the tool's package.json), `-h, --help`, the hint after a usage
 * error, and the help footer: the one exit-status rule (EXIT_STATUS), the tool's own
 * note on it, and where its documentation is. The tool adds its description, arguments
 * and option table.
 */
export function toolProgram(name: string, options: ToolProgramOptions): Command {
  const footer = [
    '',
    'Exit status: 0 done, 1 the work failed (stderr says why), 2 a bad command line.',
    ...(options.exitStatusNote ? [options.exitStatusNote] : []),
    docsLine(name),
  ].join('\n');
  return new Command(name)
    .version(
      `${name} ${versionOf(options.packageJson)}`,
      '-V, --version',
      'print the version and exit',
    )
    .helpOption('-h, --help', 'print this help and exit')
    .showHelpAfterError(`(run ${name} --help for usage)`)
    .addHelpText('afterAll', footer);
}

/**
 * An option that is another option spelled differently (`--log-file` for `--log`): hidden
 * from `--help` (the target's description names it), it stores into the target's value,
 * so the tool reads one field whichever spelling was used; the later one given wins.
 */
export class AliasOption extends Option {
  readonly #target: string;

  constructor(flags: string, target: Option) {
    super(flags, `same as ${target.long ?? target.flags}`);
    this.#target = target.attributeName();
    this.hideHelp();
    if (target.parseArg) this.argParser(target.parseArg);
  }

  override attributeName(): string {
    return this.#target;
  }
}
