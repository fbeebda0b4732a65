import { Readable } from 'node:stream';
import Koa from 'koa';
import type { Context } from 'koa';
import { pino, type Logger } from 'pino';
import { AccessLog, logResponseError } from '@filetracker/http-telemetry';
import {
  BackendUnavailableError,
  HEADER,
  LAST_MODIFIED_PARAM,
  LEGACY_METHODS,
  type AnswerReason,
  MEDIA_TYPE,
  NotFoundError,
  answerReason,
  type ErrorAnswer,
  checkMethod,
  errorAnswer,
  formatHttpDate,
  legacyVersion,
  listCutoff,
  parseLegacyPath,
} from '@filetracker/shared-protocol';
import { sendFile, type SendProgress } from '@filetracker/runtime';
import type { WorkerLink } from './cluster.js';
import { openLegacyListing } from './list.js';
import { LegacyMetrics } from './metrics.js';
import { ReadProbe } from './read-probe.js';
import { respondError } from './respond-error.js';
import { RequestStats, type StatusSnapshot } from './request-stats.js';
import { RootGuard, type OpenedFile } from './root-guard.js';

/** Options of {@link createLegacyApp}. */
export interface LegacyAppOptions {
  /** FT_ROOT of a 1.x store; `FT_ROOT/files/{name}` is served. Must exist. */
  root: string;
  /** Gets one line per request; silent when omitted. */
  logger?: Logger;
  /** In a cluster worker: where /status and /metrics summed over all workers come from. */
  link?: WorkerLink;
}

/**
 * Body bytes a response sent: what was read from the file for a file (the client may
 * hang up early), else its Content-Length.
 */
function sentBytes(ctx: Context): number {
  if (ctx.method === 'HEAD') return 0;
  const sent = ctx.state.sent as SendProgress | undefined;
  if (sent) return sent.bytesRead; // sendFile's
  return Number(ctx.res.getHeader(HEADER.contentLength) ?? 0) || 0;
}

/**
 * Reads per chunk: 1 MiB for files above 1 MiB (read ahead while the last chunk is sent;
 * koa-send's 64 KiB stream served them at a fraction of the speed), 64 KiB below, which
 * keeps to the memory koa-send used for them. Two sizes only: sendFile keeps spare
 * buffers by size.
 */
const LARGE_FILE_BYTES = 1024 * 1024;
const LARGE_READ_BYTES = 1024 * 1024;
const SMALL_READ_BYTES = 64 * 1024;

/**
 * Answers with the opened file, as lighttpd was set up: opaque bytes whatever the
 * extension, `Last-Modified` its mtime (whole seconds), the body (none for HEAD) read
 * from the descriptor that was checked, never by name again.
 */
async function sendOpened(ctx: Context, { handle, stats }: OpenedFile): Promise<void> {
  ctx.status = 200;
  ctx.set({
    [HEADER.contentType]: MEDIA_TYPE.file,
    [HEADER.contentLength]: String(stats.size),
    [HEADER.lastModified]: formatHttpDate(legacyVersion(stats.mtimeMs)),
  });
  ctx.respond = false; // the headers are on ctx.res
  if (ctx.method === 'HEAD') {
    await handle.close();
    ctx.res.end();
    return;
  }
  const progress: SendProgress = { bytesRead: 0 };
  ctx.state.sent = progress; // for the request log (sentBytes)
  const chunkBytes = stats.size > LARGE_FILE_BYTES ? LARGE_READ_BYTES : SMALL_READ_BYTES;
  await sendFile(handle, ctx.res, stats.size, { chunkBytes, progress });
}

function notFound(): never {
  throw new NotFoundError('No such file');
}

/**
 * The read-only server of a 1.x store, in place of lighttpd (PROTOCOL.md "Migration
 * (fallback) mode"): `GET`/`HEAD /files/{name}` give the file's own bytes as
 * `application/octet-stream` with `Content-Length` and `Last-Modified` = its mtime (only
 * regular files: anything else is 404), `GET /list/{dir}` lists the tree as ft-server
 * lists its store (so ft-server in migration mode can merge it into its own listing), and
 * `GET /status` gives counters, with a 503 when files cannot be read. Built apart from
 * listening; `main()` listens.
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
  probe: ReadProbe;
  link: WorkerLink | undefined;
  /** This process's /status: its counters, and a problem when the tree cannot be read. */
  localStatus(): Promise<StatusSnapshot>;
  /**
   * Counts and logs one finished request: `path` the request target as sent, `bytes` the
   * body bytes sent, `error` what an error answer gave (answerReason).
   */
  record(
    method: string,
    path: string,
    status: number,
    bytes: number,
    ms: number,
    error?: AnswerReason,
  ): void;
}

