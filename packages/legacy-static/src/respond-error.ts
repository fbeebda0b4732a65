import type { Context } from 'koa';
import type { Logger } from 'pino';
import { FiletrackerError, HEADER, oneLine } from '@filetracker/shared-protocol';

/** A status an error carries (ours, or Koa's http-errors), when it is a 4xx. */
function clientStatus(err: unknown): number | undefined {
  const status = err instanceof Error ? (err as { status?: unknown }).status : undefined;
  return typeof status === 'number' && status >= 400 && status < 500 ? status : undefined;
}

/**
 * Answers a failed request as every filetracker error is answered: text/plain, the
 * one-line reason in the body and in `X-Exception`. Only 4xx reasons are shown; anything
 * else is a 500 with the stack logged.
 */
export function respondError(ctx: Context, err: unknown, logger: Logger): void {
  const status = clientStatus(err);
  let message = 'Internal server error';
  if (status === undefined) {
    logger.error({ err, method: ctx.method, path: ctx.path }, 'request failed');
  }
  if (ctx.headerSent) {
    // Part of the body went out: only cutting the connection tells the client.
    ctx.req.socket.destroy();
    return;
  }
  if (status === undefined) {
    ctx.status = 500;
  } else {
    message = oneLine((err as Error).message || 'Bad request');
    ctx.status = status;
    if (err instanceof FiletrackerError) ctx.set(err.headers);
  }
  ctx.set(HEADER.exception, message);
  ctx.type = 'text/plain';
  ctx.body = message;
}
