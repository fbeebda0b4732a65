import { open, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createLogger, type LoggerHandle } from '@filetracker/http-telemetry';
import {
  CliError,
  EXIT_STATUS,
  answerHalfClosedClients,
  gracefulStop,
  parseCommandLine,
  runCommand,
} from '@filetracker/runtime';
import { createLegacyListener } from './fast-path.js';
import { buildProgram, type CliOptions } from './cli-options.js';
import { isWorker, runPrimary, WorkerLink } from './cluster.js';

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
  const log = createLogger({
    name: 'ft-legacy-static',
    file: options.logFile,
    level: options.logLevel,
  });
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
  const stop = gracefulStop({ server, logger: log.logger, flushLog: log.flush });
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
  const log = createLogger({
    name: 'ft-legacy-static',
    file: options.logFile,
    level: options.logLevel,
  });
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
  const log = createLogger({
    name: 'ft-legacy-static',
    file: options.logFile,
    level: options.logLevel,
  });
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
  stop = gracefulStop({ server, logger: log.logger, flushLog: log.flush });
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  try {
    const address = await listen(server, options.port, options.host);
    link.listening(address.port);
  } catch (err) {
    await link.fatal((err as Error).message);
    log.flush();
    process.exit(EXIT_STATUS.failed);
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
export function main(argv: string[]): Promise<void> {
  return runCommand('ft-legacy-static', () =>
    run(parseCommandLine(buildProgram(), argv).opts<CliOptions>()),
  );
}
