import type { Context, Next } from 'koa';
import type { Logger } from 'pino';
import { FiletrackerError, HEADER } from '@filetracker/shared-protocol';
import { lingerAfterAnswer } from './linger.js';

/**
 * Maps errors to responses in one place: a FiletrackerError becomes its status with the
 * one-line reason in the body, `X-Exception` (which the Python client shows) and
 * `X-Error-Code`; anything else is our fault: 500, and the stack goes to the log.
 */
export function errorHandler(logger: Logger) {
  return async function handleErrors(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
    } catch (err) {
      let status = 500;
      let message = 'Internal server error';
      let code = 'SERVER_ERROR';
      let headers: Record<string, string> = {};
      if (isDiskFull(err)) {
        status = 507;
        code = 'INSUFFICIENT_STORAGE';
        message = 'No space left on the store';
      } else if (err instanceof FiletrackerError) {
        status = err.status;
        code = err.code;
        headers = err.headers;
        if (err.expose) message = err.message;
      }
      if (status >= 500) {
        logger.error({ err, method: ctx.method, path: ctx.originalUrl }, 'request failed');
      }
      if (ctx.headerSent || !ctx.writable) {
        ctx.req.socket.destroy();
        return;
      }
      // Refused before its body was read in full (a full disk, a bomb, a conflict).
      if (!ctx.req.complete) lingerAfterAnswer(ctx.req, ctx.res);
      ctx.status = status;
      ctx.set(headers);
      ctx.set(HEADER.exception, message);
      ctx.set(HEADER.errorCode, code);
      ctx.type = 'text/plain';
      ctx.body = message + '\n';
    }
  };
}

/**
 * A full disk can surface anywhere a write happens (a blob, a link in ft-tmp/, a LevelDB
 * log): all of it is 507, not our fault. LevelDB reports it only in its message.
 */
function isDiskFull(err: unknown): boolean {
  if (err instanceof FiletrackerError) return err.code === 'INSUFFICIENT_STORAGE';
  const e = err as { code?: string; message?: string; cause?: unknown } | undefined;
  if (e?.code === 'ENOSPC' || e?.code === 'EDQUOT') return true;
  if (typeof e?.message === 'string' && /No space left on device/i.test(e.message)) return true;
  return e?.cause !== undefined && e.cause !== err && isDiskFull(e.cause);
}
