import type { Context } from 'koa';
import type { Logger } from 'pino';
import { errorAnswer } from '@filetracker/shared-protocol';

/**
 * Answers a failed request as ft-server does: shared-protocol's `errorAnswer` decides the
 * status, headers (`X-Exception`, `X-Error-Code`) and body; a 5xx is logged with its stack.
 */
export function respondError(ctx: Context, err: unknown, logger: Logger): void {
  const answer = errorAnswer(err);
  if (answer.logged) {
    logger.error({ err, method: ctx.method, path: ctx.originalUrl }, 'request failed');
  }
  if (ctx.headerSent) {
    // Part of the body went out: only cutting the connection tells the client.
    ctx.req.socket.destroy();
    return;
  }
  ctx.status = answer.status;
  ctx.set(answer.headers);
  ctx.body = answer.body;
}
