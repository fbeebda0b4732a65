import { FiletrackerError, percentDecode } from '@filetracker/shared-protocol';

/** What a request path asks the legacy server for. */
export type LegacyTarget =
  | { kind: 'file'; components: string[] }
  | { kind: 'status' }
  | { kind: 'metrics' }
  | { kind: 'healthz' }
  | { kind: 'none' };

function forbidden(message: string, cause?: unknown): FiletrackerError {
  return new FiletrackerError(message, { code: 'BAD_PATH', status: 403, cause });
}

/**
 * Splits a raw (percent-encoded) request path. Empty and `.` components are dropped, as
 * lighttpd simplified them; `..`, NUL and invalid UTF-8 are refused with 403 instead of
 * being clamped at the document root (no name of a 1.x store holds them).
 */
export function parseLegacyPath(rawPath: string): LegacyTarget {
  let decoded: string;
  try {
    decoded = percentDecode(rawPath);
  } catch (err) {
    throw forbidden('Path is not valid UTF-8', err);
  }
  const components: string[] = [];
  for (const c of decoded.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') throw forbidden('Path components may not be ".."');
    if (c.includes('\0')) throw forbidden('Path may not contain NUL');
    components.push(c);
  }
  const endpoint = components.shift();
  if (endpoint === 'files' && components.length > 0) return { kind: 'file', components };
  if (components.length === 0) {
    if (endpoint === 'status') return { kind: 'status' };
    if (endpoint === 'metrics') return { kind: 'metrics' };
    if (endpoint === 'healthz') return { kind: 'healthz' };
  }
  return { kind: 'none' };
}
