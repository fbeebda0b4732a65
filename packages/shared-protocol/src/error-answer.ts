import { STATUS_CODES } from 'node:http';
import { FiletrackerError, codeForStatus, oneLine } from './errors.js';
import { HEADER, MEDIA_TYPE } from './header-names.js';
import { exceptionHeader } from './headers.js';

/**
 * An error as the HTTP answer that carries it: what a server writes, whatever its
 * framework. The client's `toFiletrackerError` reads it back into the same code.
 */
export interface ErrorAnswer {
  status: number;
  /** `Content-Type`, `X-Exception`, `X-Error-Code`, and the error's own (`Allow` of a 405). */
  headers: Record<string, string>;
  /** The reason again, on one line. */
  body: string;
  /** Our fault or the machine's (a 5xx): the server logs the error with its stack. */
  logged: boolean;
}

/** What a 5xx that is not exposed says: its message may name internals. */
const HIDDEN_REASON = 'Internal server error';

/**
 * Turns an error into its answer, in one place for both servers (STYLE.md, after koa's
 * `onerror`): a `FiletrackerError` gives its status, code and headers, and its reason when
 * it is exposed (4xx, and a store that refuses writes); another error carrying a 4xx
 * `status` (Koa's http-errors) gives that status and its reason; a full disk anywhere
 * below (ENOSPC, EDQUOT, LevelDB's message) is 507; anything else is 500 with a generic
 * reason.
 */
export function errorAnswer(err: unknown): ErrorAnswer {
  let status = 500;
  let code: string = 'SERVER_ERROR';
  let message = HIDDEN_REASON;
  let own: Record<string, string> = {};
  if (isDiskFull(err)) {
    status = 507;
    code = 'INSUFFICIENT_STORAGE';
    message = 'No space left on the store';
  } else if (err instanceof FiletrackerError) {
    status = err.status;
    code = err.code;
    own = err.headers;
    if (err.expose) message = err.message;
  } else {
    const carried = clientStatus(err);
    if (carried !== undefined) {
      status = carried;
      code = codeForStatus(carried);
      message = (err as Error).message || 'Bad request';
    }
  }
  message = oneLine(message);
  return {
    status,
    headers: {
      ...own,
      [HEADER.contentType]: MEDIA_TYPE.text,
      ...exceptionHeader(message),
      [HEADER.errorCode]: code,
    },
    body: message + '\n',
    logged: status >= 500,
  };
}

/** A 4xx status a foreign error carries (Koa's http-errors), else undefined. */
function clientStatus(err: unknown): number | undefined {
  const status = err instanceof Error ? (err as { status?: unknown }).status : undefined;
  return typeof status === 'number' && status >= 400 && status < 500 ? status : undefined;
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

/** The code and one-line reason an error answer gave, as its request line logs them. */
export interface AnswerReason {
  code: string;
  reason: string;
}

/**
 * What an answer with `status` told its client, read back from the headers it was sent
 * with (`res.getHeader`): for a 4xx or 5xx, the code of `X-Error-Code` and the reason of
 * `X-Exception`; an error answer without them (every one of ours has both) gets the code
 * its status stands for and the status text, as a client reads such an answer. Undefined below 400. Both servers' request lines carry it
 * (issue 17: a 400 logged no more than `"status":400`).
 */
export function answerReason(
  status: number,
  res: { getHeader(name: string): unknown },
): AnswerReason | undefined {
  if (status < 400) return undefined;
  const code = res.getHeader(HEADER.errorCode);
  const reason = res.getHeader(HEADER.exception);
  return {
    code: typeof code === 'string' && code !== '' ? code : codeForStatus(status),
    reason:
      typeof reason === 'string' && reason !== ''
        ? reason
        : (STATUS_CODES[status] ?? `HTTP ${status}`),
  };
}
