import { BadRequestError } from './errors.js';

/**
 * The endpoints of protocol version 2, plus `status` (probed by sioworkers) and our
 * operational `metrics` (Prometheus) and `healthz`.
 */
export const ENDPOINTS = ['files', 'list', 'version', 'status', 'metrics', 'healthz'] as const;
export type Endpoint = (typeof ENDPOINTS)[number];

/** A request path split as the Python server splits it (PROTOCOL.md "Path grammar"). */
export interface RequestTarget {
  endpoint: Endpoint;
  /** Name components: no empty, `.` or `..` component, no `/` or NUL inside one. */
  components: string[];
  /** `/` + components joined by `/`; `/` for the root. */
  name: string;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function hexValue(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 65 && code <= 70) return code - 55;
  if (code >= 97 && code <= 102) return code - 87;
  return -1;
}

/**
 * Percent-decodes `raw` into a string, requiring the bytes to be UTF-8 (`fatal: false`:
 * U+FFFD in place of what is not). A `%` not followed by two hex digits stays as it is (as
 * Python's `unquote` leaves it).
 */
export function percentDecode(raw: string, options: { fatal?: boolean } = {}): string {
  if (!raw.includes('%')) return raw;
  const bytes = Buffer.from(raw, 'utf8');
  const out = Buffer.allocUnsafe(bytes.length);
  let n = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b === 0x25 && i + 2 < bytes.length) {
      const hi = hexValue(bytes[i + 1] ?? -1);
      const lo = hexValue(bytes[i + 2] ?? -1);
      if (hi >= 0 && lo >= 0) {
        out[n++] = hi * 16 + lo;
        i += 2;
        continue;
      }
    }
    out[n++] = b;
  }
  if (options.fatal === false) return out.subarray(0, n).toString('utf8');
  try {
    return utf8.decode(out.subarray(0, n));
  } catch (err) {
    throw new BadRequestError('BAD_PATH', 'Path is not valid UTF-8', err);
  }
}

/**
 * Splits a name (already decoded) into components: `.` dropped, `..`, NUL and empty
 * components rejected. `''` and `'/'` are the root (no components).
 */
export function splitName(name: string): string[] {
  const components: string[] = [];
  const parts = name.split('/');
  for (let i = 0; i < parts.length; i++) {
    const c = parts[i]!;
    if (c === '..') throw new BadRequestError('BAD_PATH', 'Path components may not be ".."');
    if (c.includes('\0')) throw new BadRequestError('BAD_PATH', 'Path may not contain NUL');
    if (c === '.') continue;
    if (c === '') {
      // A leading slash, and a trailing one, are how names are written; nothing else.
      if (i === 0 || i === parts.length - 1) continue;
      throw new BadRequestError('BAD_PATH', 'Path has an empty component');
    }
    components.push(c);
  }
  return components;
}

/** `/` + components joined by `/`. */
export function joinName(components: readonly string[]): string {
  return '/' + components.join('/');
}

/** Normalizes a client-side name: leading `/`, `.` dropped, `..` and NUL refused. */
export function normalizeName(name: string): string {
  return joinName(splitName(name));
}

/** Steps 2-4 of the grammar on a decoded path: its endpoint and the rest (the name). */
function splitEndpoint(decoded: string): { endpoint: string; rest: string } {
  let path = decoded;
  if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
  const last = path.lastIndexOf('//');
  if (last >= 0) path = path.slice(last + 1);
  if (path.startsWith('/')) path = path.slice(1);
  const slash = path.indexOf('/');
  return {
    endpoint: slash < 0 ? path : path.slice(0, slash),
    rest: slash < 0 ? '' : path.slice(slash + 1),
  };
}

/**
 * The endpoint a raw request path names by the grammar, whatever its name holds (`..`,
 * bytes that are not UTF-8): for a server that answers only some endpoints by this grammar
 * (ft-legacy-static's `/list`) and must pick the grammar before it parses.
 */
export function requestEndpoint(rawPath: string): string {
  return splitEndpoint(percentDecode(rawPath, { fatal: false })).endpoint;
}

/**
 * Parses the path of a request URL (without the query) by PROTOCOL.md's grammar:
 * percent-decode, drop one trailing `/`, keep what follows the last `//`, then the first
 * component is the endpoint and the rest is the name.
 */
export function parseRequestPath(rawPath: string): RequestTarget {
  // `..` is checked before anything else, as the Python server does (compat).
  const path = percentDecode(rawPath);
  if (path.split('/').includes('..')) {
    throw new BadRequestError('BAD_PATH', 'Path components may not be ".."');
  }
  const { endpoint, rest } = splitEndpoint(path);
  if (!(ENDPOINTS as readonly string[]).includes(endpoint)) {
    throw new BadRequestError('UNKNOWN_ENDPOINT', 'Unknown endpoint');
  }
  const components = endpoint === 'files' || endpoint === 'list' ? splitName(rest) : [];
  return { endpoint: endpoint as Endpoint, components, name: joinName(components) };
}

/**
 * Percent-encodes a name for a URL as the Python client does (`quote(name, safe='/')`),
 * so `?`, `#`, `%`, spaces and non-ASCII survive the trip.
 */
export function encodeName(name: string): string {
  return name
    .split('/')
    .map((c) =>
      encodeURIComponent(c).replace(
        /[!'()*]/g,
        (ch) => '%' + ch.charCodeAt(0).toString(16).toUpperCase(),
      ),
    )
    .join('/');
}
