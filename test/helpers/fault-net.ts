import net from 'node:net';
import { httpRequest } from './server-http.js';

/** One probe request: when it started, how long it took, and whether it got what it should. */
export interface Probe {
  at: number;
  ms: number;
  ok: boolean;
  what: string;
}

/**
 * A well-behaved client running alongside a fault: every `intervalMs` a GET /version on a
 * new connection, and every fourth round a PUT and GET of a small file, each with its
 * latency. Proves the server keeps serving others while something misbehaves.
 */
export class Prober {
  readonly probes: Probe[] = [];
  readonly #url: string;
  readonly #intervalMs: number;
  #running = false;
  #loop: Promise<void> | undefined;

  constructor(url: string, intervalMs = 100) {
    this.#url = url;
    this.#intervalMs = intervalMs;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
  }

  /** Probes started at or after `since` (a Date.now() value). */
  since(since: number): Probe[] {
    return this.probes.filter((p) => p.at >= since);
  }

  async #one(what: string, fn: () => Promise<boolean>): Promise<void> {
    const at = Date.now();
    let ok = false;
    try {
      ok = await Promise.race([
        fn(),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5_000).unref()),
      ]);
    } catch {
      ok = false;
    }
    this.probes.push({ at, ms: Date.now() - at, ok, what });
  }

  async #run(): Promise<void> {
    for (let round = 0; this.#running; round++) {
      await this.#one('GET /version', async () => {
        const res = await httpRequest(this.#url, '/version');
        return res.status === 200;
      });
      if (round % 4 === 0) {
        const name = `/probe/p${round % 40}`;
        const body = Buffer.from(`probe ${round}\n`);
        await this.#one(`PUT+GET ${name}`, async () => {
          const put = await httpRequest(
            this.#url,
            `/files${name}?last_modified=${encodeURIComponent(new Date().toUTCString())}`,
            { method: 'PUT', body },
          );
          if (put.status !== 200) return false;
          const get = await httpRequest(this.#url, `/files${name}`);
          return get.status === 200;
        });
      }
      await new Promise((r) => setTimeout(r, this.#intervalMs));
    }
  }
}

/** A client connection we keep open and watch: when it opened, whether and when it closed. */
export interface Watched {
  socket: net.Socket;
  openedAt: number;
  closedAt: number | undefined;
  /** Bytes the server sent. */
  received: Buffer;
}

/** Opens a connection to 127.0.0.1:`port` and watches it; resolves once connected. */
export function openWatched(port: number): Promise<Watched> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const w: Watched = { socket, openedAt: 0, closedAt: undefined, received: Buffer.alloc(0) };
    socket.on('data', (d: Buffer) => {
      w.received = Buffer.concat([w.received, d]);
    });
    socket.on('close', () => {
      w.closedAt = Date.now();
    });
    socket.once('error', (err) => {
      if (w.openedAt === 0) reject(err);
    });
    socket.once('connect', () => {
      w.openedAt = Date.now();
      // Errors after connecting (a reset by the server) end in 'close', which we record.
      socket.on('error', () => {});
      resolve(w);
    });
  });
}

/** Opens `count` watched connections, `batch` at a time (to stay within the listen backlog). */
export async function openMany(port: number, count: number, batch = 100): Promise<Watched[]> {
  const out: Watched[] = [];
  for (let i = 0; i < count; i += batch) {
    const n = Math.min(batch, count - i);
    out.push(...(await Promise.all(Array.from({ length: n }, () => openWatched(port)))));
  }
  return out;
}

/** Waits until `check()` or `timeoutMs`; returns the last result. */
export async function waitFor(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

/**
 * A TCP relay on 127.0.0.1 in front of a service (a database, an object store) that can be
 * made to go silent: {@link stall} keeps every connection open and accepts new ones, but
 * nothing passes either way (as a hung server or a black-holed network), until
 * {@link resume} delivers what was held. Clients see a slow service, not a refused one.
 */
export class StallingRelay {
  readonly #server: net.Server;
  readonly #pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  /** Chunks held while stalled, with where each goes, in order. */
  #held: { to: net.Socket; chunk: Buffer }[] = [];
  #stalled = false;
  /** While set, each request is answered with this HTTP response instead of relayed. */
  #answer: string | undefined;

  private constructor(server: net.Server) {
    this.#server = server;
  }

  /** A relay to 127.0.0.1:`targetPort` on a free port of its own. */
  static async start(targetPort: number): Promise<StallingRelay> {
    const server = net.createServer();
    const relay = new StallingRelay(server);
    server.on('connection', (client) => relay.#relay(client, targetPort));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    return relay;
  }

  get port(): number {
    return (this.#server.address() as net.AddressInfo).port;
  }

  #relay(client: net.Socket, targetPort: number): void {
    if (this.#answer !== undefined) {
      const answer = this.#answer;
      client.on('error', () => {});
      client.once('data', () => client.end(answer));
      return;
    }
    const upstream = net.connect({ host: '127.0.0.1', port: targetPort });
    const pair = { client, upstream };
    this.#pairs.add(pair);
    const forward = (to: net.Socket) => (chunk: Buffer) => {
      if (this.#stalled) this.#held.push({ to, chunk });
      else to.write(chunk);
    };
    client.on('data', forward(upstream));
    upstream.on('data', forward(client));
    const end = (): void => {
      this.#pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) {
      socket.on('error', end);
      socket.on('close', end);
    }
  }

  /**
   * From now on every HTTP request is answered `status` with `body` by the relay itself (a
   * gateway whose service fails: it is up and answers, with errors): open connections are
   * closed, each new one gets the answer to its first request and is closed. {@link pass}
   * ends it.
   */
  answerWith(status: number, body: string): void {
    this.#answer =
      `HTTP/1.1 ${status} Error\r\nContent-Type: application/xml\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
    for (const { client, upstream } of this.#pairs) {
      client.destroy();
      upstream.destroy();
    }
  }

  /** Relays again after {@link answerWith}. */
  pass(): void {
    this.#answer = undefined;
  }

  /** From now on nothing passes (connections stay open; new ones are accepted). */
  stall(): void {
    this.#stalled = true;
  }

  /** Passes again, first what was held. */
  resume(): void {
    this.#stalled = false;
    const held = this.#held;
    this.#held = [];
    for (const { to, chunk } of held) if (!to.destroyed) to.write(chunk);
  }

  /** Closes every connection and stops listening. */
  async close(): Promise<void> {
    for (const { client, upstream } of this.#pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.#pairs.clear();
    this.#held = [];
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
