import type { ServerResponse } from 'node:http';
import type { Context, Next } from 'koa';
import { answerReason } from '@filetracker/shared-protocol';
import type { Telemetry } from './metrics.js';

/** What {@link countBody} has counted so far. */
interface BodyCount {
  bytes: number;
}

/**
 * Counts the body bytes handed to `res` through `write()` and `end()`, whoever writes them
 * (Koa's respond, a piped stream, sendFile). The socket's `bytesWritten` would count the
 * status line, the headers and chunked framing too (issue 18: `/version` logged 181 bytes
 * for its 26-byte body). Writes after the response was destroyed (the client went) go
 * nowhere and are not counted.
 */
function countBody(res: ServerResponse): BodyCount {
  const count: BodyCount = { bytes: 0 };
  const add = (chunk: unknown, encoding: unknown): void => {
    if (res.destroyed) return;
    if (typeof chunk === 'string') {
      count.bytes += Buffer.byteLength(
        chunk,
        typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8',
      );
    } else if (chunk instanceof Uint8Array) {
      count.bytes += chunk.byteLength;
    }
  };
  const write = res.write as (...args: unknown[]) => boolean;
  const end = res.end as (...args: unknown[]) => ServerResponse;
  res.write = ((chunk: unknown, ...rest: unknown[]) => {
    add(chunk, rest[0]);
    return write.call(res, chunk, ...rest);
  }) as ServerResponse['write'];
  res.end = ((chunk?: unknown, ...rest: unknown[]) => {
    if (typeof chunk !== 'function') add(chunk, rest[0]);
    return end.call(res, chunk, ...rest);
  }) as ServerResponse['end'];
  return count;
}

/**
 * One log line and one metrics observation per request (method, path, status, body bytes
 * in and out, ms, and an error answer's code and reason). A HEAD, 204 or 304 answer has no
 * body whatever was written.
 */
export function requestLogger(telemetry: Telemetry) {
  return async function logRequest(ctx: Context, next: Next): Promise<void> {
    const started = process.hrtime.bigint();
    const body = countBody(ctx.res);
    const path = ctx.originalUrl;
    // Recorded once the response is closed (a streamed body is sent after the middleware
    // returns) and the middleware has returned: a client that leaves mid-request closes the
    // response at once, before the store's work fails and the error is answered (unsent,
    // see ErrorAnswers), and the line must say that answer, not Koa's default 404.
    let pending = 2;
    const record = (): void => {
      if (--pending > 0) return;
      const status = ctx.status;
      const bodyless = ctx.method === 'HEAD' || status === 204 || status === 304;
      telemetry.record({
        method: ctx.method,
        path,
        endpoint: (ctx.state as { target?: { endpoint: string } }).target?.endpoint ?? 'invalid',
        status,
        bodyBytesIn: (ctx.state as { bodyBytesIn?: number }).bodyBytesIn ?? 0,
        bodyBytesOut: bodyless ? 0 : body.bytes,
        ms: Number(process.hrtime.bigint() - started) / 1e6,
        error: answerReason(status, ctx.res),
      });
    };
    ctx.res.once('close', record);
    try {
      await next();
    } finally {
      record();
    }
  };
}
