import { open, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createLegacyListener } from './fast-path.js';
import { buildProgram, type CliOptions } from './cli-options.js';
import { createLogger, type LoggerHandle } from './logger.js';

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

/** SIGTERM/SIGINT: stop accepting, let in-flight requests finish, flush logs, exit 0. */
function trapSignals(server: Server, log: LoggerHandle): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.logger.warn({ signal }, 'second signal, exiting without waiting');
      log.flush();
      process.exit(1);
    }
    stopping = true;
    log.logger.info({ signal }, 'shutting down');
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
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', () => {
    log.reopen();
    log.logger.info('log reopened');
  });
}

async function run(options: CliOptions): Promise<void> {
  await checkRoot(options.root);
  if (options.logFile !== undefined) await checkLogFile(options.logFile);
  const log = createLogger({ logFile: options.logFile, level: options.logLevel });
  const server = createServer(createLegacyListener({ root: options.root, logger: log.logger }));
  const address = await listen(server, options.port, options.host);
  if (!(await isDirectory(join(options.root, 'files')))) {
    // Likely --root pointed at files/ itself; lighttpd would have answered 404 likewise.
    log.logger.warn({ root: options.root }, 'FT_ROOT has no files/ directory: every GET is 404');
  }
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  log.logger.info({ url: `http://${host}:${address.port}`, root: options.root }, 'listening');
  trapSignals(server, log);
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
