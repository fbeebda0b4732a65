import type { Context, Next } from 'koa';
import type { Logger } from 'pino';
import {
  BackendUnavailableError,
  FallbackError,
  errorAnswer,
  oneLine,
} from '@filetracker/shared-protocol';
import { RepeatFilter } from '../repeat-filter.js';
import { lingerAfterAnswer } from './linger.js';

/**
 * The one Koa middleware that answers errors: shared-protocol's `errorAnswer` decides the
 * status, headers and body; a 5xx is logged with its stack. An outage of a service the
 * store depends on (the database, the object store, the fallback server) fails every
 * request alike while it lasts: its stack is logged once a minute per reason, with how many
 * were held back (`repeated`); each request's own line still gives its reason.
 */
export function errorHandler(logger: Logger) {
  const repeats = new RepeatFilter();
  return async function handleErrors(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
    } catch (err) {
      const answer = errorAnswer(err);
      if (answer.logged) {
        const outage = err instanceof BackendUnavailableError || err instanceof FallbackError;
        const repeated = outage ? repeats.admit(`${err.code} ${oneLine(err.message)}`) : 0;
        if (repeated !== undefined) {
          const details = { err, method: ctx.method, path: ctx.originalUrl };
          logger.error(outage ? { ...details, repeated } : details, 'request failed');
        }
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
