import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';

/** A response as the tests see it: headers lowercased, body as raw bytes (never decoded). */
export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface HttpOptions {
  method?: string;
  headers?: Record<string, string | number>;
  /** Sent with a Content-Length unless `chunked`; an iterable is always sent chunked. */
  body?: Buffer | string | Iterable<Buffer>;
  chunked?: boolean;
}

/**
 * One request through node:http with no pool and nothing added: unlike fetch, it neither
 * sends a default `Accept-Encoding` nor decompresses, so the tests see the stored bytes.
 * `path` goes on the wire as given (`//files/a` stays `//files/a`).
 */
export function httpRequest(
  baseUrl: string,
  path: string,
  options: HttpOptions = {},
): Promise<HttpResult> {
  const { hostname, port } = new URL(baseUrl);
  const { body } = options;
  const parts: Buffer[] =
    body === undefined
      ? []
      : typeof body === 'string'
        ? [Buffer.from(body)]
        : Buffer.isBuffer(body)
          ? [body]
          : [...body];
  const chunked =
    options.chunked ?? (body !== undefined && !Buffer.isBuffer(body) && typeof body !== 'string');
  const headers: Record<string, string | number> = { ...options.headers };
  if (body !== undefined && !chunked) {
    headers['Content-Length'] = parts.reduce((n, b) => n + b.length, 0);
  }
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: hostname, port, path, method: options.method ?? 'GET', headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () =>
          resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }),
        );
      },
    );
    req.on('error', reject);
    if (chunked) req.setHeader('Transfer-Encoding', 'chunked');
    for (const part of parts) req.write(part);
    req.end();
  });
}

/** A response read off a raw socket, framing and all. */
export interface RawResponse {
  status: number;
  /** Header names lowercased; repeated headers joined with `, `. */
  headers: Record<string, string>;
  /** Header lines as sent, in order. */
  rawHeaders: [string, string][];
  /** The body with chunked framing removed. */
  body: Buffer;
  chunked: boolean;
}

/**
 * A raw TCP connection for requests whose exact bytes matter (`//files/…`, `..`, odd
 * escapes) and for reading responses byte for byte: HEAD answers are read without a body
 * whatever their Content-Length says, so a stray body byte breaks the next response.
 */
