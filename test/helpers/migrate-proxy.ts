import { once } from 'node:events';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream/promises';

/** What the proxy answers instead of forwarding: a status, or `undefined` to forward. */
export type FaultRule = (request: {
  method: string;
  name: string;
  attempt: number;
}) => number | undefined;

export interface FaultyProxy {
  url: string;
  /** Requests seen per `METHOD name` (the name decoded, from /files/...). */
  attempts: Map<string, number>;
  close(): Promise<void>;
}

async function answer(req: IncomingMessage, res: ServerResponse, status: number): Promise<void> {
  // Read the body first, as a server answering after the upload would.
  req.resume();
  if (!req.readableEnded) await once(req, 'end');
  const reason = `injected ${status}`;
  res.writeHead(status, {
    'content-type': 'text/plain',
    'x-exception': reason,
    'content-length': String(Buffer.byteLength(reason)),
  });
  res.end(reason);
}

/**
 * A node:http proxy in front of a real filetracker server that answers some requests
 * itself (`rule`) and forwards the rest unchanged, keep-alive included.
 */
export async function startFaultyProxy(target: string, rule: FaultRule): Promise<FaultyProxy> {
  const upstream = new URL(target);
  const attempts = new Map<string, number>();
  const server = createServer((req, res) => {
    void (async () => {
      const rawPath = req.url ?? '/';
      const method = req.method ?? 'GET';
      const match = /^\/files(\/[^?]*)/.exec(rawPath);
      if (match) {
        const name = decodeURIComponent(match[1]!);
        const key = `${method} ${name}`;
        const attempt = (attempts.get(key) ?? 0) + 1;
        attempts.set(key, attempt);
        const status = rule({ method, name, attempt });
        if (status !== undefined) {
          await answer(req, res, status);
          return;
        }
      }
      const forward = request({
        host: upstream.hostname,
        port: upstream.port,
        method,
        path: rawPath,
        headers: req.headers,
      });
      const [response] = (await Promise.all([
        once(forward, 'response'),
        pipeline(req, forward),
      ])) as [[IncomingMessage], void];
      res.writeHead(response[0].statusCode ?? 502, response[0].headers);
      await pipeline(response[0], res);
    })().catch(() => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    attempts,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
