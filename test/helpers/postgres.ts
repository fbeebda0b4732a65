import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chown, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { accepts, freePort, missingProgram, spawnEngine, waitFor } from './engines.js';
import type { EngineProcess } from './engines.js';
import { tempDir } from './server.js';

const run = promisify(execFile);

/** Debian's PostgreSQL 15 (package `postgresql`), see /work/shared/ENGINES.md. */
const BIN = '/usr/lib/postgresql/15/bin';
const RUNUSER = '/usr/sbin/runuser';
/** initdb and postgres refuse to run as root: they run as this user. */
const PG_USER = 'postgres';
/** The cluster's superuser (trust authentication on loopback: a throwaway cluster). */
const ROLE = 'ft';

/** A throwaway PostgreSQL cluster on 127.0.0.1. */
export interface PostgresEngine {
  port: number;
  /** A fresh, empty database; returns its URL. */
  createDatabase(): Promise<string>;
  /** Stops the server (fast shutdown); start() brings it back on the same port and data. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the server and removes its data dir. Idempotent. */
  close(): Promise<void>;
}

/**
 * Why PostgreSQL cannot be started here (a missing program, not root), or undefined: the
 * tests that need it skip with this reason.
 */
export async function postgresMissing(): Promise<string | undefined> {
  const missing = await missingProgram([
    `${BIN}/initdb`,
    `${BIN}/postgres`,
    `${BIN}/psql`,
    RUNUSER,
  ]);
  if (missing !== undefined) return `${missing} is not installed (apt-get install postgresql)`;
  if (process.getuid?.() !== 0) return 'starting PostgreSQL as the postgres user needs root';
  return undefined;
}

/**
 * The suite runner's PostgreSQL (test/run-suite.ts), shared by the test files of one run:
 * postgres://ft@127.0.0.1:PORT/postgres. Unset: each file starts its own.
 */
export const SHARED_POSTGRES_ENV = 'FT_TEST_PG_URL';

/**
 * Database names unique across the processes of a suite run on one shared cluster: pids
 * are reused within a run (pid_max is 32768 here), so a random part too.
 */
const DB_PREFIX = `ft_test_${process.pid}_${randomBytes(4).toString('hex')}_`;
let databases = 0;

/** CREATE DATABASE of a fresh name on the cluster at 127.0.0.1:`port`; returns its name. */
async function createDatabaseOn(port: number): Promise<string> {
  const name = `${DB_PREFIX}${++databases}`;
  await psql(port, `CREATE DATABASE ${name} STRATEGY FILE_COPY`);
  return name;
}

/** Runs `command` on the `postgres` database of the cluster at 127.0.0.1:`port`. */
const psql = (port: number, command: string): Promise<string> =>
  queryValue(databaseUrl(port, 'postgres'), command);

/** The first column of the first row `sql` returns on the database at `url` (psql -tA). */
export async function queryValue(url: string, sql: string): Promise<string> {
  const { stdout } = await run(`${BIN}/psql`, [
    '-tAX',
    '-v',
    'ON_ERROR_STOP=1',
    '-d',
    url,
    '-c',
    sql,
  ]);
  return String(stdout).split('\n')[0]!;
}

const databaseUrl = (port: number, name: string): string =>
  `postgres://${ROLE}@127.0.0.1:${port}/${name}`;

/**
 * The suite's shared PostgreSQL if the runner set {@link SHARED_POSTGRES_ENV}, else a
 * private one (startPostgres). A test that stops or restarts PostgreSQL starts a private
 * one itself: the shared one refuses stop() and start().
 */
export async function postgresForTest(): Promise<PostgresEngine> {
  const shared = process.env[SHARED_POSTGRES_ENV];
  return shared ? sharePostgres(shared) : startPostgres();
}

/**
 * A handle on a running cluster that this process did not start: fresh databases as
 * usual; close() drops the ones it created (if nothing is connected to them any more)
 * and leaves the server running.
 */
