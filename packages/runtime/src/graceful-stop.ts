import type { Server } from 'node:http';

/** The logging a stop needs (a pino logger has it). */
export interface StopLogger {
  info(details: object, message: string): void;
  info(message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
}

/** Options of {@link gracefulStop}. */
export interface GracefulStopOptions {
  server: Server;
  logger: StopLogger;
  /** Writes out buffered log lines; called right before the process exits. */
  flushLog(): void;
  /** Closes what the server used (a store), once the last request is answered. */
  release?: () => Promise<void>;
}

/**
 * How both servers stop (STYLE.md "Resource lifecycle"): `stop(why)` stops accepting,
 * lets the requests in flight finish, closes each keep-alive connection as soon as it is
 * idle (they would hold `server.close()` open until their timeout), then releases the
 * server's resources, flushes the log and exits 0 (1 if the release failed). Later calls
 * are ignored, except `stop(why, true)`: exit 1 at once, for a second signal or an owner
 * that cannot wait.
 */
export function gracefulStop(options: GracefulStopOptions): (why: string, now?: boolean) => void {
  const { server, logger, flushLog } = options;
  let stopping = false;
  const exit = (code: number): never => {
    flushLog();
    process.exit(code);
  };
  return (why, now = false) => {
    if (now) {
      logger.warn({ why }, 'exiting without waiting for requests in flight');
      exit(1);
    }
    if (stopping) return;
    stopping = true;
    logger.info({ why }, 'stopping: finishing requests in flight');
    server.close(() => {
      (options.release?.() ?? Promise.resolve()).then(
        () => {
          logger.info('stopped');
          exit(0);
        },
        (err: unknown) => {
          logger.error({ err }, 'closing after the last request failed');
          exit(1);
        },
      );
    });
    // Connections that finish a request during the stop become idle: drop them at once
    // rather than after the keep-alive timeout.
    server.closeIdleConnections();
    setInterval(() => server.closeIdleConnections(), 100).unref();
  };
}
