import http from 'node:http';
import { createRequire } from 'node:module';
import { pipeline, type Readable } from 'node:stream';
import { urlToHttpOptions } from 'node:url';
import { gunzipSync, inflateSync } from 'node:zlib';
import type {
  FiletrackerClient,
  GetOptions,
  GetResult,
  ServerVersion,
  StatResult,
} from '@filetracker/shared-protocol';
import {
  CLIENT_HEADERS,
  FiletrackerError,
  HEADER,
  answerVersion,
  checkSuccess,
  errorFromAnswer,
  fileUrl,
  headSize,
  headerValue,
  parseVersionBody,
  requestRoot,
  sendPut,
  sendPutStored,
  type AnswerHeaders,
  type PutOptions,
  type PutSender,
  type PutStoredOptions,
  type PutStoredResult,
  type StoredBody,
} from '@filetracker/shared-protocol/wire';

/** Options of an {@link HttpUploader}. */
export interface UploaderOptions {
  /**
   * How long a request may make no progress (connecting, or no bytes moving either way),
   * default 60000: `--timeout`. Not a cap on the whole request.
   */
  timeoutMs?: number;
}

/** An answer as read: status, headers, and the body as text when it was asked for. */
interface Answer {
  status: number;
  statusMessage: string | undefined;
  headers: AnswerHeaders;
  body: string | undefined;
}

interface RequestSpec {
  method: 'GET' | 'HEAD' | 'PUT';
  url: string;
  headers?: Record<string, string>;
  body?: Buffer | Readable;
  signal?: AbortSignal | undefined;
  /** Keep the body of a success as text (an error's is always kept). */
  text?: boolean;
}

/** Error bodies are one line (PROTOCOL.md); a longer one is cut here. */
const MAX_TEXT_BYTES = 64 * 1024;

/** Redirects `GET /version` follows, as got did for the start-up check. */
const MAX_REDIRECTS = 10;

/**
 * ft-migrate's HTTP side: `GET /version`, `PUT` and `HEAD` of files over node:http with one
 * keep-alive pool, instead of `FiletrackerClient` (got). Per file, got merged and
 * validated its whole option tree and ran its hook machinery: in a CPU profile of 5,000
 * small uploads, got's code and the garbage it left were a fifth of the migrator's time,
 * and loading it 0.1-0.2 s of every start (issue 15). What is said on the wire (URLs,
 * query, headers, bodies) and how answers and errors are read all come from
 * shared-protocol, as for `FiletrackerClient`; `--verify=digest`'s downloads still go
 * through `FiletrackerClient`, loaded only then.
 *
 * Retries are the migrator's (it counts and reports them); redirects are never followed
 * but for the start-up `GET /version`; a 3xx to a PUT is a `PROTOCOL_ERROR`, to a HEAD
 * "not in this store".
 */
export class HttpUploader {
  readonly #root: string;
  /**
   * What a request to a URL under the root is sent with, parsed once: its scheme, host,
   * port and credentials (`urlToHttpOptions`), and the URL's part before its path. Node
   * parsed each request's URL string again (a WHATWG parse and a search-params object per
   * file); the path now goes out as shared-protocol built it.
   */
  readonly #origin: { options: http.RequestOptions; prefix: string };
  /**
   * The requests in flight under each caller's signal, with one abort listener per
   * signal. Handing the signal to `http.request` added a listener to it per request (and
   * the stream bookkeeping to drop it), which the migrator's one signal shared by every
   * upload paid for each file: with 64 in flight, the 64th listener's add and remove and
   * that bookkeeping were about a fifth of ft-migrate's CPU per small file (issue 15).
   */
  readonly #inFlight = new WeakMap<AbortSignal, Set<http.ClientRequest>>();
  readonly #timeoutMs: number;
  readonly #httpAgent = new http.Agent({ keepAlive: true });
  /** node:https (TLS) is loaded for the first https URL only: it costs start-up time. */
  #https: { request: typeof http.request; agent: http.Agent } | undefined;
  #downloads: Promise<FiletrackerClient> | undefined;
  #closed = false;

  /** @param baseUrl as for `FiletrackerClient`: `http(s)://host:port`, optionally with a path prefix. */
  constructor(baseUrl: string, options: UploaderOptions = {}) {
    this.#root = requestRoot(baseUrl);
    this.#origin = originOf(this.#root);
    this.#timeoutMs = options.timeoutMs ?? 60_000;
  }

