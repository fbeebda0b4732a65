import {
  FallbackError,
  HEADER,
  LEGACY_FILES_DIR,
  encodeName,
  parseHttpDate,
} from '@filetracker/shared-protocol';

/**
 * What `/files/NAME`, `/list/DIR` and `/version` are appended to, for the fallback at
 * `url` (`--fallback-url`): the URL as given at a host's root (`http://host:8080` +
 * `/files/a`), and the path prefix with its `/` kept under one (`http://host/ft/` +
 * `/files/a`, so `/ft//files/a`), as the Python client and ours send it. The 2.x path
 * grammar keeps what follows the last `//`, so a 2.x server mounted there serves that
 * whether or not a proxy strips the prefix (`/ft/files/a` is `400 Unknown endpoint` when
 * none does); a static server over a 1.x tree maps it to the same file (`ft_root//files/a`).
 * One form for both kinds of fallback: nothing depends on which kind it is.
 */
export function fallbackRoot(url: string): string {
  const parsed = new URL(url);
  parsed.search = '';
  parsed.hash = '';
  return parsed.pathname === '/' ? parsed.href.slice(0, -1) : parsed.href.replace(/\/*$/, '/');
}

/** Where the fallback serves a name: what a read of it is redirected to (a 307). */
export function fallbackFileUrl(root: string, name: string): string {
  return `${root}/${LEGACY_FILES_DIR}${encodeName(name)}`;
}

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
 * `timeoutMs` (all hops together): 504 — never a hang. `root` is {@link fallbackRoot}'s.
 */
export async function fallbackVersion(
  root: string,
  name: string,
  timeoutMs: number,
): Promise<number | null> {
  const signal = AbortSignal.timeout(timeoutMs);
  let url = fallbackFileUrl(root, name);
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
