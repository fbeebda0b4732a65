import path from 'node:path';
import { FiletrackerError } from './errors.js';
import { parseRequestPath, percentDecode, requestEndpoint } from './path.js';

/**
 * A 1.x store is a plain tree: the file named `/a/b` is `ft_root/files/a/b`, served by a
 * static server with document root `ft_root` as `GET /files/a/b` (PROTOCOL.md "Migration
 * (fallback) mode"). This module is that grammar, for ft-legacy-static (which serves such
 * a tree) and ft-migrate (which names its files).
 */

/** The directory of `ft_root` that holds the files. */
export const LEGACY_FILES_DIR = 'files';

/** What a request path asks a 1.x store's server (ft-legacy-static) for. */
export type LegacyTarget =
  | { kind: 'file'; components: string[] }
  | { kind: 'list'; components: string[]; name: string }
  | { kind: 'status' }
  | { kind: 'metrics' }
  | { kind: 'healthz' }
  | { kind: 'none' };

function forbidden(message: string, cause?: unknown): FiletrackerError {
  return new FiletrackerError(message, { code: 'BAD_PATH', status: 403, cause });
}

/**
 * Splits a raw (percent-encoded) request path. A file's path as lighttpd did: empty and `.`
 * components dropped; `..`, NUL and invalid UTF-8 refused with 403 instead of being
 * clamped at the document root (no name of a 1.x store holds them). Any other path whose
 * endpoint is `list` by the 2.x grammar is a listing, parsed as ft-server parses it (so a
 * bad one is the same 400), so ft-server in migration mode can ask for the same listing
 * it answers.
 */
export function parseLegacyPath(rawPath: string): LegacyTarget {
  let target: LegacyTarget | undefined;
  let refused: unknown;
  try {
    target = legacyTarget(rawPath);
  } catch (err) {
    refused = err;
  }
  if (target?.kind === 'file') return target;
  if (requestEndpoint(rawPath) === 'list') {
    const { components, name } = parseRequestPath(rawPath);
    return { kind: 'list', components, name };
  }
  if (target === undefined) throw refused;
  return target;
}

function legacyTarget(rawPath: string): LegacyTarget {
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
  if (endpoint === LEGACY_FILES_DIR && components.length > 0) return { kind: 'file', components };
  if (components.length === 0) {
    if (endpoint === 'status') return { kind: 'status' };
    if (endpoint === 'metrics') return { kind: 'metrics' };
    if (endpoint === 'healthz') return { kind: 'healthz' };
  }
  return { kind: 'none' };
}

/**
 * The version of a 1.x file: the whole seconds of its mtime (`mtimeMs` of its stat), as
 * the Python migrator sent it. What ft-migrate uploads, what ft-legacy-static answers as
 * `Last-Modified` and lists by: one rule, here.
 */
export function legacyVersion(mtimeMs: number): number {
  return Math.floor(mtimeMs / 1000);
}

/** `ft_root/files`: where the file of a name's components lies is this joined with them. */
export function legacyFilesDir(root: string): string {
  return path.join(root, LEGACY_FILES_DIR);
}

/**
 * The name of the 1.x file (or tree) at `file` in a store whose files lie under `root`
 * (`ft_root/files`, as the Python filetracker-migrate counts it): `/` + the path relative
 * to `root`, `/`-separated; `''` when they are the same. A `TypeError` when `file` is not
 * inside `root`.
 */
export function legacyName(file: string, root: string): string {
  const relative = path.relative(root, file);
  if (relative === '') return '';
  if (relative === '..' || relative.startsWith(`..${path.sep}`) || path.isAbsolute(relative)) {
    throw new TypeError(`${file} is not inside ${root}`);
  }
  return `/${relative.split(path.sep).join('/')}`;
}