  /**
   * `GET /version`: the protocol versions and the store's identity (see
   * `FiletrackerClient.versionInfo`), following redirects.
   */
  async versionInfo(options: { signal?: AbortSignal } = {}): Promise<ServerVersion> {
    let url = `${this.#root}/version`;
    for (let hops = 0; ; hops++) {
      const answer = await this.#request({
        method: 'GET',
        url,
        signal: options.signal,
        text: true,
      });
      const location = headerValue(answer.headers, HEADER.location);
      if (answer.status >= 300 && answer.status <= 399 && location && hops < MAX_REDIRECTS) {
        url = new URL(location, url).href;
        continue;
      }
      checkSuccess(answer.status);
      const storeId = headerValue(answer.headers, HEADER.storeId)?.trim();
      return {
        protocolVersions: parseVersionBody(answer.body ?? '', answer.status),
        storeId: storeId || undefined,
      };
    }
  }

  /**
   * `PUT /files/{name}` of a Buffer or a file path, gzipped with `SHA256-Checksum` and
   * `Logical-Size` (shared-protocol's `sendPut`); resolves with the version the server
   * kept (newer than `version` when it had a newer one).
   */
  async put(name: string, source: string | Buffer, options: PutOptions = {}): Promise<number> {
    this.#checkOpen();
    return sendPut(this.#root, name, source, options, this.#sendPut);
  }

  /**
   * `PUT /files/{name}` of a file as another 2.x server or store keeps it (`--from`): its
   * gzip passes through unchanged (shared-protocol's `sendPutStored`). Resolves with the
   * version the server kept and the content size when known.
   */
  async putStored(
    name: string,
    stored: StoredBody,
    options: PutStoredOptions,
  ): Promise<PutStoredResult> {
    this.#checkOpen();
    return sendPutStored(this.#root, name, stored, options, this.#sendPut);
  }

  readonly #sendPut: PutSender = ({ url, body }, signal) =>
    this.#request({ method: 'PUT', url, headers: body.headers, body: body.open(), signal });

  /**
   * `HEAD /files/{name}` without following a redirect: the version and logical size, or
   * `null` for a 404 or a redirect (a server in migration mode sends the names its own
   * store lacks to the old tree, whose answer must not pass for the store's).
   */
  async stat(
    name: string,
    options: { signal?: AbortSignal; followRedirects?: false } = {},
  ): Promise<StatResult | null> {
    this.#checkOpen();
    let answer: Answer;
    try {
      answer = await this.#request({
        method: 'HEAD',
        url: fileUrl(this.#root, name),
        signal: options.signal,
      });
    } catch (err) {
      if (err instanceof FiletrackerError && err.status === 404) return null;
      throw err;
    }
    if (answer.status >= 300 && answer.status <= 399) return null;
    return {
      version: answerVersion(answer.status, answer.headers),
      logicalSize: headSize(answer.status, answer.headers),
    };
  }

  /** `GET /files/{name}` (`--verify=digest`): through `FiletrackerClient`, loaded on first use. */
  async get(name: string, options: GetOptions = {}): Promise<GetResult> {
    this.#checkOpen();
    this.#downloads ??= import('@filetracker/shared-protocol').then(
      ({ FiletrackerClient }) =>
        // Retried by the migrator, as uploads are.
        new FiletrackerClient(this.#root, { timeoutMs: this.#timeoutMs, retries: 0 }),
    );
    return (await this.#downloads).get(name, options);
  }

  /** Closes the kept-alive connections; later calls throw a `TypeError`. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#httpAgent.destroy();
    this.#https?.agent.destroy();
    void this.#downloads?.then((client) => client.close()).catch(() => {});
  }

  /** node:http, or node:https for an https URL, with its keep-alive pool. */
  #transport(url: string): { request: typeof http.request; agent: http.Agent } {
    if (!url.startsWith('https:')) return { request: http.request, agent: this.#httpAgent };
    if (!this.#https) {
      const https = createRequire(import.meta.url)('node:https') as typeof import('node:https');
      this.#https = { request: https.request, agent: new https.Agent({ keepAlive: true }) };
    }
    return this.#https;
  }

  /**
   * The path and query of `url` when it lies under the root's scheme, host and port (every
   * URL but a redirect's elsewhere), exactly as written.
   */
  #pathUnderRoot(url: string): string | undefined {
    const { prefix } = this.#origin;
    return url.startsWith(prefix) && url.charCodeAt(prefix.length) === 0x2f
      ? url.slice(prefix.length)
      : undefined;
  }

  /** Destroys `req` with an `AbortError` if `signal` aborts before `req` closes. */
  #track(signal: AbortSignal, req: http.ClientRequest): void {
    let requests = this.#inFlight.get(signal);
    if (requests === undefined) {
      const held = new Set<http.ClientRequest>();
      requests = held;
      this.#inFlight.set(signal, held);
      signal.addEventListener(
        'abort',
        () => {
          for (const request of held) request.destroy(abortError(signal));
          held.clear();
        },
        { once: true },
      );
    }
    const held = requests;
    held.add(req);
    req.once('close', () => held.delete(req));
  }

  #checkOpen(): void {
    if (this.#closed) throw new TypeError('HttpUploader is closed');
  }

  /**
   * One request; resolves once the answer has been read to its end (so its connection
   * goes back to the pool), rejects with a `FiletrackerError` for a 4xx or 5xx answer
   * (shared-protocol's `errorFromAnswer`), with Node's error (`ECONNRESET`...) when the
   * connection fails, and with an `ETIMEDOUT` error after `timeoutMs` without progress.
   */
  #request(spec: RequestSpec): Promise<Answer> {
    const transport = this.#transport(spec.url);
    return new Promise<Answer>((resolve, reject) => {
      let settled = false;
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        reject(err);
      };
      const { signal } = spec;
      if (signal?.aborted) {
        fail(abortError(signal));
        return;
      }
      const options: http.RequestOptions = {
        method: spec.method,
        headers: spec.headers ? { ...CLIENT_HEADERS, ...spec.headers } : CLIENT_HEADERS,
        agent: transport.agent,
      };
      const path = this.#pathUnderRoot(spec.url);
      const req =
        path === undefined
          ? transport.request(spec.url, options)
          : transport.request({ ...this.#origin.options, ...options, path });
      if (signal) this.#track(signal, req);
      req.setTimeout(this.#timeoutMs, () => req.destroy(timeoutError(this.#timeoutMs)));
      req.on('error', fail);
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        const keepText = spec.text === true || status >= 400;
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          if (!keepText || bytes >= MAX_TEXT_BYTES) return;
          chunks.push(chunk);
          bytes += chunk.length;
        });
        res.on('error', fail);
        res.on('aborted', () => fail(cutOff()));
        res.on('end', () => {
          if (settled) return;
          const answer: Answer = {
            status,
            statusMessage: res.statusMessage,
            headers: res.headers,
            body: keepText ? textOf(Buffer.concat(chunks), res.headers) : undefined,
          };
          settled = true;
          if (status >= 400) reject(errorFromAnswer(answer));
          else resolve(answer);
        });
      });
      const { body } = spec;
      if (body === undefined || Buffer.isBuffer(body)) {
        req.end(body);
      } else {
        // A read error of the file ends the request with it; the request's own error wins.
        pipeline(body, req, (err) => {
          if (err) fail(err);
        });
      }
    });
  }
}

