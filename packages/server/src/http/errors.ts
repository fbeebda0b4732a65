import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Context, Next } from 'koa';
import type { Logger } from 'pino';
import {
  BackendUnavailableError,
  FallbackError,
  errorAnswer,
  oneLine,
  type ErrorAnswer,
} from '@filetracker/shared-protocol';
import { RepeatFilter } from '../repeat-filter.js';
import { lingerAfterAnswer } from './linger.js';

/**
 * How a request that failed is answered, in one place for the Koa app and the PUT fast path
 * (put-first.ts): shared-protocol's `errorAnswer` decides the status, headers and body; a
 * 5xx is logged with its stack. An outage of a service the store depends on (the database,
 * the object store, the fallback server) fails every request alike while it lasts: its
 * stack is logged once a minute per reason, with how many were held back (`repeated`);
 * each request's own line still gives its reason.
 */
export class ErrorAnswers {
  readonly #logger: Logger;
  readonly #repeats = new RepeatFilter();

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /**
   * Logs `err` if it is ours and returns the answer to send, with the connection set to
   * close after it when the body was not read in full (see lingerAfterAnswer). Undefined
   * when no answer can go out (headers sent, or the client gone): the socket is destroyed.
   * A client gone before any answer leaves the response with the answer's status and
   * headers, never sent, so that the request's log line and metrics say what it would have
   * been answered (a PUT abandoned mid-body: 400 INCOMPLETE_BODY), on either path.
   */
  answer(
    err: unknown,
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    url: string,
  ): ErrorAnswer | undefined {
    const answer = errorAnswer(err);
    if (answer.logged) {
      const outage = err instanceof BackendUnavailableError || err instanceof FallbackError;
      const repeated = outage ? this.#repeats.admit(`${err.code} ${oneLine(err.message)}`) : 0;
      if (repeated !== undefined) {
        const details = { err, method, path: url };
        this.#logger.error(outage ? { ...details, repeated } : details, 'request failed');
      }
    }
    if (res.headersSent || !writable(res)) {
      if (!res.headersSent) {
        res.statusCode = answer.status;
        for (const [header, value] of Object.entries(answer.headers)) res.setHeader(header, value);
      }
      req.socket.destroy();
      return undefined;
    }
    // Refused before its body was read in full (a full disk, a bomb, a conflict).
    if (!req.complete) lingerAfterAnswer(req, res);
    return answer;
  }
}

/** Whether an answer can still be written (as Koa's `ctx.writable`). */
function writable(res: ServerResponse): boolean {
  if (res.writableEnded) return false;
  return !res.socket || res.socket.writable;
}

/** The one Koa middleware that answers errors, through {@link ErrorAnswers}. */
export function errorHandler(answers: ErrorAnswers) {
  return async function handleErrors(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
    } catch (err) {
      const answer = answers.answer(err, ctx.req, ctx.res, ctx.method, ctx.originalUrl);
      if (answer === undefined) return;
      ctx.status = answer.status;
      ctx.set(answer.headers);
      ctx.body = answer.body;
    }
  };
}
