import { HTTPError, type RequestError } from 'got';
import { errorFromAnswer } from './answer-error.js';

/**
 * got `beforeError` hook: turns an `HTTPError` into a `FiletrackerError` (see
 * {@link errorFromAnswer}) with got's error as its cause. Other errors (connection,
 * timeout, abort) pass unchanged.
 */
export function toFiletrackerError(error: RequestError): Error {
  if (!(error instanceof HTTPError)) return error;
  const { response } = error;
  return errorFromAnswer(
    {
      status: response.statusCode,
      statusMessage: response.statusMessage,
      headers: response.headers,
      body: typeof response.body === 'string' ? response.body : undefined,
    },
    error,
  );
}
