import http from 'node:http';
import https from 'node:https';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import got, { RequestError, TimeoutError, type Got, type Response } from 'got';
import { TRANSIENT_NETWORK_ERROR_CODES } from '@filetracker/runtime';
import {
  CLIENT_HEADERS,
  answerSize,
  answerVersion,
  checkSuccess,
  checkVersion,
  fileUrl,
  headSize,
  requestRoot,
  sendPut,
  sendPutStored,
  versionQuery,
  type PutOptions,
  type PutSender,
  type PutStoredOptions,
  type PutStoredResult,
} from './client-wire.js';
import { LATEST_DATE_VERSION, nowVersion } from './dates.js';
import { FiletrackerError } from './errors.js';
import { HEADER } from './header-names.js';
import { digestOfEtag, headerValue, isGzipEncoding, parseLogicalSizeHeader } from './headers.js';
import { toFiletrackerError } from './http-error.js';
import { encodeName, normalizeName } from './path.js';
import { parseVersionBody } from './protocol-version.js';
import { splitLines } from './split-lines.js';
import type { StoredBody } from './stored-body.js';

/** Options of a {@link FiletrackerClient}. */
export interface ClientOptions {
  /**
   * How long any one phase of a request (DNS lookup, connect, waiting for the response
   * headers, or silence on the socket while sending or receiving) may take, default 60000.
   * Not a cap on the whole request: a multi-GiB upload that keeps moving is never cut off.
   */
  timeoutMs?: number;
  /**
   * How many times an idempotent request is retried (got's retry limit), default 2. PUT is
   * retried only after a connection error before any response, and only from a Buffer or a
   * file path (a stream cannot be replayed).
   */
  retries?: number;
}

/** What a HEAD of a name tells: its version and uncompressed size. */
export interface StatResult {
  version: number;
  logicalSize: number;
}

/** What `GET /version` tells ({@link FiletrackerClient.versionInfo}). */
export interface ServerVersion {
  protocolVersions: number[];
  /**
   * The identity of the store behind the server, made once when the store was created;
   * `undefined` from a server that sends none (the Python 2.x server).
   */
  storeId: string | undefined;
}

/** Options of {@link FiletrackerClient.get} and {@link FiletrackerClient.getBuffer}. */
export interface GetOptions {
  /** Refuse (code `VERSION_MISMATCH`) a file whose `Last-Modified` is another version. */
  expectedVersion?: number;
  signal?: AbortSignal;
}

/** A file being downloaded: its decompressed bytes and what the headers said. */
export interface GetResult {
  stream: Readable;
  version: number;
  /** `Logical-Size`, else `Content-Length` of a plain answer (a 1.x server), else unknown. */
  logicalSize: number | undefined;
}

/** got's timeout phases that end before a request is sent. */
const CONNECT_TIMEOUT_EVENTS = new Set(['lookup', 'connect', 'secureConnect']);

/** First retry after 500 ms, then 1 s, 2 s... */
const RETRY_BASE_MS = 500;

function isConnectionError(err: unknown): boolean {
  if (!(err instanceof RequestError) || err.response !== undefined) return false;
  if (err instanceof TimeoutError) return CONNECT_TIMEOUT_EVENTS.has(err.event);
  return TRANSIENT_NETWORK_ERROR_CODES.has(err.code);
}

function header(response: Response, name: string): string | undefined {
  return headerValue(response.headers, name);
}

function lastModified(response: Response): number {
  return answerVersion(response.statusCode, response.headers);
}

/**
 * A client of filetracker protocol version 2 (PROTOCOL.md), sending what the Python client
 * 2.3.x sends: percent-encoded names, form-encoded `last_modified` dates, gzip bodies with
 * `SHA256-Checksum` and `Logical-Size`. Errors answered by the server are
 * `FiletrackerError`s carrying the code and status; connection failures are got's
 * `RequestError`s. Keeps connections alive; call {@link close} when done.
 */
export class FiletrackerClient {
  readonly #root: string;
  readonly #retries: number;
  readonly #httpAgent = new http.Agent({ keepAlive: true });
  readonly #httpsAgent = new https.Agent({ keepAlive: true });
  readonly #got: Got;
  #closed = false;

