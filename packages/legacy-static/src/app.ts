import { ReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
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
  sendFile,
  type SendProgress,
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
function sentBytes(ctx: Context): number {
  if (ctx.method === 'HEAD') return 0;
  const sent = ctx.state.sent as SendProgress | undefined;
  if (sent) return sent.bytesRead; // sendFile's
  if (ctx.body instanceof ReadStream) return ctx.body.bytesRead;
  return Number(ctx.res.getHeader('content-length') ?? 0) || 0;
}

/** Files above this size are sent with sendFile rather than koa-send's stream. */
const SEND_FILE_FROM = 1024 * 1024;
const READ_BYTES = 1024 * 1024;

/**
 * Sends the file with sendFile (1 MiB reads into reused buffers, the next read in flight
 * while the last is sent) in place of koa-send's stream (64 KiB reads into new buffers,
 * the disk and the socket taking turns), when the file opened again is the one koa-send
 * described (same size and Last-Modified); else leaves koa-send's stream to Koa.
 */
async function sendFileInstead(ctx: Context, original: ReadStream): Promise<void> {
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
  ctx.respond = false; // the headers koa-send set are on ctx.res already
  const progress: SendProgress = { bytesRead: 0 };
  ctx.state.sent = progress; // for the request log (sentBytes)
  await sendFile(handle, ctx.res, length, { chunkBytes: READ_BYTES, progress });
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
    if (ctx.method === 'GET' && ctx.body instanceof ReadStream && ctx.length > SEND_FILE_FROM) {
      await sendFileInstead(ctx, ctx.body);
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
      const bytes = sentBytes(ctx);
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
