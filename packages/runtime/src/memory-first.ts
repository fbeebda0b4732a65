import type {
  IncomingMessage,
  OutgoingHttpHeaders,
  RequestListener,
  ServerResponse,
} from 'node:http';

/**
 * An answer held in memory, sent as it is. Each server builds one per file and keeps it,
 * so a request answered from memory allocates nothing for its answer.
 */
export interface MemoryAnswer {
  readonly status: number;
  readonly headers: OutgoingHttpHeaders;
  /** The body of a GET (a HEAD gets none); undefined for a status without one (304). */
  readonly body: Buffer | undefined;
}

/**
 * Finds the answer to a GET or HEAD of `path` (the request target up to any `?`), or
 * undefined to leave the request to the full app: a miss, and any doubt. `now`: when the
 * request came, as `performance.now()`. Must not throw. A promise: the answer needs one
 * look elsewhere first (a name in a shared database); a rejection is a miss too.
 */
export type MemoryLookup = (
  req: IncomingMessage,
  path: string,
  now: number,
) => MemoryAnswer | undefined | Promise<MemoryAnswer | undefined>;

/**
 * Told of each request answered from memory: the request target as sent, the body bytes
 * sent (0 for a HEAD or a 304) and the milliseconds it took, for the request log.
 */
export type MemoryAnswered = (
  req: IncomingMessage,
  url: string,
  status: number,
  bodyBytes: number,
  ms: number,
) => void;

/**
 * The request listener of both servers: a GET or HEAD that `lookup` can answer from
 * memory is answered right here; every other request goes to `app` (Koa's callback)
 * unchanged.
 *
 * Why: sioworkers' judges fetch thousands of small files, and Koa's layers (context,
 * middleware, the response's setters) cost ft-server a third of bare node:http's
 * throughput on such requests; ft-legacy-static served 4,700 req/s through koa-send where
 * lighttpd served 123,000. Answering from memory in front of Koa is what lets them keep up
 * (about 17,000-25,000 small GETs a second each on 2 cores). The path here is one lookup,
 * writeHead and end with prepared headers and body, and one call to `answered`: no
 * promise, no object per request. A lookup that must ask elsewhere first (ft-server on a
 * shared database) returns a promise, and the request waits for it here, still in front
 * of Koa.
 */
export function memoryFirstListener(
  lookup: MemoryLookup,
  answered: MemoryAnswered,
  app: (req: IncomingMessage, res: ServerResponse) => unknown,
): RequestListener {
  const send = (
    req: IncomingMessage,
    res: ServerResponse,
    url: string,
    answer: MemoryAnswer,
    started: number,
  ): void => {
    res.writeHead(answer.status, answer.headers);
    const body = req.method === 'HEAD' ? undefined : answer.body;
    res.end(body);
    answered(
      req,
      url,
      answer.status,
      body === undefined ? 0 : body.length,
      performance.now() - started,
    );
  };
  return function listener(req: IncomingMessage, res: ServerResponse): void {
    const method = req.method;
    if (method === 'GET' || method === 'HEAD') {
      const started = performance.now();
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const answer = lookup(req, q < 0 ? url : url.slice(0, q), started);
      if (answer instanceof Promise) {
        answer.then(
          (found) =>
            found === undefined ? void app(req, res) : send(req, res, url, found, started),
          () => void app(req, res),
        );
        return;
      }
      if (answer !== undefined) {
        send(req, res, url, answer, started);
        return;
      }
    }
    void app(req, res);
  };
}
