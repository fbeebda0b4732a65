import {
  BadRequestError,
  FiletrackerError,
  NotFoundError,
  codeForStatus,
  type FiletrackerErrorCode,
} from './errors.js';
import { HEADER } from './header-names.js';
import { headerValue } from './headers.js';

/** An error answer as any HTTP client sees it: status, lowercased headers, body text. */
export interface ReceivedAnswer {
  status: number;
  statusMessage?: string | undefined;
  headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The body as text, if it was read. */
  body?: string | undefined;
}

/**
 * Reads an error answer (4xx, 5xx) back into a `FiletrackerError` (a `NotFoundError` for
 * 404, a `BadRequestError` for 400): the reason from `X-Exception`, else the body's first
 * line, the code from `X-Error-Code` when the server sends one, else from the status. The
 * inverse of `errorAnswer`, for every client (got's hook, ft-migrate's uploader).
 */
export function errorFromAnswer(answer: ReceivedAnswer, cause?: unknown): FiletrackerError {
  const { status, headers } = answer;
  const sent = headerValue(headers, HEADER.errorCode)?.trim();
  // Codes are UPPER_SNAKE; a code newer than this client still passes through.
  const code = (
    sent && /^[A-Z][A-Z0-9_]*$/.test(sent) ? sent : codeForStatus(status)
  ) as FiletrackerErrorCode;
  const body = answer.body?.trim().split('\n')[0] ?? '';
  const reason =
    headerValue(headers, HEADER.exception) ||
    body.slice(0, 200) ||
    `${status} ${answer.statusMessage ?? ''}`.trim();
  if (status === 404) return new NotFoundError(reason, code, cause);
  if (status === 400) return new BadRequestError(code, reason, cause);
  return new FiletrackerError(reason, { code, status, cause });
}
