import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { Option, type Command } from 'commander';
import { createLogger } from '@filetracker/http-telemetry';
import {
  AliasOption,
  CliError,
  EXIT_STATUS,
  WorkerChannel,
  answerHalfClosedClients,
  byteSize,
  gracefulStop,
  httpUrl,
  isClusterWorker,
  parseCommandLine,
  portNumber,
  positiveSeconds,
  runCommand,
  runPrimary,
  toolProgram,
  wholeNumber,
} from '@filetracker/runtime';
import { DEFAULT_MAX_FILE_BYTES } from './http/app.js';
import { FallbackProbe } from './http/fallback-probe.js';
import { createRequestListener } from './http/fast-path.js';
import { Telemetry } from './http/metrics.js';
import { WorkerSums } from './http/worker-sums.js';
import { StoreOpenError } from './store/store-api.js';
import { openLocalStore } from './store/open-local.js';
import { openScaleOutStore, redactUrl } from './store/open-scale-out.js';
import { checkScaleOutFlags, scaleOutOptions, type ScaleOutFlags } from './scale-out-flags.js';
import type { Store } from './store/store-api.js';

/** The option table: parsing and --help come from this one list (STYLE.md). */
function program(): Command {
  // -L is --log as the Python server spelled it, and --log-file as ft-legacy-static does.
  const log = new Option(
    '-L, --log <FILE>',
    'append JSON logs to FILE instead of stdout; reopened on SIGHUP (--log-file FILE too)',
  );
  const scaleOut = scaleOutOptions(
    'scale-out: keep names, versions and reference counts in PostgreSQL at URL (postgres://USER[:PASSWORD]@HOST:PORT/DB; the PG* variables work too), schema created or migrated at start; every ft-server with the same --db and blobs is one store. Blobs go to --blobs, or to DIR/blobs/ with -d DIR',
  );
  return toolProgram('ft-server', {
    packageJson: new URL('../package.json', import.meta.url),
  })
    .description(
      'The filetracker 2.x file server (protocol version 2), a drop-in for the Python ' +
        'filetracker-server. Stores files in DIR; always runs in the foreground. ' +
        'Open http://HOST:PORT/ in a browser for the operator page (health, size, requests).',
    )
    .addOption(
      new Option(
        '-d, --dir <DIR>',
        'store directory (blobs/, links/, meta/, ft-tmp/); created if missing',
      )
        .env('FILETRACKER_DIR')
        .default('./ft-data'),
    )
    .addOption(new Option('-l, --listen-on <ADDR>', 'address to listen on').default('127.0.0.1'))
    .addOption(
      new Option('-p, --port <PORT>', 'port to listen on (0: any free port)')
        .default(9999)
        .argParser(portNumber),
    )
    .addOption(log)
    .addOption(new AliasOption('--log-file <FILE>', log))
    .addOption(
      new Option('--log-level <LEVEL>', 'log level')
        .choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
        .default('info'),
    )
    .addOption(
      new Option(
        '--log-config <FILE>',
        'accepted for compatibility with the Python server and ignored (it took a Python logging config); use --log and --log-level',
      ),
    )
    .addOption(
      new Option(
        '-D, --no-daemon',
        'accepted for compatibility; this server never daemonizes (run it under systemd or a supervisor)',
      ),
    )
    .addOption(
      new Option(
        '--workers <N>',
        `with --db: N worker processes (1-${MAX_WORKERS}) serve the port, each with its own database pool; the primary only starts them and replaces one that dies. Otherwise accepted for compatibility (Python ran N gunicorn workers) and ignored: the local store belongs to one process, whose I/O is asynchronous`,
      ),
    )
    .addOption(scaleOut.db)
    .addOption(scaleOut.blobs)
    .addOption(scaleOut.s3Endpoint)
    .addOption(
      new Option(
        '--sweep-interval <SECONDS>',
        'with --db: how often each process tries to become the sweeper (one process at a time, elected through the database) and the sweeper removes unused blobs; a dead sweeper is replaced within this time',
      )
        .env('FT_SWEEP_INTERVAL')
        .default(60)
        .argParser(positiveSeconds),
    )
    .addOption(
      new Option(
        '--sweep-grace <SECONDS>',
        'with --db: a blob no name uses, and a leftover of a crashed upload, is removed only this long after; must exceed the longest upload (one that outlasts it fails)',
      )
        .env('FT_SWEEP_GRACE')
        .default(3600)
        .argParser(positiveSeconds),
    )
    .addOption(
      new Option(
        '--db-pool-size <N>',
        "with --db: at most N connections to the database per process (requests beyond wait for one, up to 10 s, then 503); mind PostgreSQL's max_connections across all processes",
      )
        .env('FT_DB_POOL_SIZE')
        .default(16)
        .argParser(wholeNumber(1, 1000)),
    )
    .addOption(
      new Option(
        '--fallback-url <URL>',
        'migration mode: answer GET/HEAD of names this store lacks with a 307 to URL/files/NAME, where URL is the old store: a 1.x tree served by ft-legacy-static (or any static server), or a running filetracker 2.x server, possibly under a path prefix (http://host/ft: then URL//files/NAME); URL is probed every 5 s (GET /version, which also tells /status which kind it is) and a dead or hung fallback shows in /healthz, /status and /metrics',
      ).argParser(httpUrl),
    )
    .addOption(
      new Option(
        '--legacy-timeout <SECONDS>',
        "migration mode: how long a DELETE waits for the fallback's answer; then a name only the fallback has is 504, one this store holds is deleted",
      )
        .default(10)
        .argParser(positiveSeconds),
    )
    .addOption(
      new Option(
        '--idle-timeout <SECONDS>',
        'drop a connection that sends or accepts nothing for this long (uploads that keep moving are never cut off)',
      )
        .default(120)
        .argParser(positiveSeconds),
    )
    .addOption(
      new Option(
        '--max-file-size <SIZE>',
        'refuse (413) a PUT of a file larger than SIZE uncompressed, as soon as its body passes SIZE; SIZE is bytes or has a K, M, G or T suffix (powers of 1024)',
      )
        .default(DEFAULT_MAX_FILE_BYTES, '16G')
        .argParser(byteSize),
    );
}