/** got's `TimeoutError` had this code, which ft-migrate retries (TRANSIENT_NETWORK_ERROR_CODES). */
function timeoutError(ms: number): Error {
  return Object.assign(new Error(`Timeout: no progress for ${ms} ms`), { code: 'ETIMEDOUT' });
}

/**
 * The root's scheme, host, port and credentials as request options, and its part before
 * its path (`http://host:port` is all origin; `/ft/` of `http://host:port/ft/` is path).
 */
function originOf(root: string): { options: http.RequestOptions; prefix: string } {
  const pathStart = root.indexOf('/', root.indexOf('//') + 2);
  const { protocol, hostname, port, auth } = urlToHttpOptions(new URL(root));
  return {
    options: { protocol, hostname, port, ...(auth !== undefined && { auth }) },
    prefix: pathStart === -1 ? root : root.slice(0, pathStart),
  };
}

/** What Node's own `signal` option destroys a request with. */
function abortError(signal: AbortSignal): Error {
  return Object.assign(new Error('The operation was aborted', { cause: signal.reason }), {
    name: 'AbortError',
    code: 'ABORT_ERR',
  });
}

function cutOff(): Error {
  return Object.assign(new Error('The answer was cut off'), { code: 'ECONNRESET' });
}

/** The body as text, inflated when the server sent it compressed (we accept gzip). */
function textOf(data: Buffer, headers: AnswerHeaders): string {
  const encoding = headerValue(headers, HEADER.contentEncoding)?.trim().toLowerCase();
  try {
    if (encoding === 'gzip' || encoding === 'x-gzip') return gunzipSync(data).toString();
    if (encoding === 'deflate') return inflateSync(data).toString();
  } catch {
    return '';
  }
  return data.toString();
}
