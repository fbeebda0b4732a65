import { readFile } from 'node:fs/promises';
import type { Context, Next } from 'koa';

/**
 * The operator's page (issue 17, item 8): one self-contained HTML file in the package
 * (`assets/operator-page.html`, shipped as it is: no build step), whose inline script
 * reads `/healthz`, `/status` and `/metrics` of the server that served it every few
 * seconds.
 */
const PAGE_FILE = new URL('../../assets/operator-page.html', import.meta.url);

/**
 * The page may talk to its own origin and nothing else, and load nothing: the browser
 * enforces what the page promises (no CDN, no request off the server).
 */
const PAGE_HEADERS = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; " +
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; " +
    "frame-ancestors 'none'",
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

/**
 * Whether an `Accept` header asks for HTML by name (`text/html` with a nonzero q). A
 * `*\/*` alone (curl, the Python client) does not: `/` stays `400 Unknown endpoint` for
 * everything but a browser (PROTOCOL.md, "Path grammar").
 */
export function acceptsHtml(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  return accept.split(',').some((range) => {
    const [type, ...params] = range.split(';').map((s) => s.trim().toLowerCase());
    if (type !== 'text/html') return false;
    const q = params.find((p) => p.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}

let page: Promise<Buffer> | undefined;

/** The page, read once per process (a failed read is tried again on the next request). */
function loadPage(): Promise<Buffer> {
  page ??= readFile(PAGE_FILE).catch((err: unknown) => {
    page = undefined;
    throw err;
  });
  return page;
}

/**
 * Answers `GET /` from a browser with the page; every other request goes on unchanged.
 * Mounted before the protocol's path grammar, which refuses `/`.
 */
export function operatorPage() {
  return async function servePage(ctx: Context, next: Next): Promise<void> {
    if (ctx.method !== 'GET' || ctx.path !== '/' || !acceptsHtml(ctx.get('Accept'))) {
      return next();
    }
    // Counted as its own endpoint in the request log and metrics, not as `invalid`.
    (ctx.state as { target?: unknown }).target = { endpoint: 'page', components: [], name: '/' };
    const body = await loadPage();
    ctx.status = 200;
    ctx.type = 'html';
    ctx.set(PAGE_HEADERS);
    ctx.body = body;
  };
}
