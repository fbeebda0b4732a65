import { execFile } from 'node:child_process';
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

let databases = 0;

/**
 * initdb in a temp dir (owned by the postgres user, which also gets the Unix socket there)
 * and a server on a free port of 127.0.0.1. A spurious "address in use" was seen here at
 * start-up (ENGINES.md): a failed start is retried once on another port. fsync is off:
 * the tests kill ft-server processes, never this cluster's host.
 */
export async function startPostgres(): Promise<PostgresEngine> {
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
      'max_connections=200',
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
      const name = `ft_test_${process.pid}_${++databases}`;
      await run(`${BIN}/psql`, [
        '-h',
        '127.0.0.1',
        '-p',
        String(port),
        '-U',
        ROLE,
        '-d',
        'postgres',
        '-v',
        'ON_ERROR_STOP=1',
        '-c',
        `CREATE DATABASE ${name} STRATEGY FILE_COPY`,
      ]);
      return `postgres://${ROLE}@127.0.0.1:${port}/${name}`;
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
