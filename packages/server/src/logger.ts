import { pino, type Logger } from 'pino';
import { bufferedLogDestination } from '@filetracker/http-telemetry';

export interface LoggerOptions {
  /** A file to append to (reopened on SIGHUP, for logrotate); stdout when absent. */
  file?: string | undefined;
  level?: string;
}

/** pino: JSON lines to stdout, or to `-L FILE`, written in batches (bufferedLogDestination). */
export function createLogger(options: LoggerOptions): {
  logger: Logger;
  reopen(): void;
  flush(): void;
} {
  const { destination, reopen, flush } = bufferedLogDestination({
    file: options.file,
    mkdir: options.file !== undefined,
    name: 'ft-server',
  });
  const logger = pino({ level: options.level ?? 'info', base: { pid: process.pid } }, destination);
  return { logger, reopen, flush };
}