/** Throws when `options.root` cannot be resolved. */
export function legacyContext(options: LegacyAppOptions): LegacyContext {
  const logger = options.logger ?? pino({ level: 'silent' });
  const stats = new RequestStats();
  const metrics = new LegacyMetrics();
  const log = new AccessLog(logger);
  const guard = new RootGuard(options.root);
  const probe = new ReadProbe(guard.realRoot);
  const localStatus = async (): Promise<StatusSnapshot> => {
    const problem = await probe.check();
    return problem === undefined ? stats.snapshot() : { ...stats.snapshot(), problem };
  };
  options.link?.provide(metrics.registry, localStatus);
  return {
    logger,
    guard,
    stats,
    metrics,
    probe,
    link: options.link,
    localStatus,
    record(method, path, status, bytes, ms, error) {
      stats.bytesSent += bytes;
      // Nothing is uploaded to a read-only server: bodyBytesIn is 0.
      if (log.enabled) log.request(method, path, status, 0, bytes, ms, error);
      metrics.observe(method, status, bytes, ms);
    },
  };
}

/**
 * The 503 of /healthz and /status while `FT_ROOT/files` cannot be read in time (or a worker
 * does not answer), answered as every error is: BACKEND_UNAVAILABLE, the tree being the
 * service this server is made of, back by itself once it can be read.
 */
function unreadable(problem: string): ErrorAnswer {
  return errorAnswer(new BackendUnavailableError(problem));
}

/** The Koa app over a context shared with {@link createLegacyListener}. */
export function buildLegacyApp(context: LegacyContext): Koa {
  const { logger, guard, stats, metrics, probe, link } = context;
  async function route(ctx: Context): Promise<void> {
    checkMethod(ctx.method, LEGACY_METHODS);
    const target = parseLegacyPath(ctx.path);
    if (target.kind === 'status') {
      const snapshot = link ? await link.status() : await context.localStatus();
      // Still the counters, but not a 200: a monitor probing /status must see that files
      // cannot be served (issue 16: it said 200 while every file read hung).
      ctx.body = snapshot;
      if (snapshot.problem !== undefined) {
        // The counters stay the body (JSON): only the status and the error's two headers.
        const answer = unreadable(snapshot.problem);
        ctx.status = answer.status;
        ctx.set(HEADER.exception, answer.headers[HEADER.exception]!);
        ctx.set(HEADER.errorCode, answer.headers[HEADER.errorCode]!);
      }
      return;
    }
    if (target.kind === 'metrics') {
      ctx.body = link ? await link.metrics() : await metrics.registry.metrics();
      ctx.set(HEADER.contentType, metrics.registry.contentType);
      return;
    }
    if (target.kind === 'healthz') {
      const problem = await probe.check();
      if (problem === undefined) {
        ctx.body = 'ok\n';
        return;
      }
      const answer = unreadable(problem);
      ctx.status = answer.status;
      ctx.set(answer.headers);
      ctx.body = answer.body;
      return;
    }
    if (target.kind === 'list') {
      const cutoff = listCutoff(ctx.query[LAST_MODIFIED_PARAM]);
      const progress: SendProgress = { bytesRead: 0 };
      const lines = await openLegacyListing(guard, target.components, cutoff, progress);
      ctx.type = MEDIA_TYPE.text;
      if (ctx.method === 'HEAD') {
        ctx.body = '';
        return;
      }
      ctx.state.sent = progress; // for the request log (sentBytes)
      ctx.body = Readable.from(lines);
      return;
    }
    if (target.kind === 'none') notFound();
    const real = await guard.resolve(target.components);
    // A directory, FIFO, socket or device is absent too (ft-migrate skips them as well).
    const file = real === undefined ? undefined : await guard.open(real);
    if (file === undefined) notFound();
    await sendOpened(ctx, file);
  }

  const app = new Koa();
  // Errors after the headers went out land here. A client that hangs up once it has
  // Content-Length bytes often does so before our end(): that is no failure.
  app.on('error', (err: unknown) => logResponseError(logger, err, 'response stream failed'));
  app.use(async (ctx) => {
    const startMs = performance.now();
    const { method, originalUrl, res } = ctx;
    stats.requests++;
    res.once('close', () => {
      context.record(
        method,
        originalUrl,
        res.statusCode,
        sentBytes(ctx),
        performance.now() - startMs,
        answerReason(res.statusCode, res),
      );
    });
    try {
      await route(ctx);
    } catch (err) {
      respondError(ctx, err, logger);
    }
  });
  return app;
}
