import { pino, type Logger } from 'pino';
import { bufferedLogDestination } from './log-destination.js';
import { logFormat } from './log-format.js';

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** The program (`ft-server`): the `name` of every line, and of its stderr complaints. */
  name: string;
  /** A file to append JSON lines to (reopened on SIGHUP, for logrotate); stdout when absent. */
  file?: string | undefined;
  /** Create the file's directory if missing. */
  mkdir?: boolean;
  /** A pino level name, or `silent`; default `info`. */
  level?: string;
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
 * The logger of both servers: pino JSON lines to stdout or `-L FILE`, written in batches
 * (bufferedLogDestination), in one schema (logFormat): `level` by name, `time` in ISO 8601,
 * and `pid`, `hostname` and `name` on every line, so lines of several programs, processes
 * or hosts in one place can be told apart; the request lines (AccessLog) carry the same.
 */
export function createLogger(options: LoggerOptions): LoggerHandle {
  const { destination, reopen, flush } = bufferedLogDestination({
    file: options.file,
    mkdir: options.mkdir ?? false,
    name: options.name,
  });
  const logger = pino({ ...logFormat(options.name), level: options.level ?? 'info' }, destination);
  return { logger, reopen, flush };
}
