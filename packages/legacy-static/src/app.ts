import { ReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import Koa from 'koa';
import type { Context } from 'koa';
import koaStatic from 'koa-static';
import { pino, type Logger } from 'pino';
import { AccessLog, logResponseError } from '@filetracker/http-telemetry';
import {
  MethodNotAllowedError,
  NotFoundError,
  encodeName,
  formatHttpDate,
  readAhead,
  type ReadAheadStream,
} from '@filetracker/shared-protocol';
import type { WorkerLink } from './cluster.js';
import { legacyHealth, LegacyMetrics } from './metrics.js';
import { parseLegacyPath } from './paths.js';
import { respondError } from './respond-error.js';
import { RequestStats } from './request-stats.js';
import { RootGuard } from './root-guard.js';

/** Options of {@link createLegacyApp}. */
export interface LegacyAppOptions {
  /** FT_ROOT of a 1.x store; `FT_ROOT/files/{name}` is served. Must exist. */
  root: string;
  /** Gets one line per request; silent when omitted. */
  logger?: Logger;
  /** In a cluster worker: where /status and /metrics summed over all workers come from. */
  link?: WorkerLink;
}

const ALLOW = ['GET', 'HEAD'] as const;

/**
 * Body bytes a response sent: what was read from the file for a file (the client may
 * hang up early), else its Content-Length.
 */
function sentBytes(
  method: string,
  body: unknown,
  length: ReturnType<ServerResponse['getHeader']>,
): number {
  if (method === 'HEAD') return 0;
  if (body instanceof Readable && typeof (body as ReadAheadStream).bytesRead === 'number') {
    return (body as ReadAheadStream).bytesRead; // fs.ReadStream, or readAhead's
  }
  return Number(length ?? 0) || 0;
}

/** Files above this size are streamed with readAhead rather than koa-send's stream. */
const READ_AHEAD_FROM = 1024 * 1024;
const READ_BYTES = 1024 * 1024;

/**
 * Swaps koa-send's stream (64 KiB reads, the disk and the socket taking turns) for
 * readAhead (1 MiB reads, the next one in flight while the last is sent), when the file
 * opened again is the one koa-send described (same size and Last-Modified); else keeps
 * koa-send's stream.
 */
async function readAheadInstead(ctx: Context, original: ReadStream): Promise<void> {
  const length = ctx.length;
  let handle: FileHandle;
  try {
    handle = await open(String(original.path), 'r');
  } catch {
    return;
  }
  const st = await handle.stat().catch(() => undefined);
  const same =
    st?.isFile() === true &&
    st.size === length &&
    formatHttpDate(Math.floor(st.mtimeMs / 1000)) === ctx.response.get('Last-Modified');
  if (!same) {
    await handle.close();
    return;
  }
  original.destroy();
  ctx.body = readAhead(handle, READ_BYTES, length);
  ctx.length = length; // Koa drops Content-Length when a stream body is replaced
}

function notFound(): never {
  throw new NotFoundError('No such file');
}

/**
 * The read-only server of a 1.x store, in place of lighttpd (PROTOCOL.md "Migration
 * (fallback) mode"): `GET`/`HEAD /files/{name}` give the file's own bytes as
 * `application/octet-stream` with `Content-Length` and `Last-Modified` = its mtime, and
 * `GET /status` gives counters. Built apart from listening; `main()` listens.
 * Throws when `root` cannot be resolved.
 */
export function createLegacyApp(options: LegacyAppOptions): Koa {
  return buildLegacyApp(legacyContext(options));
}

/** What the Koa app and the in-memory path in front of it share. */
export interface LegacyContext {
  logger: Logger;
  guard: RootGuard;
  stats: RequestStats;
  metrics: LegacyMetrics;
  link: WorkerLink | undefined;
  /** Counts and logs one finished request. */
  record(method: string, path: string, status: number, bytes: number, ms: number): void;
}

/** Throws when `options.root` cannot be resolved. */
export function legacyContext(options: LegacyAppOptions): LegacyContext {
  const logger = options.logger ?? pino({ level: 'silent' });
  const stats = new RequestStats();
  const metrics = new LegacyMetrics();
  const log = new AccessLog(logger, 'request');
  options.link?.provide(metrics.registry, () => stats.snapshot());
  return {
    logger,
    guard: new RootGuard(options.root),
    stats,
    metrics,
    link: options.link,
    record(method, path, status, bytes, ms) {
      stats.bytesSent += bytes;
      if (log.enabled) {
        log.write(
          `"method":${AccessLog.str(method)},"path":${AccessLog.str(path)},` +
            `"status":${status},"bytes":${bytes},"ms":${ms}`,
        );
      }
      metrics.observe(method, status, bytes, ms);
    },
  };
}

/** The Koa app over a context shared with {@link createLegacyListener}. */
export function buildLegacyApp(context: LegacyContext): Koa {
  const { logger, guard, stats, metrics, link } = context;
  const serve = koaStatic(guard.realRoot, {
    // koa-send's defaults do not fit a 1.x store. It would answer `x` with a sibling
    // `x.gz`/`x.br` (test packages hold both `foo.in` and `foo.in.gz`), hide dotfiles
    // (lighttpd serves them) and serve index files of directories (a directory is 404).
    gzip: false,
    brotli: false,
    hidden: true,
    index: false,
    format: false,
    extensions: false,
    maxage: 0,
    setHeaders(res, _path, fileStats) {
      // Every file is opaque bytes, whatever its extension, as lighttpd was set up.
      res.setHeader('Content-Type', 'application/octet-stream');
      res.setHeader('Last-Modified', formatHttpDate(Math.floor(fileStats.mtimeMs / 1000)));
    },
  });

  async function route(ctx: Context): Promise<void> {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      throw new MethodNotAllowedError(ctx.method, ALLOW);
    }
    const target = parseLegacyPath(ctx.path);
    if (target.kind === 'status') {
      ctx.body = link ? await link.status() : stats.snapshot();
      return;
    }
    if (target.kind === 'metrics') {
      ctx.body = link ? await link.metrics() : await metrics.registry.metrics();
      ctx.set('Content-Type', metrics.registry.contentType);
      return;
    }
    if (target.kind === 'healthz') {
      const problem = await legacyHealth(guard.realRoot);
      ctx.status = problem === undefined ? 200 : 503;
      ctx.body = (problem ?? 'ok') + '\n';
      if (problem !== undefined) ctx.set('X-Exception', problem);
      return;
    }
    if (target.kind === 'none') notFound();
    if ((await guard.resolve(target.components)) === undefined) notFound();
    // koa-send decodes the path once more with decodeURIComponent: hand it the name
    // re-encoded, so `%` in names and `%2F` or `.` in the request are read as we read them.
    const canonical = '/files/' + encodeName(target.components.join('/'));
    if (ctx.path !== canonical) ctx.path = canonical;
    await serve(ctx, notFound);
    if (ctx.method === 'GET' && ctx.body instanceof ReadStream && ctx.length > READ_AHEAD_FROM) {
      await readAheadInstead(ctx, ctx.body);
    }
  }

  const app = new Koa();
  // Errors after the headers went out land here. A client that hangs up once it has
  // Content-Length bytes often does so before our end(): that is no failure.
  app.on('error', (err: unknown) => logResponseError(logger, err, 'response failed'));
  app.use(async (ctx) => {
    const startMs = performance.now();
    const { method, path, res } = ctx;
    stats.requests++;
    res.once('close', () => {
      const bytes = sentBytes(method, ctx.body, res.getHeader('content-length'));
      const ms = Math.round((performance.now() - startMs) * 100) / 100;
      context.record(method, path, res.statusCode, bytes, ms);
    });
    try {
      await route(ctx);
    } catch (err) {
      respondError(ctx, err, logger);
    }
  });
  return app;
}
