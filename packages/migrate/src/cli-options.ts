import { Option, type Command } from 'commander';
import {
  httpUrl,
  parseCommandLine as parseWith,
  positiveSeconds,
  toolProgram,
  wholeNumber,
} from '@filetracker/runtime';
import { collectPattern } from './exclude.js';
import { DEFAULT_CONCURRENCY, DEFAULT_RETRIES } from './migrator.js';

/** The parsed command line of `ft-migrate`. */
export interface CliOptions {
  /** The 1.x tree; with `from` or `fromStore`, the same as `url`'s source (unused). */
  files: string;
  /** The target server; undefined with `into`. */
  url?: string;
  /** `--into DIR`: write into the store of a stopped ft-server directly, without HTTP. */
  into?: string;
  /** `--from URL`: copy every file of a running filetracker 2.x server. */
  from?: string;
  /** `--from-store DIR`: copy every file of a filetracker 2.x store directory. */
  fromStore?: string;
  root?: string;
  silent: boolean;
  concurrency: number;
  gzipLevel: number;
  retries: number;
  timeout: number;
  /** A path, `false` for `--no-state`, `undefined` for the default file. */
  state?: string | false;
  dryRun: boolean;
  /** `--verify` (stat) or `--verify=digest`. */
  verify?: 'stat' | 'digest';
  report?: string;
  followSymlinks: boolean;
  followSymlinksOutside: boolean;
  /** `--exclude` patterns, in the order given. */
  exclude: string[];
  progressInterval: number;
}

/**
 * The one option table: it drives parsing and `--help` (STYLE.md). `--root` and
 * `-s/--silent` are the Python migrator's; the rest are ours.
 */
function options(): Option[] {
  return [
    new Option(
      '--from <SOURCE_URL>',
      'copy every file of a running filetracker 2.x server (ft-server, filetracker-server ' +
        '2.x, or one under a path prefix such as http://host:9999/ft) instead of a 1.x ' +
        'tree: ft-migrate --from SOURCE_URL URL. Each file keeps its version and its ' +
        'stored gzip; a newer version already on URL wins',
    )
      .argParser(httpUrl)
      .conflicts(['fromStore', 'root', 'exclude', 'followSymlinks', 'followSymlinksOutside']),
    new Option(
      '--from-store <DIR>',
      'the same from a filetracker 2.x store directory (ft-server -d DIR, or the Python ' +
        "server's), read-only and without a server: links/ and blobs/ only, so a store a " +
        'server holds can be read too; files written meanwhile are copied by a rerun',
    ).conflicts(['root', 'exclude', 'followSymlinks', 'followSymlinksOutside']),
    new Option(
      '--into <DIR>',
      'instead of URL: write into the store directory of a stopped ft-server (ft-server ' +
        "-d DIR) directly, without HTTP, by ft-server's own store code (each file verified, " +
        'fsynced and renamed into place, content stored once): the fastest way when ' +
        'downtime is allowed. Refused while an ft-server or ft-recover holds DIR; DIR is ' +
        'created if new (not by --dry-run or --verify, which see no store there as empty)',
    ),
    new Option(
      '--root <DIR>',
      'the directory that corresponds to the storage root: a file is uploaded as / + its ' +
        'path relative to DIR (default: FILES, or the directory of FILES when it is a file)',
    ),
    new Option('-s, --silent', 'print nothing but errors (no progress, no summary)').default(false),
    new Option(
      '-j, --concurrency <N>',
      'files uploaded (or verified) at once: 16 leaves a live server room for its clients; ' +
        'a stopped (--into) or idle one takes small files faster at 64 (README)',
    )
      .env('FT_MIGRATE_CONCURRENCY')
      .default(DEFAULT_CONCURRENCY)
      .argParser(wholeNumber(1)),
    new Option(
      '--gzip-level <N>',
      'zlib level (1-9) of the gzip sent; 1 moved large files at 76 MiB/s against 43 at ' +
        "level 6 (the Python client's) for blobs 1.5% larger (docs/BENCHMARKS.md)",
    )
      .env('FT_MIGRATE_GZIP_LEVEL')
      .default(1)
      .argParser(wholeNumber(1, 9)),
    new Option(
      '--retries <N>',
      'retries, with backoff, of a request that failed transiently (connection refused or ' +
        'reset, timeout, 5xx); a 4xx answer is never retried. A file that still fails is ' +
        'reported and the run goes on',
    )
      .env('FT_MIGRATE_RETRIES')
      .default(DEFAULT_RETRIES)
      .argParser(wholeNumber(0)),
    new Option(
      '--timeout <SECONDS>',
      'give up on a request that makes no progress (connecting, or no bytes moving) for this long',
    )
      .env('FT_MIGRATE_TIMEOUT')
      .default(60)
      .argParser(positiveSeconds),
    new Option(
      '--state <FILE>',
      'resume file: each finished file is appended to it, and files it lists are skipped ' +
        'without asking the server, so after Ctrl-C, kill or a crash the same command ' +
        'finishes the job (default: ft-migrate-FILES-to-HOST_PORT-HASH.state in ' +
        '$XDG_STATE_HOME/filetracker or ~/.local/state/filetracker, HASH naming FILES, ' +
        'the root and URL, printed at start; a .ft-migrate-state-HASH of an earlier ' +
        'version in the current directory is still used). It names the store it was made against: ' +
        "against another store (a rehearsal's state), or when a random sample of its " +
        'files is missing on the server, every file it lists is checked on the server ' +
        '(HEAD) and uploaded unless there, and the file starts afresh',
    ),
    new Option(
      '--no-state',
      'keep no resume file; instead ask the server (HEAD) about each file before uploading ' +
        'it: constant memory, one more request per file',
    ),
    new Option(
      '--dry-run',
      'upload nothing: list each file that would be uploaded, then the totals',
    ).default(false),
    new Option(
      '--verify [MODE]',
      'upload nothing: check that every file is on the server at its version and size ' +
        '(HEAD), list the differences and exit 1 if any; --verify=digest also downloads ' +
        'each file and compares sha256',
    )
      .choices(['stat', 'digest'])
      .preset('stat')
      .conflicts('dryRun'),
    new Option(
      '--report <FILE>',
      'write a JSON summary to FILE: files and bytes uploaded, skipped (and why), failed ' +
        '(with reasons), differences, duration, throughput; and the same as a page to ' +
        'open in a browser (a double-click, no network) beside it: FILE with .json ' +
        'replaced by .html (report.json: report.html), else FILE.html',
    ),
    new Option(
      '--exclude <PATTERN>',
      'leave out files and directories matching PATTERN, gitignore-style, relative to ' +
        'FILES (a single FILE: its name): *.tmp anywhere, /tmp at the top of FILES only, ' +
        'cache/ directories only (not entered), !keep.tmp brings one back. Repeatable; ' +
        "quote it from the shell. Left out entries are counted as skipped ('excluded'), " +
        'not failed. A byte of a name that is not UTF-8 is matched by ? or *',
    )
      .argParser(collectPattern)
      .default([], 'none'),
    new Option(
      '--follow-symlinks',
      "upload the target of a symlink to a file under the symlink's name, if the target " +
        '(every link resolved) is inside FILES; a link out of FILES is reported and ' +
        'skipped. Without it every symlink is reported and skipped; symlinks to ' +
        'directories are never followed',
    ).default(false),
    new Option(
      '--follow-symlinks-outside',
      'with --follow-symlinks (which it implies), also upload targets outside FILES: ' +
        'anything the link names that this user can read, /etc/passwd included',
    )
      .default(false)
      .implies({ followSymlinks: true }),
    new Option(
      '--progress-interval <SECONDS>',
      'without a terminal (a pipe, nohup) or with CI set, print a progress line this often',
    )
      .env('FT_MIGRATE_PROGRESS_INTERVAL')
      .default(5)
      .argParser(positiveSeconds),
  ];
}

