import { pino, type Logger } from 'pino';

/** The parts of a pino destination (sonic-boom) the access log writes to. */
interface Destination {
  write(line: string): unknown;
}

/**
 * The request log of both servers: one JSON line per request, in one schema, so an
 * operator reading ft-server's and ft-legacy-static's logs side by side (or one tool over
 * both) finds the same fields:
 *
 *     {"level":30,"time":1700000000000,"pid":4242,"hostname":"judge1","name":"ft-server",
 *      "method":"GET","path":"/files/a?last_modified=...","status":200,"bodyBytesIn":0,
 *      "bodyBytesOut":1234,"ms":0.42,"msg":"request"}
 *
 * `path` is the request target as sent, `bodyBytesIn` and `bodyBytesOut` the body bytes received and sent (no headers), `ms` the time
 * from the request to the end of the answer (to 0.01 ms); `name`, `pid` and `hostname`
 * come from the logger (createLogger).
 *
 * The line is the one `logger.info({...fields}, 'request')` would write, built by hand:
 * measured on small-file GETs (wrk, 8 connections), pino's generic serialisation of the
 * request object cost 15% of ft-server's throughput. The fields are fixed, so the line is
 * a template: numbers as they are, strings through JSON.stringify, the logger's bindings
 * as pino formatted them. It goes to the logger's own destination, so `-L` files, SIGHUP
 * reopening and flushing are unchanged.
 */
export class AccessLog {
  readonly #logger: Logger;
  readonly #destination: Destination;
  readonly #bindings: string;

  constructor(logger: Logger) {
    this.#logger = logger;
    const symbols = pino.symbols as unknown as { streamSym: symbol; chindingsSym: symbol };
    const internals = logger as unknown as Record<symbol, unknown>;
    this.#destination = internals[symbols.streamSym] as Destination;
    this.#bindings = (internals[symbols.chindingsSym] as string | undefined) ?? '';
  }

  /** Whether lines are written at all (the logger's level is info or lower). */
  get enabled(): boolean {
    return this.#logger.isLevelEnabled('info');
  }

  /** Writes the line of one finished request (see the class comment for the fields). */
  request(
    method: string,
    path: string,
    status: number,
    bodyBytesIn: number,
    bodyBytesOut: number,
    ms: number,
  ): void {
    this.#destination.write(
      `{"level":30,"time":${Date.now()}${this.#bindings},"method":${JSON.stringify(method)},` +
        `"path":${JSON.stringify(path)},"status":${status},"bodyBytesIn":${bodyBytesIn},` +
        `"bodyBytesOut":${bodyBytesOut},"ms":${Math.round(ms * 100) / 100},"msg":"request"}\n`,
    );
  }
}
