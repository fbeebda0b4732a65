import type { Logger } from 'pino';

/** Errors of a response stream that mean the client hung up: no fault of ours. */
const CLIENT_GONE = new Set(['ERR_STREAM_PREMATURE_CLOSE', 'ECONNRESET', 'EPIPE']);

/**
 * Logs an error of a response whose headers already went out (Koa's `error` event): a
 * client that hung up at debug as `client gone`, anything else as a warning with `message`.
 */
export function logResponseError(logger: Logger, err: unknown, message: string): void {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code !== undefined && CLIENT_GONE.has(code)) logger.debug({ err }, 'client gone');
  else logger.warn({ err }, message);
}