export function sharePostgres(url: string): PostgresEngine {
  const port = Number(new URL(url).port);
  const created: string[] = [];
  const refuse = async (): Promise<never> => {
    throw new Error(
      `the suite's shared PostgreSQL (${SHARED_POSTGRES_ENV}) is not stopped by a test: start a private one (startPostgres)`,
    );
  };
  let closing: Promise<void> | undefined;
  return {
    port,
    async createDatabase() {
      const name = await createDatabaseOn(port);
      created.push(name);
      return databaseUrl(port, name);
    },
    stop: refuse,
    start: refuse,
    close() {
      // Frees the disk early; one still in use stays until the runner removes the cluster.
      closing ??= Promise.all(
        created.map((name) => psql(port, `DROP DATABASE IF EXISTS ${name}`).catch(() => {})),
      ).then(() => {});
      return closing;
    },
  };
}

/**
 * initdb in a temp dir (owned by the postgres user, which also gets the Unix socket there)
 * and a server on a free port of 127.0.0.1. A spurious "address in use" was seen here at
 * start-up (ENGINES.md): a failed start is retried once on another port. fsync is off:
 * the tests kill ft-server processes, never this cluster's host. `maxConnections`: more for
 * the suite's shared cluster, which two test files use at once.
 */
export async function startPostgres({ maxConnections = 200 } = {}): Promise<PostgresEngine> {
  const dir = await tempDir('ft-pg-');
  const data = path.join(dir, 'data');
  const { uid, gid } = await pgIds();
  await chown(dir, uid, gid);
  await run(RUNUSER, [
    '-u',
    PG_USER,
    '--',
    `${BIN}/initdb`,
    '-D',
    data,
    '-A',
    'trust',
    '-U',
    ROLE,
    '--no-sync',
  ]);
  let port = 0;
  let server: EngineProcess | undefined;

  const launch = async (): Promise<void> => {
    const proc = spawnEngine(RUNUSER, [
      '-u',
      PG_USER,
      '--',
      `${BIN}/postgres`,
      '-D',
      data,
      '-h',
      '127.0.0.1',
      '-p',
      String(port),
      '-k',
      data,
      '-c',
      'fsync=off',
      '-c',
      'full_page_writes=off',
      '-c',
      `max_connections=${maxConnections}`,
    ]);
    server = proc;
    let exited = false;
    void proc.exited.then(() => (exited = true));
    await waitFor(
      async () => {
        if (exited) throw new Error(`postgres exited at start: ${proc.output()}`);
        return /ready to accept connections/.test(proc.output()) && (await accepts(port));
      },
      20_000,
      () => `postgres did not start in 20 s: ${proc.output()}`,
    );
  };

  const start = async (): Promise<void> => {
    // A restart keeps its port (clients hold the URL); only a first start may move.
    const first = port === 0;
    if (first) port = await freePort();
    try {
      await launch();
    } catch {
      await stopServer();
      if (first) port = await freePort();
      await launch();
    }
  };

  const stopServer = async (): Promise<void> => {
    const proc = server;
    server = undefined;
    if (!proc) return;
    // runuser waits for its child; the postmaster is signalled itself (SIGINT: fast shutdown).
    const pid = await readFile(path.join(data, 'postmaster.pid'), 'utf8').then(
      (text) => Number(text.split('\n')[0]),
      () => undefined,
    );
    if (pid !== undefined && proc.child.exitCode === null) {
      try {
        process.kill(pid, 'SIGINT');
      } catch {
        // gone already
      }
    }
    const timer = setTimeout(() => void proc.stop('SIGKILL'), 15_000);
    await proc.exited;
    clearTimeout(timer);
  };

  await start();
  let closing: Promise<void> | undefined;
  return {
    get port() {
      return port;
    },
    async createDatabase() {
      return databaseUrl(port, await createDatabaseOn(port));
    },
    stop: stopServer,
    start,
    close() {
      closing ??= (async () => {
        await stopServer();
        await rm(dir, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}

async function pgIds(): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all(
    ['-u', '-g'].map(async (flag) => Number((await run('id', [flag, PG_USER])).stdout.trim())),
  );
  return { uid: uid!, gid: gid! };
}
