import { open, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { answerHalfClosedClients } from '@filetracker/shared-protocol';
import { createLegacyListener } from './fast-path.js';
import { buildProgram, type CliOptions } from './cli-options.js';
import { createLogger, type LoggerHandle } from './logger.js';
import { isWorker, runPrimary, WorkerLink } from './cluster.js';

type CliErrorCode = 'BAD_ROOT' | 'BAD_LOG_FILE' | 'ADDRESS_IN_USE' | 'LISTEN_DENIED' | 'BAD_HOST';

/** A failure the user can fix: printed as one line, no stack, exit code 2. */
class CliError extends Error {
  readonly code: CliErrorCode;

  constructor(code: CliErrorCode, message: string) {
    super(message);
    this.name = 'CliError';
    this.code = code;
  }
}

async function checkRoot(root: string): Promise<void> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(root)).isDirectory();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(
      'BAD_ROOT',
      code === 'ENOENT'
        ? `FT_ROOT ${root} does not exist; pass --root the directory that holds files/`
        : `cannot read FT_ROOT ${root} (${code}); check the path and its permissions`,
    );
  }
  if (!isDirectory) {
    throw new CliError(
      'BAD_ROOT',
      `FT_ROOT ${root} is not a directory; pass --root the directory that holds files/`,
    );
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

async function checkLogFile(file: string): Promise<void> {
  try {
    await (await open(file, 'a')).close();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(
      'BAD_LOG_FILE',
      `cannot open log file ${file} (${code}); check its directory exists`,
    );
  }
}

function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const where = `${host}:${port}`;
      if (err.code === 'EADDRINUSE') {
        reject(
          new CliError(
            'ADDRESS_IN_USE',
            `${where} is already in use; stop what listens there or pick --port`,
          ),
        );
      } else if (err.code === 'EACCES') {
        reject(
          new CliError(
            'LISTEN_DENIED',
            `not allowed to listen on ${where}; pick a --port above 1023`,
          ),
        );
      } else if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND') {
        reject(
          new CliError('BAD_HOST', `cannot listen on ${host}: no such local address; check --host`),
        );
      } else {
        reject(err);
      }
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

/**
 * Stops the server: in-flight requests finish (keep-alive connections are closed as soon
 * as they are idle), the log is flushed, and the process exits 0. `now`: exits 1 at once.
 */
function stopper(server: Server, log: LoggerHandle): (why: string, now?: boolean) => void {
  let stopping = false;
  return (why, now = false) => {
    if (now) {
      log.logger.warn({ why }, 'exiting without waiting');
      log.flush();
      process.exit(1);
    }
    if (stopping) return;
    stopping = true;
    log.logger.info({ why }, 'shutting down');
    server.close(() => {
      log.logger.info('stopped');
      log.flush();
      process.exit(0);
    });
    // Keep-alive connections would hold close() open until they time out: close each one
    // as soon as it is idle, also those whose download is still running now.
    server.closeIdleConnections();
    setInterval(() => server.closeIdleConnections(), 100).unref();
  };
}

/** The URL clients reach at `port` (an IPv6 host in brackets). */
function urlOf(options: CliOptions, port: number): string {
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return `http://${host}:${port}`;
}

async function warnIfNoFiles(log: LoggerHandle, root: string): Promise<void> {
  if (!(await isDirectory(join(root, 'files')))) {
    // Likely --root pointed at files/ itself; lighttpd would have answered 404 likewise.
    log.logger.warn({ root }, 'FT_ROOT has no files/ directory: every GET is 404');
  }
}

/** One process serving on its own (--workers 1). */
async function runSingle(options: CliOptions): Promise<void> {
  const log = createLogger({ logFile: options.logFile, level: options.logLevel });
  const server = createServer(
    createLegacyListener({
      root: options.root,
      logger: log.logger,
      statCacheMs: options.statCacheMs,
    }),
  );
  answerHalfClosedClients(server);
  const address = await listen(server, options.port, options.host);
  await warnIfNoFiles(log, options.root);
  log.logger.info({ url: urlOf(options, address.port), root: options.root }, 'listening');
  const stop = stopper(server, log);
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    stop(signal, signalled);
    signalled = true;
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', () => {
    log.reopen();
    log.logger.info('log reopened');
  });
}

/** The primary of --workers N: starts and watches the workers (see cluster.ts). */
async function runClusterPrimary(options: CliOptions): Promise<void> {
  const log = createLogger({ logFile: options.logFile, level: options.logLevel });
  await warnIfNoFiles(log, options.root);
  const code = await runPrimary({
    workers: options.workers,
    logger: log.logger,
    reopenLog: () => log.reopen(),
    url: (port) => urlOf(options, port),
  });
  log.flush();
  process.exit(code);
}

/**
 * A worker of --workers N: serves like a single process, but stops when the primary says
 * so (or is gone), and asks the primary for /status and /metrics summed over all workers.
 * Signals sent to the whole group (Ctrl-C, systemd's stop) are taken as a graceful stop.
 */
async function runClusterWorker(options: CliOptions): Promise<void> {
  const log = createLogger({ logFile: options.logFile, level: options.logLevel });
  let stop: (why: string, now?: boolean) => void = () => process.exit(0);
  const link = new WorkerLink({
    stop: () => stop('asked by the primary'),
    stopNow: () => stop('asked by the primary', true),
    reopen: () => log.reopen(),
  });
  const server = createServer(
    createLegacyListener({
      root: options.root,
      logger: log.logger,
      link,
      statCacheMs: options.statCacheMs,
    }),
  );
  answerHalfClosedClients(server);
  stop = stopper(server, log);
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // The primary passes SIGHUP on as a message (logrotate signals only the primary); a
  // SIGHUP sent to the whole group must not kill the worker, which is Node's default.
  process.on('SIGHUP', () => {});
  try {
    const address = await listen(server, options.port, options.host);
    link.listening(address.port);
  } catch (err) {
    link.fatal(err instanceof CliError ? err.message : (err as Error).message);
    log.flush();
    process.exit(2);
  }
}

async function run(options: CliOptions): Promise<void> {
  if (isWorker()) return runClusterWorker(options);
  await checkRoot(options.root);
  if (options.logFile !== undefined) await checkLogFile(options.logFile);
  if (options.workers > 1) return runClusterPrimary(options);
  return runSingle(options);
}

/** The `ft-legacy-static` command line; `argv` as in `process.argv`. */
export async function main(argv: string[]): Promise<void> {
  const options = buildProgram().parse(argv).opts<CliOptions>();
  try {
    await run(options);
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    console.error(`ft-legacy-static: ${err.message}`);
    process.exitCode = 2;
  }
}
