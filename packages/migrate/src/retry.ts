import { isTransientNetworkError } from '@filetracker/runtime';
import { FiletrackerError } from '@filetracker/shared-protocol/wire';

/**
 * Whether a failed request is worth retrying: connection failures, timeouts and 5xx (and
 * 408/429) answers. Other 4xx answers are the request's fault and would fail again.
 */
export function isTransient(err: unknown): boolean {
  if (err instanceof FiletrackerError) {
    return err.status >= 500 || err.status === 408 || err.status === 429;
  }
  return isTransientNetworkError(err);
}

/** The code to report for an error: the protocol code, an errno code, or `ERROR`. */
export function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code !== '' ? code : 'ERROR';
}

/** One line saying why a request or a file operation failed. */
export function describeError(err: unknown): string {
  if (err instanceof FiletrackerError) return `HTTP ${err.status}: ${err.message}`;
  if (err instanceof Error) return err.message.split('\n')[0] ?? err.name;
  return String(err);
}

/**
 * The wait before retry number `attempt` (0-based): `baseMs`, doubled each time, capped at
 * 10 s, with ±20% jitter so that uploads failed together do not retry in lockstep.
 */
export function backoffMs(attempt: number, baseMs: number): number {
  const ms = Math.min(baseMs * 2 ** attempt, 10_000);
  return Math.round(ms * (0.8 + Math.random() * 0.4));
}
