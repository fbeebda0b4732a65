import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import Koa, { type Context, type Next } from 'koa';
import Router from '@koa/router';
import { pino, type Logger } from 'pino';
import { logResponseError } from '@filetracker/http-telemetry';
import {
  ENDPOINT_METHODS,
  FallbackError,
  HEADER,
  LAST_MODIFIED_PARAM,
  MEDIA_TYPE,
  NotFoundError,
  STATUS_FIELD,
  VERSION_BODY,
  acceptsGzip,
  checkMethod,
  errorAnswer,
  listCutoff,
  parseRequestPath,
  type RequestTarget,
} from '@filetracker/shared-protocol';
import { fileUrl, requestRoot } from '@filetracker/shared-protocol/wire';
import { readAhead, sendFile } from '@filetracker/runtime';
import { MigrationMode } from '../store/migration.js';
import type { OpenedFile, Store } from '../store/store-api.js';
import { failedLooks } from './failed-looks.js';
import { ErrorAnswers, errorHandler } from './errors.js';
import { putAnswerHeaders, putRequestOf, requiredVersion } from './put-first.js';
import { fallbackVersion } from './fallback.js';
import { FallbackProbe } from './fallback-probe.js';
import { MergedListing, type Listing } from './merged-list.js';
import { operatorPage } from './page.js';
import { etagOf, fileHeaders, matchesEtag } from './file-headers.js';
import { requestLogger } from './request-log.js';
import { Telemetry } from './metrics.js';
import type { WorkerSums } from './worker-sums.js';

export interface AppOptions {
  logger?: Logger;
  /**
   * Migration mode: redirect reads of names we lack to this server (PROTOCOL.md): a static
   * server over a 1.x tree, or a filetracker 2.x server, possibly under a path prefix.
   */
  fallbackUrl?: string | undefined;
  /** How long a DELETE waits for the fallback's answer before a 504. */
  fallbackTimeoutMs?: number;
  /**
   * Migration mode: probes the fallback for `/healthz`, `/status` and `/metrics`; the
   * owner closes it on shutdown. Absent, one is made (and started) that runs until the
   * process exits.
   */
  fallbackProbe?: FallbackProbe;
  /** Request log and metrics; one is made from `logger` when absent. */
  telemetry?: Telemetry;
  /** The largest file a PUT may store, uncompressed; {@link DEFAULT_MAX_FILE_BYTES} if absent. */
  maxFileBytes?: number;
  /** How failed requests are answered and logged; one is made from `logger` when absent. */
  errors?: ErrorAnswers;
  /** A worker of `--workers N`: `/status` and `/metrics` summed over all workers. */
  workerSums?: WorkerSums | undefined;
}

/**
 * The default cap on a file's uncompressed size: far above any contest file, but a gzip
 * bomb of a few MiB can no longer become a stored file that plain clients are sent as
 * many GiB (issue 16).
 */
export const DEFAULT_MAX_FILE_BYTES = 16 * 1024 ** 3;

interface State {
  target: RequestTarget;
  /** Body bytes read, for the request log. */
  bodyBytesIn?: number;
}

type Ctx = Context & { state: State };

/**
 * Read size for large blobs: 1 MiB reads instead of the stream default of 64 KiB cut the
 * system calls per GiB sixteen-fold (memory stays bounded: see sendFile and readAhead).
 */
const LARGE_READ_BYTES = 1024 * 1024;

/**
 * Builds the Koa app over a store; listening is main.ts's job (STYLE.md). With a
 * `fallbackUrl` (migration mode) the routes use the store through {@link MigrationMode}.
 */
