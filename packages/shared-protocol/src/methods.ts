import { MethodNotAllowedError } from './errors.js';
import type { Endpoint } from './path.js';

/** What a read-only endpoint answers. */
const READ_METHODS = ['GET', 'HEAD'] as const;

/** The methods each endpoint of a 2.x server answers; anything else is 405 with `Allow`. */
export const ENDPOINT_METHODS: Readonly<Record<Endpoint, readonly string[]>> = {
  files: [...READ_METHODS, 'PUT', 'DELETE'],
  list: READ_METHODS,
  version: READ_METHODS,
  status: READ_METHODS,
  metrics: READ_METHODS,
  healthz: READ_METHODS,
};

/** The methods a 1.x store's server answers (read-only, as lighttpd served it). */
export const LEGACY_METHODS: readonly string[] = READ_METHODS;

/** Throws a {@link MethodNotAllowedError} (405, `Allow: {allowed}`) unless `method` is allowed. */
export function checkMethod(method: string, allowed: readonly string[]): void {
  if (!allowed.includes(method)) throw new MethodNotAllowedError(method, allowed);
}