/** More workers than this are a typo: each holds a database pool of its own. */
const MAX_WORKERS = 64;

interface Flags extends ScaleOutFlags {
  dir: string;
  listenOn: string;
  port: number;
  log?: string;
  logLevel: string;
  logConfig?: string;
  workers?: string;
  fallbackUrl?: string;
  legacyTimeout: number;
  idleTimeout: number;
  maxFileSize: number;
  sweepInterval: number;
  sweepGrace: number;
  dbPoolSize: number;
}

/**
 * Parses flags, opens the store, listens, and stops cleanly on SIGTERM/SIGINT. Exit status
 * (runCommand): 2 for a bad command line, 1 when the store cannot be opened or the address
 * cannot be listened on.
 */
export function main(argv: string[]): Promise<void> {
  return runCommand('ft-server', () => serve(argv));
}

async function serve(argv: string[]): Promise<void> {
  const command = parseCommandLine(program(), argv);
  const flags = command.opts<Flags>();
  const dirGiven = command.getOptionValueSource('dir') !== 'default';
  checkScaleOutFlags(command, flags, { given: dirGiven, spelled: '-d DIR' });
  for (const flag of ['sweepInterval', 'sweepGrace'] as const) {
    if (flags.db === undefined && command.getOptionValueSource(flag) !== 'default') {
      command.error(
        'error: --sweep-interval and --sweep-grace need --db URL: only the scale-out store sweeps',
        { exitCode: 2, code: 'ft-server.scale-out' },
      );
    }
  }
  const workers = workerCount(command, flags);

  const log = createLogger({
    name: 'ft-server',
    file: flags.log,
    mkdir: flags.log !== undefined,
    level: flags.logLevel,
  });
  const { logger } = log;
  if (isClusterWorker()) return serveProcess(flags, dirGiven, log, workerChannel(log));
  if (flags.logConfig !== undefined)
    logger.warn({ logConfig: flags.logConfig }, '--log-config is ignored');
  if (flags.workers !== undefined && flags.db === undefined) {
    logger.info(
      { workers: flags.workers },
      '--workers is ignored without --db: the local store belongs to one process, whose asynchronous I/O serves every request; for more processes on one store use --db',
    );
  }
  if (workers === 1) return serveProcess(flags, dirGiven, log);

  // The primary of --workers N opens no store and answers no HTTP (see runtime's cluster.ts).
  const code = await runPrimary({
    tool: 'ft-server',
    workers,
    logger,
    reopenLog: log.reopen,
    url: (port) => `http://${flags.listenOn}:${port}`,
    listeningDetails: { db: redactUrl(flags.db!) },
  });
  log.flush();
  process.exit(code);
}

