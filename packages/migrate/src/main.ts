import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { CliError, EXIT_STATUS, exitStatusOf, runCommand } from '@filetracker/runtime';
import type { FiletrackerClient } from '@filetracker/shared-protocol';
import { PROTOCOL_VERSION, legacyName } from '@filetracker/shared-protocol/wire';
import { parseCommandLine, type CliOptions } from './cli-options.js';
import { Migrator, type MigrateMode } from './migrator.js';
import { startPlainLog } from './plain-log.js';
import { ProgressTracker } from './progress.js';
import { checkResume, type ResumeDecision } from './resume-check.js';
import type { CopySource } from './sources/copy-source.js';
import { HttpSource } from './sources/http.js';
import { StoreSource } from './sources/store.js';
import { describeError } from './retry.js';
import {
  StateFile,
  defaultStatePath,
  legacyStatePath,
  stateDirectory,
  type StateIdentity,
} from './state-file.js';
import { summaryLines, writeReport } from './summary.js';
import { HttpUploader } from './uploader.js';

/** Exit statuses (also in `--help`): runtime's EXIT_STATUS, and a stop by Ctrl-C. */
const EXIT = { ...EXIT_STATUS, interrupted: 130 } as const;

/** How long the start-up check of the server (`GET /version`) may take. */
const VERSION_CHECK_MS = 10_000;

interface Setup {
  files: string;
  root: string;
  url: string;
  mode: MigrateMode;
}

function modeOf(options: CliOptions): MigrateMode {
  return options.verify ? 'verify' : options.dryRun ? 'dry-run' : 'upload';
}

/** FILES, the root and the mode, checked: FILES exists and lies inside the root. */
async function resolveSetup(options: CliOptions, cwd: string): Promise<Setup> {
  const files = path.resolve(cwd, options.files);
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(files)).isDirectory();
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new CliError(
      'FILES_NOT_FOUND',
      missing
        ? `FILES ${options.files} does not exist: run ft-migrate inside ft_root ` +
            '(ft-migrate ./files URL) or give the path of the 1.x files/ directory'
        : `Cannot read FILES ${options.files} (${describeError(err)}): check its permissions`,
      { cause: err },
    );
  }
  const root = options.root
    ? path.resolve(cwd, options.root)
    : isDirectory
      ? files
      : path.dirname(files);
  try {
    if (!(await stat(root)).isDirectory()) throw new Error('not a directory');
    legacyName(files, root);
  } catch (err) {
    throw new CliError(
      'BAD_ROOT',
      `--root ${options.root ?? root} is not a directory containing FILES ${options.files} ` +
        `(${describeError(err)}): give the directory that corresponds to the storage root`,
      { cause: err },
    );
  }
  return { files, root, url: options.url, mode: modeOf(options) };
}

/**
 * The 2.x source of `--from URL` (checked like the target: up, protocol 2) or
 * `--from-store DIR` (checked to be a store), with the identity of its store when the
 * server names one, to refuse copying a store onto itself.
 */
async function openCopySource(
  options: CliOptions,
  cwd: string,
  timeoutMs: number,
): Promise<{ source: CopySource; client?: FiletrackerClient; storeId?: string }> {
  if (options.fromStore !== undefined) {
    return { source: await StoreSource.open(path.resolve(cwd, options.fromStore)) };
  }
  const url = options.from!;
  // got, loaded only for a 2.x source (its listing and stored GETs): see uploader.ts.
  const { FiletrackerClient } = await import('@filetracker/shared-protocol');
  const client = new FiletrackerClient(url, { timeoutMs, retries: 0 });
  try {
    const storeId = await checkServer(client, url);
    return { source: new HttpSource(client, url), client, storeId };
  } catch (err) {
    client.close();
    throw err;
  }
}

/**
 * `GET /version`: the server must be up and speak protocol 2 before anything starts.
 * Resolves with the identity of its store (`undefined` from a server that names none).
 */
async function checkServer(
  client: Pick<HttpUploader, 'versionInfo'>,
  url: string,
): Promise<string | undefined> {
  let versions: number[];
  let storeId: string | undefined;
  try {
    ({ protocolVersions: versions, storeId } = await client.versionInfo({
      signal: AbortSignal.timeout(VERSION_CHECK_MS),
    }));
  } catch (err) {
    const status = (err as { status?: unknown }).status;
    if (typeof status === 'number' && status < 500) {
      throw new CliError(
        'NOT_A_FILETRACKER_SERVER',
        `${url} is not a filetracker 2.x server (GET /version answered ${status}): give the ` +
          'URL of ft-server (or filetracker-server 2.x), not of the old 1.x store',
        { cause: err },
      );
    }
    throw new CliError(
      'SERVER_UNREACHABLE',
      `Cannot reach the filetracker server at ${url} (${describeError(err)}): start it ` +
        '(ft-server -d DIR -p PORT) or fix the URL',
      { cause: err },
    );
  }
  if (!versions.includes(PROTOCOL_VERSION)) {
    throw new CliError(
      'NOT_A_FILETRACKER_SERVER',
      `${url} speaks filetracker protocol ${versions.join(', ') || 'none'}, not ` +
        `${PROTOCOL_VERSION}: give the ` +
        'URL of a 2.x server',
    );
  }
  return storeId;
}

