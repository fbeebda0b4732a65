import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type Koa from 'koa';
import { pino, type Logger } from 'pino';
import { acceptsGzip, parseRequestPath } from '@filetracker/shared-protocol';
import type { Store } from '../store/store.js';
import { fileHeaders, etagOf, matchesEtag } from './file-headers.js';

/**
 * The request listener: a lean path for the hot case, everything else through Koa.
 *
 * Judges fetch thousands of small test files; measured here, Koa's layers cost a third of
 * the throughput of bare node:http on such requests. A GET/HEAD of a file whose entry and
 * gzip are both in memory, from a client that accepts gzip (every Python client does), is
 * answered right here with the same headers as the Koa route; any other request, and any
 * doubt (a miss, a path the grammar rejects), goes to Koa unchanged.
 */
export function createRequestListener(
  app: Koa,
  store: Store,
  logger: Logger = pino({ level: 'silent' }),
): RequestListener {
  const koa = app.callback();
  return function listener(req: IncomingMessage, res: ServerResponse): void {
    if ((req.method === 'GET' || req.method === 'HEAD') && serveFromMemory(req, res, store, logger))
      return;
    void koa(req, res);
  };
}

function serveFromMemory(
  req: IncomingMessage,
  res: ServerResponse,
  store: Store,
  logger: Logger,
): boolean {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  let target;
  try {
    target = parseRequestPath(q < 0 ? url : url.slice(0, q));
  } catch {
    return false;
  }
  if (target.endpoint !== 'files' || target.components.length === 0) return false;
  if (!acceptsGzip(req.headers['accept-encoding'])) return false;
  const hit = store.peek(target.name);
  if (!hit) return false;
  const started = process.hrtime.bigint();
  const headers = fileHeaders(hit.entry);
  let status = 200;
  if (matchesEtag(req.headers['if-none-match'], etagOf(hit.entry))) {
    status = 304;
    res.writeHead(304, headers);
    res.end();
  } else {
    res.writeHead(200, {
      ...headers,
      'Content-Type': 'application/octet-stream',
      'Content-Encoding': 'gzip',
      'Content-Length': String(hit.buffer.length),
    });
    res.end(req.method === 'HEAD' ? undefined : hit.buffer);
  }
  logger.info({
    method: req.method,
    path: url,
    status,
    bytesOut: req.method === 'HEAD' || status === 304 ? 0 : hit.buffer.length,
    ms: Number(process.hrtime.bigint() - started) / 1e6,
  });
  return true;
}