  /**
   * @param baseUrl `http(s)://host:port`, optionally with a path prefix (`/ft`), with or
   *   without a trailing slash. With a prefix, requests go to `/ft//files/...`, which the
   *   server's "last `//`" rule serves whether or not a proxy strips the prefix.
   */
  constructor(baseUrl: string, options: ClientOptions = {}) {
    this.#root = requestRoot(baseUrl);
    const timeoutMs = options.timeoutMs ?? 60_000;
    this.#retries = options.retries ?? 2;
    this.#got = got.extend({
      agent: { http: this.#httpAgent, https: this.#httpsAgent },
      timeout: {
        lookup: timeoutMs,
        connect: timeoutMs,
        secureConnect: timeoutMs,
        socket: timeoutMs,
        response: timeoutMs,
      },
      retry: {
        limit: this.#retries,
        methods: ['GET', 'HEAD', 'DELETE'],
        // 502/504 are the fallback server failing, 503 an overloaded proxy; a 500 of ours is
        // a bug that retrying would only repeat.
        statusCodes: [408, 429, 502, 503, 504],
        errorCodes: [...TRANSIENT_NETWORK_ERROR_CODES],
      },
      headers: { ...CLIENT_HEADERS },
      hooks: { beforeError: [toFiletrackerError] },
    });
  }

  /** `GET /version`: the protocol versions the server speaks (`[2]` for a 2.x server). */
  async version(options: { signal?: AbortSignal } = {}): Promise<number[]> {
    return (await this.versionInfo(options)).protocolVersions;
  }

  /**
   * `GET /version`, with what its headers tell: the protocol versions, and the identity of
   * the store behind an ft-server (`X-Filetracker-Store-Id`).
   */
  async versionInfo(options: { signal?: AbortSignal } = {}): Promise<ServerVersion> {
    this.#checkOpen();
    const response = await this.#got.get(`${this.#root}/version`, {
      signal: options.signal,
      responseType: 'text',
    });
    const storeId = header(response, HEADER.storeId)?.trim();
    return {
      protocolVersions: parseVersionBody(response.body, response.statusCode),
      storeId: storeId || undefined,
    };
  }

  /**
   * `PUT /files/{name}`: stores `source` (a Buffer, a file path, or a stream) under `name`
   * and returns the version stored after the request, which is newer than the one sent
   * when the server already had a newer one (PROTOCOL.md, PUT).
   */
  async put(
    name: string,
    source: string | Buffer | NodeJS.ReadableStream,
    options: PutOptions = {},
  ): Promise<number> {
    this.#checkOpen();
    return sendPut(this.#root, name, source, options, this.#sendPut);
  }

  /**
   * `PUT /files/{name}` of a file as another 2.x server or store keeps it (ft-migrate
   * --from): its gzip passes through unchanged (see prepareStoredBody). Returns the version
   * stored after the request, as {@link put} does, and the content size when known.
   */
  async putStored(
    name: string,
    stored: StoredBody,
    options: PutStoredOptions,
  ): Promise<PutStoredResult> {
    this.#checkOpen();
    return sendPutStored(this.#root, name, stored, options, this.#sendPut);
  }

  /** One PUT, tried again after a connection error when its body can be made again. */
  readonly #sendPut: PutSender = async ({ url, body }, signal) => {
    const response = await this.#attempt(body.replayable, signal, () =>
      this.#got.put(url, {
        body: body.open(),
        headers: body.headers,
        signal,
        // Retried here instead (#attempt), where the body can be made again.
        retry: { limit: 0 },
        followRedirect: false,
      }),
    );
    return { status: response.statusCode, headers: response.headers };
  };

  /**
   * `GET /files/{name}`: resolves once the headers arrive with the decompressed body as a
   * stream, following a 307 of a server in migration mode. Absent: a `NotFoundError`.
   */
  async get(name: string, options: GetOptions = {}): Promise<GetResult> {
    this.#checkOpen();
    const { expectedVersion, signal } = options;
    if (expectedVersion !== undefined) checkVersion(expectedVersion);
    const url = this.#fileUrl(name);
    const { stream, response } = await this.#openStream(url, signal);
    try {
      const version = lastModified(response);
      if (expectedVersion !== undefined && version !== expectedVersion) {
        // 409: the client's precondition failed; the server itself answered 200.
        throw new FiletrackerError(
          `Version ${expectedVersion} of ${normalizeName(name)} is not available; the server has ${version}`,
          { code: 'VERSION_MISMATCH', status: 409 },
        );
      }
      return { stream, version, logicalSize: answerSize(response.statusCode, response.headers) };
    } catch (err) {
      stream.destroy();
      throw err;
    }
  }

  /**
   * `GET /files/{name}` for a copy to another server (ft-migrate --from): resolves once the
   * headers arrive with the body as the server stores it (gzip, not decompressed) and what
   * the headers tell of it (the digest from ft-server's `ETag`), following a 307 of a
   * server in migration mode. Absent: a `NotFoundError`.
   */
  async getStored(
    name: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<StoredBody & { data: Readable; version: number }> {
    this.#checkOpen();
    const { stream, response } = await this.#openStream(this.#fileUrl(name), options.signal, {
      decompress: false,
    });
    try {
      const gzip = isGzipEncoding(header(response, HEADER.contentEncoding));
      const digest = digestOfEtag(header(response, HEADER.etag));
      const logicalSize = answerSize(response.statusCode, response.headers);
      let storedSize: number | undefined;
      try {
        storedSize = parseLogicalSizeHeader(header(response, HEADER.contentLength));
      } catch {
        // a malformed Content-Length: Node's parser would have refused it; send chunked
      }
      return {
        data: stream,
        gzip,
        version: lastModified(response),
        ...(digest !== undefined && { digest }),
        ...(logicalSize !== undefined && { logicalSize }),
        ...(storedSize !== undefined && { storedSize }),
      };
    } catch (err) {
      stream.destroy();
      throw err;
    }
  }

  /** {@link get}, collected into memory: for small files only. */
  async getBuffer(
    name: string,
    options: GetOptions = {},
  ): Promise<{ data: Buffer; version: number; logicalSize: number | undefined }> {
    const { stream, version, logicalSize } = await this.get(name, options);
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return { data: Buffer.concat(chunks), version, logicalSize };
  }

  /**
   * `HEAD /files/{name}`, following redirects: the version and logical size, or `null` for
   * exactly 404 (the Python client's `exists()` treats any other status as present). The
   * size is `Logical-Size` when the answer is gzip, else `Content-Length` (PROTOCOL.md).
   * With `followRedirects: false` a redirect answers `null` too: a server in migration mode
   * redirects the names its own store lacks to the old tree, and a caller asking what the
   * store holds (ft-migrate) must not take the old tree's answer for it.
   */
  async stat(
    name: string,
    options: { signal?: AbortSignal; followRedirects?: boolean } = {},
  ): Promise<StatResult | null> {
    this.#checkOpen();
    const follow = options.followRedirects ?? true;
    let response: Response;
    try {
      response = await this.#got.head(this.#fileUrl(name), {
        signal: options.signal,
        followRedirect: follow,
      });
    } catch (err) {
      if (err instanceof FiletrackerError && err.status === 404) return null;
      throw err;
    }
    if (!follow && response.statusCode >= 300 && response.statusCode <= 399) return null;
    const logicalSize = headSize(response.statusCode, response.headers);
    return { version: lastModified(response), logicalSize };
  }

  /**
   * `DELETE /files/{name}` unless the stored version is newer than `version` (default now).
   * Absent: a `NotFoundError` (status 404).
   */
  async delete(
    name: string,
    version: number = nowVersion(),
    options: { signal?: AbortSignal } = {},
  ): Promise<void> {
    this.#checkOpen();
    const response = await this.#got.delete(this.#fileUrl(name) + this.#query(version), {
      signal: options.signal,
      followRedirect: false,
    });
    checkSuccess(response.statusCode);
  }

  /**
   * `GET /list/{dir}`: every file under `dir` (default the whole store) whose version is at
   * most `cutoff` (default now), relative to `dir` as the server sends them, streamed line
   * by line. The request is made when iteration starts; stopping early closes it.
   */
  async *list(
    dir = '/',
    cutoff: number = nowVersion(),
    options: { signal?: AbortSignal } = {},
  ): AsyncGenerator<string> {
    this.#checkOpen();
    const url = `${this.#root}/list${encodeName(normalizeName(dir))}${this.#query(cutoff)}`;
    const { stream } = await this.#openStream(url, options.signal);
    try {
      yield* splitLines(stream);
    } finally {
      stream.destroy();
    }
  }

  /**
   * Every file under `dir` (default the whole store) as a full name (`/dir/a/b`), whatever
   * its version: {@link list} with a cutoff no version passes ({@link LATEST_DATE_VERSION}),
   * so a file a client with a fast clock stored in the future is not left out. Streamed.
   */
  async *listNames(dir = '/', options: { signal?: AbortSignal } = {}): AsyncGenerator<string> {
    const base = normalizeName(dir);
    const prefix = base === '/' ? '/' : `${base}/`;
    for await (const line of this.list(base, LATEST_DATE_VERSION, options)) yield prefix + line;
  }

  /** Closes the kept-alive connections; later calls throw a `TypeError`. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#httpAgent.destroy();
    this.#httpsAgent.destroy();
  }

  #checkOpen(): void {
    if (this.#closed) throw new TypeError('FiletrackerClient is closed');
  }

  #fileUrl(name: string): string {
    return fileUrl(this.#root, name);
  }

  #query(version: number): string {
    return versionQuery(version);
  }

  /**
   * A GET as a stream, resolved when the headers arrive. got does not retry streams, so
   * connection errors before a response are retried here.
   */
  #openStream(
    url: string,
    signal: AbortSignal | undefined,
    options: { decompress?: boolean } = {},
  ): Promise<{ stream: Readable; response: Response }> {
    return this.#attempt(true, signal, async () => {
      const stream = this.#got.stream(url, { signal, decompress: options.decompress ?? true });
      // got's streams do not destroy themselves (autoDestroy: false), and only destroy
      // takes their listener off `signal`: one read to its end would leave one behind,
      // and a run sharing one signal warns after ~80 (issue 18, item 5).
      stream.once('end', () => stream.destroy());
      try {
        const [response] = (await once(stream, 'response')) as [Response];
        return { stream, response };
      } catch (err) {
        stream.destroy();
        throw err;
      }
    });
  }

  /** Runs `request`, again after a connection error before any response if `replayable`. */
  async #attempt<T>(
    replayable: boolean,
    signal: AbortSignal | undefined,
    request: () => Promise<T>,
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await request();
      } catch (err) {
        if (!replayable || attempt >= this.#retries || !isConnectionError(err)) throw err;
        signal?.throwIfAborted();
        await delay(RETRY_BASE_MS * 2 ** attempt, undefined, { signal });
      }
    }
  }
}
