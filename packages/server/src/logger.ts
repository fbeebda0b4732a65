import { pino, type Logger } from 'pino';

export interface LoggerOptions {
  /** A file to append to (reopened on SIGHUP, for logrotate); stdout when absent. */
  file?: string | undefined;
  level?: string;
}

/** pino: JSON lines to stdout, or to `-L FILE` through pino.destination. */
export function createLogger(options: LoggerOptions): {
  logger: Logger;
  reopen(): void;
  flush(): void;
} {
  const destination = pino.destination({
    dest: options.file ?? 1,
    sync: false,
    mkdir: options.file !== undefined,
  });
  const logger = pino({ level: options.level ?? 'info', base: { pid: process.pid } }, destination);
  return {
    logger,
    reopen: () => destination.reopen(),
    flush: () => destination.flushSync(),
  };
}
