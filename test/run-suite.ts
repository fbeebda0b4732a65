// The test suite's runner (`pnpm test`): starts one PostgreSQL and one Swift for the whole
// run, hands them to the test files in FT_TEST_PG_URL and FT_TEST_SWIFT_ENDPOINT, runs
// `node --test ARGS` with the terminal inherited (its summary is the run's output), exits
// with its code, and always stops the engines: at the end, on SIGINT or SIGTERM, on an
// error of its own. Each engine-using file started its own pair before (20-40 s each on an
// idle machine, minutes under load); each test still gets a database and a bucket of its
// own. Without an engine installed, the run is unchanged: those tests skip and say why.
// FT_TEST_SHARED_ENGINES=0 starts no shared engine (see SHARED_OFF_ENV).
// After node:test's summary it names each failed test again, with its message: a CI log
// keeps only the end of a run, and a failure in its middle was lost with the rest.
//
//   node test/dist/run-suite.js --test-concurrency=2 test/dist/*.test.js
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatFailures } from './failures-reporter.js';
import {
  SHARED_POSTGRES_ENV,
  postgresMissing,
  startPostgres,
  type PostgresEngine,
} from './helpers/postgres.js';
import { SHARED_SWIFT_ENV, startSwift, swiftMissing, type SwiftEngine } from './helpers/swift.js';

/**
 * `FT_TEST_SHARED_ENGINES=0` starts none: each test file that needs an engine starts its own
 * (or skips), as when run without this runner. For running a few files that need none.
 */
const SHARED_OFF_ENV = 'FT_TEST_SHARED_ENGINES';

/** Two test files use the shared cluster at once, each with several pools. */
const MAX_CONNECTIONS = 400;

const say = (line: string): void => console.error(`run-suite: ${line}`);

let postgres: PostgresEngine | undefined;
let swift: SwiftEngine | undefined;
let child: ChildProcess | undefined;
/** The signal that asked us to stop, if one did. */
let stopSignal: NodeJS.Signals | undefined;
/** An error of the runner's own: the run fails whatever the tests said. */
let failed = false;

/** The engines' start, settled once each has started or failed. */
let starting: Promise<unknown> = Promise.resolve();

let stopping: Promise<void> | undefined;
function stopEngines(): Promise<void> {
  stopping ??= (async () => {
    await starting;
    const running = [postgres, swift].filter((e) => e !== undefined);
    if (running.length === 0) return;
    const results = await Promise.allSettled(running.map((e) => e.close()));
    for (const r of results) {
      if (r.status === 'rejected') say(`stopping an engine failed: ${String(r.reason)}`);
    }
    say('shared engines stopped');
  })();
  return stopping;
}

/** Where the failures reporter writes, when the runner added it (see `testArgs`). */
let failuresDir: string | undefined;

/** Names each failed test again, after the run's summary. */
function reportFailures(): void {
  if (!failuresDir) return;
  let output = '';
  try {
    output = readFileSync(path.join(failuresDir, 'failures.jsonl'), 'utf8');
  } catch {
    // no file: the tests never started
  }
  const [head, ...rest] = formatFailures(output);
  if (head !== undefined) {
    say(head);
    for (const line of rest) console.error(line);
  }
  rmSync(failuresDir, { recursive: true, force: true });
  failuresDir = undefined;
}

/** Stops the engines, then exits with `code`. */
async function finish(code: number): Promise<never> {
  reportFailures();
  await stopEngines();
  process.exit(code);
}

const signalCode = (signal: NodeJS.Signals): number => 128 + (constants.signals[signal] ?? 0);

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    if (stopSignal) return; // already stopping: the engines' own kill timers bound it
    stopSignal = signal;
    say(`${signal}: stopping the tests, then the engines`);
    if (!child)
      void finish(signalCode(signal)); // once the engines' start settles
    else if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  });
}
for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
  process.on(event, (err: unknown) => {
    say(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    failed = true;
    // The tests first (their exit finishes), then the engines.
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    else void finish(1);
  });
}

/**
 * Starts each engine that is installed, at once. One that is missing or fails to start is
 * not shared: each file then starts its own or skips, as without this runner.
 */
async function startUp(): Promise<NodeJS.ProcessEnv> {
  const started = performance.now();
  const off =
    process.env[SHARED_OFF_ENV] === '0' ? `${SHARED_OFF_ENV}=0 in the environment` : undefined;
  const [noPostgres, noSwift] = off
    ? [off, off]
    : await Promise.all([postgresMissing(), swiftMissing()]);
  const settled = Promise.allSettled([
    noPostgres ? undefined : startPostgres({ maxConnections: MAX_CONNECTIONS }),
    noSwift ? undefined : startSwift(),
  ]).then(([pg, sw]) => {
    if (pg.status === 'fulfilled') postgres = pg.value;
    if (sw.status === 'fulfilled') swift = sw.value;
    return [pg, sw] as const;
  });
  starting = settled;
  const [pg, sw] = await settled;

  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env[SHARED_POSTGRES_ENV];
  delete env[SHARED_SWIFT_ENV];
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  if (postgres) {
    env[SHARED_POSTGRES_ENV] = `postgres://ft@127.0.0.1:${postgres.port}/postgres`;
    say(`PostgreSQL shared by the test files: ${env[SHARED_POSTGRES_ENV]} (${seconds} s)`);
  } else {
    say(`no shared PostgreSQL: ${noPostgres ?? String((pg as PromiseRejectedResult).reason)}`);
  }
  if (swift) {
    env[SHARED_SWIFT_ENV] = swift.endpoint;
    say(`Swift shared by the test files: ${swift.endpoint} (${seconds} s)`);
  } else {
    say(`no shared Swift: ${noSwift ?? String((sw as PromiseRejectedResult).reason)}`);
  }
  return env;
}

/**
 * node --test's arguments: ours, and unless they choose reporters, node's usual one (spec on
 * a terminal, TAP otherwise) on standard output beside the failures reporter on a file.
 */
function testArgs(): string[] {
  const args = process.argv.slice(2);
  if (args.some((a) => a.startsWith('--test-reporter'))) return args;
  failuresDir = mkdtempSync(path.join(tmpdir(), 'ft-run-suite-'));
  const reporter = fileURLToPath(new URL('./failures-reporter.js', import.meta.url));
  return [
    ...['--test-reporter', process.stdout.isTTY ? 'spec' : 'tap'],
    ...['--test-reporter-destination', 'stdout'],
    ...['--test-reporter', reporter],
    ...['--test-reporter-destination', path.join(failuresDir, 'failures.jsonl')],
    ...args,
  ];
}

async function main(): Promise<void> {
  const env = await startUp();
  if (stopping) return; // a signal or an error came first: finish() exits
  child = spawn(process.execPath, ['--test', ...testArgs()], {
    stdio: 'inherit',
    env,
  });
  child.once('error', (err) => {
    say(`node --test did not start: ${err.message}`);
    void finish(1);
  });
  child.once('exit', (code, signal) => {
    if (failed) void finish(1);
    else if (stopSignal) void finish(signalCode(stopSignal));
    else void finish(code ?? (signal ? signalCode(signal) : 1));
  });
}

await main();
