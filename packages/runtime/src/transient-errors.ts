/**
 * Error codes of a request after which the same request may well succeed: the connection
 * was refused, reset, aborted or timed out (got's `TimeoutError` is `ETIMEDOUT`), the
 * network or the name server is briefly away, no local port was free, or the answer was
 * cut off mid-way. The client's retries (GET, HEAD, DELETE) and ft-migrate's (every file)
 * both go by this one list.
 */
export const TRANSIENT_NETWORK_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRINUSE',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/** Whether `err` carries one of {@link TRANSIENT_NETWORK_ERROR_CODES}. */
export function isTransientNetworkError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && TRANSIENT_NETWORK_ERROR_CODES.has(code);
}