export function createApp(backing: Store, options: AppOptions = {}): Koa {
  const logger = options.logger ?? pino({ level: 'silent' });
  const telemetry = options.telemetry ?? new Telemetry(logger, backing);
  const fallbackUrl = options.fallbackUrl?.replace(/\/+$/, '');
  /**
   * What the fallback's `/files/NAME` and `/list/DIR` are appended to, as the clients send
   * them: the URL at a host's root (`http://host:8080/files/a`, where a static server over
   * a 1.x tree has its files), and the prefix with its `/` kept under one
   * (`http://host/ft//files/a`). The 2.x path grammar keeps what follows the last `//`, so
   * a 2.x server mounted there serves that whether or not a proxy strips the prefix
   * (`/ft/files/a` is `400 Unknown endpoint` when none does), and a static server maps it
   * to the same file. One form for both kinds of fallback: nothing depends on the kind.
   */
  const root = fallbackUrl === undefined ? undefined : requestRoot(fallbackUrl);
  const fallbackTimeoutMs = options.fallbackTimeoutMs ?? 10_000;
  const maxFileBytes = options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  const probe =
    fallbackUrl === undefined
      ? undefined
      : (options.fallbackProbe ??
        new FallbackProbe(fallbackUrl, { timeoutMs: fallbackTimeoutMs, logger }));
  if (probe !== undefined) {
    telemetry.metrics.watchFallback(probe);
    probe.start();
  }
  const migration =
    root === undefined
      ? undefined
      : new MigrationMode(
          backing,
          (name) =>
            fallbackVersion(root, name, fallbackTimeoutMs).catch((err: unknown) => {
              if (err instanceof FallbackError) probe?.noteRequestError(err.code);
              throw err;
            }),
          (details, message) => logger.warn(details, message),
        );
  const store: Store = migration ?? backing;
  /** Migration mode: /list merges the fallback's listing into ours. */
  const listings =
    migration === undefined || root === undefined
      ? undefined
      : new MergedListing(backing, migration, root, fallbackTimeoutMs, logger, (code) =>
          probe?.noteRequestError(code),
        );
  const startedAt = Date.now();
  const app = new Koa();
  app.silent = true;
  app.on('error', (err: unknown) => logResponseError(logger, err, 'response stream failed'));

  const router = new Router<State>();

  router.get('/version', (ctx) => {
    ctx.body = VERSION_BODY;
    ctx.set(HEADER.contentType, MEDIA_TYPE.json);
    // What ft-migrate binds its state to, read off the answer it asks for anyway.
    ctx.set(HEADER.storeId, store.storeId);
  });

  // sioworkers probes this; a 4xx would make it start a Python server of its own.
  const { workerSums } = options;
  router.get('/status', async (ctx) => {
    const counts = workerSums
      ? await workerSums.status()
      : { requests: telemetry.requests, uploadsInFlight: store.stats.uploadsInFlight };
    ctx.body = {
      status: 'ok',
      uptimeSeconds: Math.floor((Date.now() - startedAt) / 1000),
      ...counts,
      ...(probe !== undefined && { fallback: probe.status() }),
      [STATUS_FIELD.storeId]: store.storeId,
    };
    ctx.set(HEADER.storeId, store.storeId);
  });

  router.get('/metrics', async (ctx) => {
    const { registry } = telemetry.metrics;
    const { text, contentType } = workerSums
      ? await workerSums.metrics()
      : { text: await registry.metrics(), contentType: registry.contentType };
    ctx.body = text;
    ctx.set(HEADER.contentType, contentType);
  });

  // 200 when the store takes writes; 503 with the reason otherwise (for load balancers).
  // A fallback known down adds a `degraded:` line but never fails the store's own health:
  // the server still serves and stores everything it holds (issue 18).
  // The 503 is answered as the errors are (X-Exception, X-Error-Code), with the line.
  router.get('/healthz', async (ctx) => {
    const health = await store.health();
    const degraded = probe?.degradedReason();
    const line = degraded === undefined ? '' : `degraded: ${degraded}\n`;
    if (health.ok) {
      ctx.body = 'ok\n' + line;
      return;
    }
    const answer = errorAnswer(health.error);
    ctx.status = answer.status;
    ctx.set(answer.headers);
    ctx.body = answer.body + line;
  });

  router.get('/files', async (ctx) => {
    const { components, name } = ctx.state.target;
    const failedLook = failedLooks.get(ctx.req);
    if (failedLook !== undefined) throw failedLook;
    const head = ctx.method === 'HEAD';
    const file = head ? await store.stat(components) : await store.openFile(components);
    if (!file) {
      if (root !== undefined && migration && (await migration.redirects(components))) {
        ctx.status = 307;
        ctx.set(HEADER.location, fileUrl(root, name));
        ctx.body = '';
        return;
      }
      throw new NotFoundError('File not found');
    }
    ctx.set(fileHeaders(file));
    const opened = head ? undefined : (file as OpenedFile);
    if (matchesEtag(ctx.get(HEADER.ifNoneMatch), etagOf(file))) {
      await opened?.handle?.close();
      ctx.status = 304;
      return;
    }
    ctx.status = 200;
    ctx.type = MEDIA_TYPE.file;
    if (acceptsGzip(ctx.get(HEADER.acceptEncoding))) {
      ctx.set(HEADER.contentEncoding, 'gzip');
      ctx.length = file.storedSize;
      if (opened?.buffer) {
        ctx.body = opened.buffer;
      } else if (opened) {
        // The stored gzip as it is: written from a few reused buffers, outside Koa's
        // stream piping (see sendFile). A short blob cuts the connection and throws.
        ctx.respond = false;
        await sendFile(opened.handle!, ctx.res, file.storedSize, { chunkBytes: LARGE_READ_BYTES });
      }
    } else {
      if (opened) {
        const source = opened.buffer
          ? Readable.from([opened.buffer])
          : readAhead(opened.handle!, LARGE_READ_BYTES, file.storedSize);
        const gunzip = createGunzip();
        pipeline(source, gunzip).catch(() => {});
        ctx.body = gunzip;
      }
      ctx.length = file.logicalSize;
    }
  });

  // Reached in migration mode; otherwise PUTs are stored in front of Koa (put-first.ts).
  router.put('/files', async (ctx) => {
    const { components } = ctx.state.target;
    const version = requiredVersion(ctx.query[LAST_MODIFIED_PARAM]);
    const result = await store.put(putRequestOf(ctx.req, components, version, maxFileBytes));
    ctx.state.bodyBytesIn = result.receivedBytes;
    ctx.set(putAnswerHeaders(result.version));
    ctx.body = '';
  });

  router.delete('/files', async (ctx) => {
    const { components } = ctx.state.target;
    const version = requiredVersion(ctx.query[LAST_MODIFIED_PARAM]);
    const result = await store.delete(components, version);
    if (!result.found) throw new NotFoundError('File not found');
    ctx.type = MEDIA_TYPE.text;
    ctx.body = '';
  });

  router.get('/list', async (ctx) => {
    const cutoff = listCutoff(ctx.query[LAST_MODIFIED_PARAM]);
    const { components } = ctx.state.target;
    const listing: Listing = listings
      ? await listings.open(components, cutoff)
      : { lines: await store.list(components, cutoff), close() {} };
    ctx.type = MEDIA_TYPE.text;
    if (ctx.method === 'HEAD') listing.close();
    else ctx.res.once('close', listing.close);
    ctx.body = ctx.method === 'HEAD' ? '' : Readable.from(listing.lines);
  });

  app.use(requestLogger(telemetry));
  app.use(errorHandler(options.errors ?? new ErrorAnswers(logger)));
  // A browser's GET / gets the operator's page; everything else is the protocol's.
  app.use(operatorPage());
  app.use(async (ctx: Ctx, next: Next) => {
    const target = parseRequestPath(ctx.path);
    ctx.state.target = target;
    // Route on the endpoint alone: the name was parsed by the protocol grammar above.
    checkMethod(ctx.method, ENDPOINT_METHODS[target.endpoint]);
    ctx.path = '/' + target.endpoint;
    await next();
  });
  app.use(router.routes());
  return app;
}
