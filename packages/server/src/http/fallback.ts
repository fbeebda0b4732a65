import {
  FallbackError,
  HEADER,
  LEGACY_FILES_DIR,
  encodeName,
  parseHttpDate,
} from '@filetracker/shared-protocol';

/**
 * Asks the 1.x fallback server (ft-legacy-static or lighttpd) for a name's version with a
 * HEAD: its Last-Modified is the file's mtime, the 1.x version. null when it lacks the name.
 * Unreachable: 502; no answer within `timeoutMs`: 504 — never a hang.
 */
export async function fallbackVersion(
  baseUrl: string,
  name: string,
  timeoutMs: number,
): Promise<number | null> {
  let res: Response;
  try {
    res = await fetch(`${baseUrl}/${LEGACY_FILES_DIR}${encodeName(name)}`, {
      method: 'HEAD',
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    if ((err as Error).name === 'TimeoutError') {
      throw new FallbackError(
        'FALLBACK_TIMEOUT',
        `Fallback server did not answer in ${timeoutMs} ms`,
        err,
      );
    }
    throw new FallbackError('FALLBACK_UNREACHABLE', 'Fallback server is unreachable', err);
  }
  if (res.status === 404) return null;
  const lastModified = res.headers.get(HEADER.lastModified);
  if (res.status !== 200 || lastModified === null) {
    throw new FallbackError('FALLBACK_UNREACHABLE', `Fallback server answered ${res.status}`);
  }
  try {
    return parseHttpDate(lastModified);
  } catch (err) {
    throw new FallbackError(
      'FALLBACK_UNREACHABLE',
      'Fallback server sent an unreadable Last-Modified',
      err,
    );
  }
}
