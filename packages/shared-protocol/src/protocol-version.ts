import { FiletrackerError } from './errors.js';

/** The protocol version this project speaks, and the only one it answers to. */
export const PROTOCOL_VERSION = 2;

/**
 * The body of `GET /version`. compat, critical: exactly this text, space included; a miss
 * makes the Python client drop to protocol 1, after which PUT, DELETE and list all break.
 */
export const VERSION_BODY = `{"protocol_versions": [${PROTOCOL_VERSION}]}`;

/**
 * The protocol versions a `GET /version` body lists; a `PROTOCOL_ERROR` (with `status`,
 * the answer's) when it is not JSON or lists none.
 */
export function parseVersionBody(body: string, status: number): number[] {
  let versions: unknown;
  try {
    versions = (JSON.parse(body) as { protocol_versions?: unknown }).protocol_versions;
  } catch (err) {
    throw new FiletrackerError('GET /version did not answer JSON', {
      code: 'PROTOCOL_ERROR',
      status,
      cause: err,
    });
  }
  if (!Array.isArray(versions) || !versions.every((v) => Number.isInteger(v))) {
    throw new FiletrackerError('GET /version did not list protocol_versions', {
      code: 'PROTOCOL_ERROR',
      status,
    });
  }
  return versions as number[];
}
