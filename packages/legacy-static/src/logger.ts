import { pino, type Logger } from 'pino';
import { bufferedLogDestination } from '@filetracker/http-telemetry';

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

/** A pino logger writing JSON lines in batches (bufferedLogDestination). */
export function createLogger(options: LoggerOptions): LoggerHandle {
  const { destination, reopen, flush } = bufferedLogDestination({
    file: options.logFile,
    name: 'ft-legacy-static',
  });
  const logger = pino({ name: 'ft-legacy-static', level: options.level }, destination);
  return { logger, reopen, flush };
}
