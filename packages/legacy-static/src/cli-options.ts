import { availableParallelism } from 'node:os';
import { Option, type Command } from 'commander';
import { AliasOption, portNumber, toolProgram, wholeNumber } from '@filetracker/runtime';

/** The parsed command line of `ft-legacy-static`. */
export interface CliOptions {
  root: string;
  port: number;
  host: string;
  logFile?: string;
  logLevel: string;
  workers: number;
  statCacheMs: number;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/**
 * One worker per core but one, from 1 to 4. During an online migration ft-legacy-static
 * shares its host with ft-server and ft-migrate, so a worker on every core only contends
 * with them: on 2 cores with the load generator beside it (wrk, 8 connections, 3,000 files
 * of 1-10 KiB), one worker served 63,000-76,000 req/s at 13-14 us of CPU per request, two
 * workers 53,000-78,000 at 16-19 us, with a p99 twice as long (medians: one worker 8-20%
 * ahead). Two did better only at 64 connections, by 4-11%. Each worker is about 80 MB.
 */
export const DEFAULT_WORKERS = Math.min(4, Math.max(1, availableParallelism() - 1));

const LOG_FILE = new Option(
  '-L, --log-file <FILE>',
  'append JSON log lines to FILE instead of stdout; reopened on SIGHUP (--log FILE too)',
).env('FT_LEGACY_STATIC_LOG_FILE');

/**
 * The one option table: it drives both parsing and `--help`. The defaults are those of
 * the lighttpd setup this replaces (README, "ft-legacy-static").
 */
const OPTIONS: Option[] = [
  new Option('--root <FT_ROOT>', 'the 1.x store to serve; FT_ROOT/files/{name} is served')
    .env('FT_LEGACY_STATIC_ROOT')
    .makeOptionMandatory(),
  new Option('-p, --port <PORT>', 'TCP port to listen on (0 picks a free one)')
    .env('FT_LEGACY_STATIC_PORT')
    .default(59999)
    .argParser(portNumber),
  new Option('--host <ADDR>', 'address to listen on')
    .env('FT_LEGACY_STATIC_HOST')
    .default('127.0.0.1'),
  LOG_FILE,
  // ft-server's spelling (the Python server's), so -L reads alike in both servers' units.
  new AliasOption('--log <FILE>', LOG_FILE),
  new Option(
    '-w, --workers <N>',
    'worker processes sharing the port (1 = a single process; the default leaves one core ' +
      'to ft-server and ft-migrate); each keeps its own cache',
  )
    .env('FT_LEGACY_STATIC_WORKERS')
    .default(DEFAULT_WORKERS)
    .argParser(wholeNumber(1, 64)),
  new Option(
    '--stat-cache-ms <MS>',
    'serve a small file from memory for up to MS ms before checking it against the disk ' +
      'again, as lighttpd trusts a stat for 1 s; a file changed on disk is stale for at ' +
      'most that long (0: check on every request)',
  )
    .env('FT_LEGACY_STATIC_STAT_CACHE_MS')
    .default(1000)
    .argParser(wholeNumber(0, 3_600_000)),
  new Option('--log-level <LEVEL>', 'least severe level logged; "silent" logs nothing')
    .env('FT_LEGACY_STATIC_LOG_LEVEL')
    .choices(LOG_LEVELS)
    .default('info'),
];

/** The `ft-legacy-static` command, ready to parse. */
export function buildProgram(): Command {
  const program = toolProgram('ft-legacy-static', {
    packageJson: new URL('../package.json', import.meta.url),
  })
    .description(
      'Serves a filetracker 1.x store read-only, in place of lighttpd, while it is migrated ' +
        'online: GET/HEAD /files/{name} give FT_ROOT/files/{name}, GET /status gives ' +
        'counters. SIGTERM/SIGINT stop it after in-flight requests; SIGHUP reopens the log file.',
    )
    .allowExcessArguments(false);
  for (const option of OPTIONS) program.addOption(option);
  return program;
}