/** The `ft-migrate` command, ready to parse. */
export function buildProgram(): Command {
  const program = toolProgram('ft-migrate', {
    packageJson: new URL('../package.json', import.meta.url),
    exitStatusNote:
      '1 also when files failed or --verify found differences; 130 after Ctrl-C,\n' +
      '143 after SIGTERM.',
  })
    .description(
      'Uploads a filetracker 1.x file tree to a filetracker 2.x server, each file under\n' +
        '/ + its path relative to --root, with its mtime as version (as the Python\n' +
        'filetracker-migrate). Run inside ft_root: ft-migrate ./files http://127.0.0.1:9999\n' +
        'Or copies every file of a 2.x server or store into another, each with its version:\n' +
        'ft-migrate --from http://old:9999 http://new:9999, ft-migrate --from-store DIR URL\n' +
        'With the server stopped, --into DIR writes into its store instead of a URL, the\n' +
        'fastest way: ft-migrate ./files --into ft_root_v2',
    )
    .argument('[FILES]', 'the tree to upload (ft_root/files), or a single file (not with --from)')
    .argument('[URL]', 'the filetracker 2.x server, e.g. http://127.0.0.1:9999 (not with --into)')
    .allowExcessArguments(false);
  for (const option of options()) program.addOption(option);
  return program;
}

/**
 * Parses `argv` (as `process.argv`). Unique prefixes of long options work, as with the
 * Python migrator's argparse (`--ro DIR`, `--sil`). A bare `--verify` never takes the
 * next word as its MODE (it would swallow FILES): write `--verify=digest`.
 */
export function parseCommandLine(argv: readonly string[], program = buildProgram()): CliOptions {
  parseWith(program, argv, (arg) => (arg === '--verify' ? '--verify=stat' : arg));
  const opts = program.opts<Omit<CliOptions, 'files' | 'url'>>();
  const args = program.args;
  const copying = opts.from !== undefined || opts.fromStore !== undefined;
  const into = opts.into !== undefined;
  const wanted = (copying ? 0 : 1) + (into ? 0 : 1);
  const files = copying ? (opts.from ?? opts.fromStore)! : args[0]!;
  const fail = (message: string): never =>
    program.error(`error: ${message}`, { exitCode: 2, code: 'ft-migrate.arguments' });
  if (into && args.length === wanted + 1) {
    fail(`--into ${opts.into} and the target URL ${args.at(-1)} exclude each other: give one`);
  }
  if (args.length !== wanted) {
    const got = `got ${args.length} argument${args.length === 1 ? '' : 's'}`;
    if (copying && into) fail(`with --into and --from or --from-store give no argument (${got})`);
    if (copying) fail(`with --from or --from-store give one argument, the target URL (${got})`);
    fail(into ? `with --into give FILES alone (${got})` : `give FILES and URL (${got})`);
  }
  if (into) return { ...opts, files };
  const url = args[wanted - 1]!;
  try {
    httpUrl(url);
  } catch (err) {
    program.error(`error: URL ${url} is invalid: ${(err as Error).message}`, {
      exitCode: 2,
      code: 'ft-migrate.url',
    });
  }
  return { ...opts, files, url };
}
