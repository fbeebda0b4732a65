import { FallbackError, HEADER, parseHttpDate } from '@filetracker/shared-protocol';
import { fileUrl } from '@filetracker/shared-protocol/wire';

/**
 * The redirects followed by {@link fallbackVersion}: a 2.x fallback that is itself in
 * migration mode answers a name it lacks with a 307 to its own fallback, as it does the
 * clients, and the name's version is there.
 */
const MAX_REDIRECTS = 5;

/**
 * Asks the fallback for a name's version with a HEAD: a 2.x server's `Last-Modified` is the
 * version, a static server's over a 1.x tree (ft-legacy-static, lighttpd) the file's mtime,
 * the 1.x version. null when it lacks the name. A 307 or 308 (a 2.x fallback in migration
 * mode) is followed, up to {@link MAX_REDIRECTS}; any other answer, a 301 of a static
 * server for a directory included, is a 502. Unreachable: 502; no answer within
 * `timeoutMs` (all hops together): 504 — never a hang. `root` is the fallback URL's
 * `requestRoot` (see createApp).
 */
export async function fallbackVersion(
  root: string,
  name: string,
  timeoutMs: number,
): Promise<number | null> {
  const signal = AbortSignal.timeout(timeoutMs);
  let url = fileUrl(root, name);
  let res: Response;
  for (let hops = 0; ; hops++) {
    try {
      res = await fetch(url, { method: 'HEAD', redirect: 'manual', signal });
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
    const location = res.headers.get(HEADER.location);
    if ((res.status !== 307 && res.status !== 308) || location === null) break;
    if (hops === MAX_REDIRECTS) {
      throw new FallbackError(
        'FALLBACK_UNREACHABLE',
        `Fallback server redirected more than ${MAX_REDIRECTS} times`,
      );
    }
    url = new URL(location, url).href;
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