/**
 * `--workers N` as a number: 1 without --db (ignored, see serve), else a whole number in
 * 1..MAX_WORKERS or a usage error (exit 2).
 */
function workerCount(command: Command, flags: Flags): number {
  if (flags.workers === undefined || flags.db === undefined) return 1;
  try {
    return wholeNumber(1, MAX_WORKERS)(flags.workers);
  } catch (err) {
    return command.error(
      `error: option '--workers <N>' argument '${flags.workers}' is invalid. ${(err as Error).message}`,
      {
        exitCode: 2,
        code: 'ft-server.workers',
      },
    );
  }
}

type LogHandle = ReturnType<typeof createLogger>;

/**
 * A worker's link to its primary: the primary's stop and reopen requests go to the
 * handlers serveProcess installs (through `process.emit`, as the signals would).
 */
function workerChannel(log: LogHandle): WorkerChannel {
  return new WorkerChannel({
    stop: () => process.emit('SIGTERM', 'SIGTERM'),
    stopNow: () => {
      log.logger.warn('exiting at once, asked by the primary');
      log.flush();
      process.exit(EXIT_STATUS.failed);
    },
    reopen: () => log.reopen(),
  });
}

/**
 * Opens the store, listens, and stops cleanly on SIGTERM/SIGINT: the whole server, or one
 * worker of --workers N (`channel`), which reports to its primary instead of logging the
 * `listening` line and, when it cannot start, tells the primary why before it exits 1.
 */
async function serveProcess(
  flags: Flags,
  dirGiven: boolean,
  log: LogHandle,
  channel?: WorkerChannel,
): Promise<void> {
  if (channel === undefined) return serveStore(flags, dirGiven, log);
  try {
    await serveStore(flags, dirGiven, log, channel);
  } catch (err) {
    const message = err instanceof CliError ? err.message : String(err);
    log.logger.error(
      err instanceof CliError ? { why: message } : { err },
      'worker could not start',
    );
    log.flush();
    await channel.fatal(message);
    process.exit(EXIT_STATUS.failed);
  }
}