/*
 * Resume: a state file by default, not a HEAD per file. Measured on this machine (2 busy
 * CPUs, local ft-server with its store on disk, 3000 files of 1 KiB, -j 8, medians of 3):
 *   first run:         state file 9.2 s; HEAD before each PUT 12.0 s (+30%: every file asked)
 *   rerun, all done:   state file 0.65 s (no request at all); HEAD per file 2.7 s
 *   loading the state: 1M finished files in 1.9 s and 51 MiB of heap (see state-file.ts)
 * So the state file wins on every run, and its memory (finished files of earlier runs
 * only) is fine up to tens of millions of files. `--no-state` trades it for constant
 * memory at one HEAD per file, and is the way to go when the state file was lost.
 */
/** The resume state of a run, and how it was found. */
interface OpenedState {
  state: StateFile | undefined;
  /** Found in the working directory, where versions before issue 15 kept it. */
  legacy: boolean;
}

async function openState(
  options: CliOptions,
  setup: Setup,
  identity: StateIdentity,
  storeId: string | undefined,
  cwd: string,
): Promise<OpenedState> {
  if (setup.mode === 'verify' || options.state === false)
    return { state: undefined, legacy: false };
  // A dry run reads what earlier runs finished but records nothing.
  const readOnly = setup.mode === 'dry-run';
  if (typeof options.state === 'string') {
    const file = path.resolve(cwd, options.state);
    return { state: await StateFile.open(file, identity, { readOnly, storeId }), legacy: false };
  }
  // A migration interrupted before an upgrade resumes from where it kept its state then.
  const legacy = legacyStatePath(setup.files, identity, cwd);
  if (await isFile(legacy)) {
    return { state: await StateFile.open(legacy, identity, { readOnly, storeId }), legacy: true };
  }
  const file = defaultStatePath(setup.files, identity);
  if (!readOnly) {
    try {
      await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new CliError(
        'STATE_UNUSABLE',
        `Cannot create the state directory ${path.dirname(file)} (${describeError(err)}): ` +
          'set XDG_STATE_HOME to a writable directory, or pass --state FILE or --no-state',
        { cause: err },
      );
    }
  }
  return { state: await StateFile.open(file, identity, { readOnly, storeId }), legacy: false };
}