export class RawConnection {
  readonly socket: net.Socket;
  #buffer = Buffer.alloc(0);
  #ended = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      this.#notify();
    });
    socket.on('end', () => {
      this.#ended = true;
      this.#notify();
    });
    socket.on('close', () => {
      this.#ended = true;
      this.#notify();
    });
    socket.on('error', (err) => {
      this.#error = err;
      this.#ended = true;
      this.#notify();
    });
  }

  static open(port: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawConnection(socket));
      });
    });
  }

  /** True once the server has closed (or reset) the connection. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Bytes received and not yet consumed by {@link readResponse}. */
  get pending(): Buffer {
    return this.#buffer;
  }

  write(data: Buffer | string): Promise<void> {
    return new Promise((resolve, reject) =>
      this.socket.write(data, (err) => (err ? reject(err) : resolve())),
    );
  }

  /** Half-closes: the server sees EOF, we can still read its answer. */
  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Waits for more bytes; false if the connection ended instead. */
  async #more(deadline: number): Promise<boolean> {
    if (this.#ended) return false;
    const before = this.#buffer.length;
    const left = deadline - Date.now();
    if (left <= 0) throw new Error('timed out waiting for the server');
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, left);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    if (this.#buffer.length > before) return true;
    if (this.#ended) return false;
    if (Date.now() >= deadline) throw new Error('timed out waiting for the server');
    return true;
  }

  async #take(n: number, deadline: number): Promise<Buffer> {
    while (this.#buffer.length < n) {
      if (!(await this.#more(deadline))) {
        throw new Error(`connection ended after ${this.#buffer.length} of ${n} bytes`);
      }
    }
    const out = this.#buffer.subarray(0, n);
    this.#buffer = this.#buffer.subarray(n);
    return out;
  }

  async #line(deadline: number): Promise<string> {
    for (;;) {
      const at = this.#buffer.indexOf('\r\n');
      if (at >= 0) {
        const line = this.#buffer.subarray(0, at).toString('latin1');
        this.#buffer = this.#buffer.subarray(at + 2);
        return line;
      }
      if (!(await this.#more(deadline))) throw new Error('connection ended mid-line');
    }
  }

  /**
   * Reads one response. `head`: the request was HEAD, so there is no body whatever the
   * headers say. Resolves undefined if the server closed without sending a byte.
   */
  async readResponse(
    options: { head?: boolean; timeoutMs?: number } = {},
  ): Promise<RawResponse | undefined> {
    const deadline = Date.now() + (options.timeoutMs ?? 10_000);
    while (this.#buffer.length === 0) {
      if (!(await this.#more(deadline))) return undefined;
    }
    const statusLine = await this.#line(deadline);
    const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(statusLine);
    if (!m) throw new Error(`not an HTTP status line: ${JSON.stringify(statusLine)}`);
    const status = Number(m[1]);
    const rawHeaders: [string, string][] = [];
    const headers: Record<string, string> = {};
    for (;;) {
      const line = await this.#line(deadline);
      if (line === '') break;
      const colon = line.indexOf(':');
      if (colon <= 0) throw new Error(`bad header line: ${JSON.stringify(line)}`);
      const name = line.slice(0, colon);
      const value = line.slice(colon + 1).trim();
      rawHeaders.push([name, value]);
      const key = name.toLowerCase();
      headers[key] = key in headers ? `${headers[key]}, ${value}` : value;
    }
    const noBody = options.head || status === 204 || status === 304 || status < 200;
    const chunked = /\bchunked\b/i.test(headers['transfer-encoding'] ?? '');
    let body = Buffer.alloc(0);
    if (noBody) {
      // nothing
    } else if (chunked) {
      const parts: Buffer[] = [];
      for (;;) {
        const size = parseInt((await this.#line(deadline)).split(';')[0]!, 16);
        if (Number.isNaN(size)) throw new Error('bad chunk size');
        if (size === 0) {
          while ((await this.#line(deadline)) !== '');
          break;
        }
        parts.push(await this.#take(size, deadline));
        if ((await this.#take(2, deadline)).toString() !== '\r\n') {
          throw new Error('chunk not followed by CRLF');
        }
      }
      body = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined) {
      body = Buffer.from(await this.#take(Number(headers['content-length']), deadline));
    } else {
      while (await this.#more(deadline));
      body = this.#buffer;
      this.#buffer = Buffer.alloc(0);
    }
    return { status, headers, rawHeaders, body, chunked };
  }

  /** Resolves when the server has closed the connection (or after `timeoutMs`). */
  async waitEnded(timeoutMs = 5_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    try {
      while (await this.#more(deadline));
    } catch {
      // timed out
    }
    return this.#ended;
  }

  get error(): Error | undefined {
    return this.#error;
  }
}

/**
 * Sends `request` (bytes exactly as given) on a fresh connection, reads one response and
 * closes. For one-off raw requests; `head` as in {@link RawConnection.readResponse}.
 */
export async function rawRequest(
  port: number,
  request: Buffer | string,
  options: { head?: boolean } = {},
): Promise<RawResponse> {
  const conn = await RawConnection.open(port);
  try {
    await conn.write(request);
    const res = await conn.readResponse(options);
    if (!res) throw new Error('server closed the connection without answering');
    return res;
  } finally {
    conn.destroy();
  }
}

/** `METHOD path HTTP/1.1` with a Host header, `Connection: close` and the given extras. */
export function rawHead(
  method: string,
  path: string,
  port: number,
  extra: Record<string, string | number> = {},
): string {
  const lines = [`${method} ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`, 'Connection: close'];
  for (const [k, v] of Object.entries(extra)) lines.push(`${k}: ${v}`);
  return lines.join('\r\n') + '\r\n\r\n';
}

/** /metrics as samples: name, labels, value. */
export async function metrics(
  base: string,
): Promise<(name: string, where?: Record<string, string>) => number> {
  const res = await httpRequest(base, '/metrics');
  assert.equal(res.status, 200);
  const samples: { name: string; labels: Record<string, string>; value: number }[] = [];
  for (const line of res.body.toString().split('\n')) {
    const m = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return (name, where = {}) => {
    const found = samples.filter(
      (s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v),
    );
    assert.ok(found.length > 0, `/metrics has no ${name} ${JSON.stringify(where)}`);
    return found.reduce((total, s) => total + s.value, 0);
  };
}
