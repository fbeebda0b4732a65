import type { Context, Next } from 'koa';
import type { Logger } from 'pino';

/** One log line per request: method, path, status, bytes in and out, milliseconds. */
export function requestLogger(logger: Logger) {
  return async function logRequest(ctx: Context, next: Next): Promise<void> {
    const started = process.hrtime.bigint();
    const socket = ctx.req.socket;
    const writtenBefore = socket.bytesWritten;
    const readBefore = socket.bytesRead;
    const path = ctx.originalUrl;
    ctx.res.once('close', () => {
      logger.info({
        method: ctx.method,
        path,
        status: ctx.status,
        bytesIn: socket.bytesRead - readBefore,
        bytesOut: socket.bytesWritten - writtenBefore,
        ms: Number(process.hrtime.bigint() - started) / 1e6,
      });
    });
    await next();
  };
}