async function isFile(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

async function checkReportPath(report: string | undefined, cwd: string): Promise<void> {
  if (report === undefined) return;
  const dir = path.dirname(path.resolve(cwd, report));
  try {
    if (!(await stat(dir)).isDirectory()) throw new Error('not a directory');
  } catch (err) {
    throw new CliError(
      'REPORT_UNWRITABLE',
      `Cannot write --report ${report}: ${dir} is not a directory (${describeError(err)})`,
      { cause: err },
    );
  }
}

/**
 * Runs `ft-migrate` with `argv` (as `process.argv`) and resolves with its exit status:
 * 0 done, 1 some files failed or differ or the setup cannot work (FILES missing, server
 * unreachable), 2 bad command line, 130 interrupted.
 */
export async function runCli(argv: readonly string[]): Promise<number> {
  const { stdout, stderr, env } = process;
  const cwd = process.cwd();
  let options: CliOptions;
  try {
    options = parseCommandLine(argv);
  } catch (err) {
    // commander printed the message (or the help) already.
    const status = exitStatusOf('ft-migrate', err);
    if (status === undefined) throw err;
    return status;
  }

  let setup: Setup;
  let state: StateFile | undefined;
  let legacyState = false;
  let resume: ResumeDecision | undefined;
  let from: Awaited<ReturnType<typeof openCopySource>> | undefined;
  // Retries are the migrator's, which counts and reports them and honours --retries.
  const client = new HttpUploader(options.url, { timeoutMs: options.timeout * 1000 });
  const closeClients = (): void => {
    client.close();
    from?.client?.close();
  };
  try {
    const copying = options.from !== undefined || options.fromStore !== undefined;
    if (copying) {
      from = await openCopySource(options, cwd, options.timeout * 1000);
      // The source stands for the root in the state file's identity.
      setup = {
        files: from.source.location,
        root: from.source.location,
        url: options.url,
        mode: modeOf(options),
      };
    } else {
      setup = await resolveSetup(options, cwd);
    }
    await checkReportPath(options.report, cwd);
    const storeId = await checkServer(client, options.url);
    if (from?.storeId !== undefined && from.storeId === storeId) {
      throw new CliError(
        'SAME_STORE',
        `--from ${options.from} and ${options.url} serve the same store: give the old ` +
          'server as --from and the new one as URL',
      );
    }
    const identity = { url: options.url.replace(/\/+$/, ''), root: setup.root };
    ({ state, legacy: legacyState } = await openState(options, setup, identity, storeId, cwd));
    if (state) resume = await checkResume(state, storeId, client, { url: options.url });
  } catch (err) {
    await state?.close().catch(() => {});
    closeClients();
    const status = exitStatusOf('ft-migrate', err);
    if (status === undefined) throw err;
    return status;
  }

  // CI logs keep escape codes as garbage; `CI=false` or `CI=0` means not in CI.
  const inCi = env.CI !== undefined && !['', '0', 'false'].includes(env.CI);
  const display = options.silent
    ? 'silent'
    : setup.mode === 'dry-run' || !stdout.isTTY || inCi
      ? 'plain'
      : 'tty';
  if (state && legacyState) {
    stderr.write(
      `ft-migrate: resuming from ${state.path}, where an earlier ft-migrate kept its ` +
        `state; new migrations keep theirs in ${stateDirectory()}\n`,
    );
  } else if (state && display !== 'silent' && resume?.decision !== 'trusted') {
    // A trusted state's own line below names it.
    stdout.write(`ft-migrate: resume state in ${state.path}\n`);
  }
  // Said before the run and its live view start (issue 18: a run that skips everything
  // must say so, and why, at the start): a distrusted state is a warning, on stderr.
  if (resume?.decision === 'check-all' || (resume?.decision === 'none' && resume.message)) {
    stderr.write(`${resume.message}\n`);
  } else if (resume?.decision === 'trusted' && display !== 'silent') {
    stdout.write(`${resume.message}\n`);
  }
  const migrator = new Migrator({
    files: setup.files,
    root: setup.root,
    ...(from && { from: from.source }),
    client,
    mode: setup.mode,
    verifyDigest: options.verify === 'digest',
    concurrency: options.concurrency,
    gzipLevel: options.gzipLevel,
    retries: options.retries,
    followSymlinks: options.followSymlinks,
    followSymlinksOutside: options.followSymlinksOutside,
    exclude: options.exclude,
    state,
    checkServer: options.state === false && setup.mode !== 'verify',
    checkFinished: resume?.decision === 'check-all',
    countTotals: display !== 'silent',
  });
  const tracker = new ProgressTracker(migrator);
  const view =
    display === 'tty'
      ? // ink and react cost about 50 MiB of memory: loaded only for a terminal.
        (await import('./ui/live-view.js')).startLiveView(tracker)
      : startPlainLog(migrator, tracker, {
          out: stdout,
          err: stderr,
          intervalMs: options.progressInterval * 1000,
          silent: display === 'silent',
        });

  let signalled: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled) process.exit(EXIT.interrupted); // a second Ctrl-C: stop now
    signalled = signal;
    migrator.abort(`${signal} received`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let code: number;
  try {
    const summary = await migrator.run();
    await view.stop();
    const problems: string[] = [];
    try {
      await state?.close();
    } catch (err) {
      problems.push(`ft-migrate: ${(err as Error).message}`);
    }
    const lines = summaryLines(summary, { statePath: state?.path, reportPath: options.report });
    if (display !== 'silent') for (const line of lines.out) stdout.write(`${line}\n`);
    for (const line of lines.err) stderr.write(`${line}\n`);
    if (options.report !== undefined) {
      try {
        await writeReport(path.resolve(cwd, options.report), summary, {
          url: options.url,
          statePath: state?.path,
          resume,
        });
      } catch (err) {
        problems.push(`ft-migrate: cannot write --report ${options.report}: ${describeError(err)}`);
      }
    }
    for (const line of problems) stderr.write(`${line}\n`);
    const differ = summary.differences.length + summary.differencesOmitted > 0;
    if (signalled) code = signalled === 'SIGTERM' ? 143 : EXIT.interrupted;
    else if (summary.failed.files > 0 || differ || summary.interrupted || problems.length > 0)
      code = EXIT.failed;
    else code = EXIT.ok;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await view.stop();
    await state?.close().catch(() => {});
    await from?.source.close();
    closeClients();
  }
  return code;
}

/** The `ft-migrate` bin: runs {@link runCli} and sets the exit status. */
export function main(argv: string[]): Promise<void> {
  return runCommand('ft-migrate', () => runCli(argv));
}
