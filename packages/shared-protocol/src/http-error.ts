import { HTTPError, type RequestError } from 'got';
import {
  BadRequestError,
  FiletrackerError,
  NotFoundError,
  codeForStatus,
  type FiletrackerErrorCode,
} from './errors.js';
import { HEADER } from './header-names.js';
import { headerValue } from './headers.js';

/**
 * got `beforeError` hook: turns an `HTTPError` into a `FiletrackerError` (a `NotFoundError`
 * for 404, a `BadRequestError` for 400) with the reason from `X-Exception`, the code from
 * `X-Error-Code` when the server sends one, and the response status. Other errors
 * (connection, timeout, abort) pass unchanged.
 */
export function toFiletrackerError(error: RequestError): Error {
  if (!(error instanceof HTTPError)) return error;
  const { response } = error;
  const status = response.statusCode;
  const sent = headerValue(response.headers, HEADER.errorCode)?.trim();
  // Codes are UPPER_SNAKE; a code newer than this client still passes through.
  const code = (
    sent && /^[A-Z][A-Z0-9_]*$/.test(sent) ? sent : codeForStatus(status)
  ) as FiletrackerErrorCode;
  const body = typeof response.body === 'string' ? response.body.trim().split('\n')[0] : '';
  const reason =
    headerValue(response.headers, HEADER.exception) ||
    body?.slice(0, 200) ||
    `${status} ${response.statusMessage ?? ''}`.trim();
  if (status === 404) return new NotFoundError(reason, code, error);
  if (status === 400) return new BadRequestError(code, reason, error);
  return new FiletrackerError(reason, { code, status, cause: error });
}
