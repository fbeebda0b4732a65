import { pino, type Logger } from 'pino';

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** A file to append JSON lines to; stdout when omitted. */
  logFile?: string;
  /** A pino level name, or `silent`. */
  level: string;
}

/** A logger with the two things its owner must do to its destination. */
export interface LoggerHandle {
  logger: Logger;
  /** Reopens the log file (after logrotate moved it); a no-op for stdout. */
  reopen(): void;
  /** Writes out what is buffered; call before exiting. */
  flush(): void;
}

/**
 * A pino logger writing JSON lines through `pino.destination`, asynchronously: at
 * thousands of requests a second, one synchronous write per request line would cost more
 * than the request (pino `docs/asynchronous.md`).
 */
export function createLogger(options: LoggerOptions): LoggerHandle {
  const destination = pino.destination({ dest: options.logFile ?? 1, sync: false });
  destination.on('error', (err: NodeJS.ErrnoException) => {
    // A log that cannot be written must not take the file server down with it.
    process.stderr.write(`ft-legacy-static: cannot write the log: ${err.code ?? err.message}\n`);
  });
  const logger = pino({ name: 'ft-legacy-static', level: options.level }, destination);
  return {
    logger,
    reopen() {
      if (options.logFile !== undefined) destination.reopen();
    },
    flush() {
      try {
        destination.flushSync();
      } catch {
        // Not open yet, or the disk is gone: nothing more can be written anyway.
      }
    },
  };
}