async function serveStore(
  flags: Flags,
  dirGiven: boolean,
  { logger, reopen, flush }: LogHandle,
  channel?: WorkerChannel,
): Promise<void> {
  const warn = (details: Record<string, unknown>, message: string): void =>
    logger.warn(details, message);
  let store: Store;
  /** What the listening line says of where the store is. */
  let where: Record<string, string>;
  try {
    if (flags.db === undefined) {
      const local = await openLocalStore(flags.dir, { warn });
      if (local.tmpLeftovers > 0) {
        logger.warn(
          { count: local.tmpLeftovers },
          'removed leftovers of interrupted uploads from ft-tmp/',
        );
      }
      store = local;
      where = { dir: local.layout.root };
    } else {
      const scaleOut = await openScaleOutStore({
        db: flags.db,
        bucket: flags.blobs,
        s3Endpoint: flags.s3Endpoint,
        // With a bucket, -d DIR only holds the uploads being verified (else a temp dir).
        dir: dirGiven ? flags.dir : undefined,
        sweep: { intervalMs: flags.sweepInterval * 1000, graceSeconds: flags.sweepGrace },
        info: (details, message) => logger.info(details, message),
        poolSize: flags.dbPoolSize,
        warn,
      });
      store = scaleOut;
      where = { db: redactUrl(flags.db), blobs: scaleOut.blobsAt };
    }
  } catch (err) {
    flush();
    if (err instanceof StoreOpenError) throw new CliError(err.code, err.message, { cause: err });
    throw new CliError(
      'STORE_UNUSABLE',
      `cannot open store ${flags.db === undefined ? flags.dir : redactUrl(flags.db)}: ${(err as Error).message}`,
      { cause: err },
    );
  }

  const fallbackProbe =
    flags.fallbackUrl === undefined
      ? undefined
      : new FallbackProbe(flags.fallbackUrl, { timeoutMs: flags.legacyTimeout * 1000, logger });
  // Check header and request deadlines every 5 s rather than Node's 30 s, so a client that
  // trickles its headers is cut off near headersTimeout, not up to half a minute later.
  const telemetry = new Telemetry(logger, store);
  const workerSums =
    channel &&
    new WorkerSums(
      channel,
      () => ({
        pid: process.pid,
        requests: telemetry.requests,
        uploadsInFlight: store.stats.uploadsInFlight,
      }),
      telemetry.metrics.registry,
      logger,
    );
  const server: Server = createServer(
    { connectionsCheckingInterval: 5_000 },
    createRequestListener(store, {
      logger,
      telemetry,
      workerSums,
      fallbackUrl: flags.fallbackUrl,
      fallbackTimeoutMs: flags.legacyTimeout * 1000,
      fallbackProbe,
      maxFileBytes: flags.maxFileSize,
    }),
  );
  // Slow uploads must not be cut off (Node's default requestTimeout is 5 minutes); idle and
  // stalled connections still are, by the socket inactivity timeout and headersTimeout.
  server.requestTimeout = 0;
  server.headersTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  server.setTimeout(flags.idleTimeout * 1000);
  answerHalfClosedClients(server);
  // Signals are trapped before listening: a SIGTERM right after start still stops cleanly.
  // A worker's log is reopened when the primary says so (channel), and a SIGHUP sent to
  // the whole group is ignored there.
  if (channel === undefined) {
    process.on('SIGHUP', () => {
      reopen();
      logger.info('log file reopened');
    });
  }
  const stopServer = gracefulStop({
    server,
    logger,
    flushLog: flush,
    release: async () => {
      await Promise.all([store.close(), fallbackProbe?.close()]);
    },
  });
  const stop = (signal: string): void => {
    void fallbackProbe?.close(); // no more probing while requests in flight finish
    stopServer(signal);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  server.listen(flags.port, flags.listenOn);
  try {
    await Promise.race([
      once(server, 'listening'),
      once(server, 'error').then(([e]) => Promise.reject(e)),
    ]);
  } catch (err) {
    await Promise.all([store.close(), fallbackProbe?.close()]);
    flush();
    const code = (err as NodeJS.ErrnoException).code;
    throw code === 'EADDRINUSE'
      ? new CliError(
          'ADDRESS_IN_USE',
          `${flags.listenOn}:${flags.port} is already in use; pick another --port`,
        )
      : new CliError(
          'CANNOT_LISTEN',
          `cannot listen on ${flags.listenOn}:${flags.port}: ${(err as Error).message}`,
          { cause: err },
        );
  }
  const address = server.address();
  const actualPort = typeof address === 'object' && address ? address.port : flags.port;
  if (channel !== undefined) {
    logger.info({ ...where, storeId: store.storeId }, 'worker listening');
    channel.listening(actualPort);
    return;
  }
  logger.info(
    {
      url: `http://${flags.listenOn}:${actualPort}`,
      ...where,
      storeId: store.storeId,
      fallbackUrl: flags.fallbackUrl,
    },
    'listening',
  );
}
