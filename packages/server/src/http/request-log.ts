import type { Context, Next } from 'koa';
import type { Telemetry } from './metrics.js';

/** One log line and one metrics observation per request (method, path, status, bytes, ms). */
export function requestLogger(telemetry: Telemetry) {
  return async function logRequest(ctx: Context, next: Next): Promise<void> {
    const started = process.hrtime.bigint();
    const socket = ctx.req.socket;
    const writtenBefore = socket.bytesWritten;
    const path = ctx.originalUrl;
    ctx.res.once('close', () => {
      telemetry.record({
        method: ctx.method,
        path,
        endpoint: (ctx.state as { target?: { endpoint: string } }).target?.endpoint ?? 'invalid',
        status: ctx.status,
        bytesIn: (ctx.state as { bytesIn?: number }).bytesIn ?? 0,
        bytesOut: socket.bytesWritten - writtenBefore,
        ms: Number(process.hrtime.bigint() - started) / 1e6,
      });
    });
    await next();
  };
}
