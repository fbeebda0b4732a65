import type { Context, Next } from 'koa';
import type { Logger } from 'pino';
import { errorAnswer } from '@filetracker/shared-protocol';
import { lingerAfterAnswer } from './linger.js';

/**
 * The one Koa middleware that answers errors: shared-protocol's `errorAnswer` decides the
 * status, headers and body; a 5xx is logged with its stack.
 */
export function errorHandler(logger: Logger) {
  return async function handleErrors(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
    } catch (err) {
      const answer = errorAnswer(err);
      if (answer.logged) {
        logger.error({ err, method: ctx.method, path: ctx.originalUrl }, 'request failed');
      }
      if (ctx.headerSent || !ctx.writable) {
        ctx.req.socket.destroy();
        return;
      }
      // Refused before its body was read in full (a full disk, a bomb, a conflict).
      if (!ctx.req.complete) lingerAfterAnswer(ctx.req, ctx.res);
      ctx.status = answer.status;
      ctx.set(answer.headers);
      ctx.body = answer.body;
    }
  };
}
