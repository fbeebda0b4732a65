import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { Command, InvalidArgumentError, Option } from 'commander';
import { answerHalfClosedClients, expandLongOptionPrefixes } from '@filetracker/shared-protocol';
import { DEFAULT_MAX_FILE_BYTES } from './http/app.js';
import { FallbackProbe } from './http/fallback-probe.js';
import { createRequestListener } from './http/fast-path.js';
import { createLogger } from './logger.js';
import { Store, StoreOpenError } from './store/store.js';

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError('not a port number');
  return n;
}

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('not a positive number');
  return n;
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
};

/** Bytes, or a whole number with K, M, G or T (powers of 1024; `16G` and `16GiB` alike). */
function byteSize(value: string): number {
  const m = /^(\d+)\s*(?:([kmgt])(?:ib)?)?$/i.exec(value.trim());
  const n = m ? Number(m[1]) * SIZE_UNITS[(m[2] ?? '').toLowerCase()]! : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new InvalidArgumentError('not a size (bytes, or a number with K, M, G or T: 16G)');
  }
  return n;
}

function url(value: string): string {
  try {
    const u = new URL(value);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error();
  } catch {
    throw new InvalidArgumentError('not an http(s) URL');
  }
  return value;
}

/** The option table: parsing and --help come from this one list (STYLE.md). */
function program(): Command {
  return new Command('ft-server')
    .description(
      'The filetracker 2.x file server (protocol version 2), a drop-in for the Python ' +
        'filetracker-server. Stores files in DIR; always runs in the foreground.',
    )
    .addOption(
      new Option(
        '-d, --dir <DIR>',
        'store directory (blobs/, links/, meta/, ft-tmp/); created if missing',
      )
        .env('FILETRACKER_DIR')
        .default('./ft-data'),
    )
    .addOption(new Option('-l, --listen-on <ADDR>', 'address to listen on').default('127.0.0.1'))
    .addOption(
      new Option('-p, --port <PORT>', 'port to listen on (0: any free port)')
        .default(9999)
        .argParser(port),
    )
    .addOption(
      new Option(
        '-L, --log <FILE>',
        'append JSON logs to FILE instead of stdout; reopened on SIGHUP',
      ),
    )
    .addOption(
      new Option('--log-level <LEVEL>', 'log level')
        .choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
        .default('info'),
    )
    .addOption(
      new Option(
        '--log-config <FILE>',
        'accepted for compatibility with the Python server and ignored (it took a Python logging config); use --log and --log-level',
      ),
    )
    .addOption(
      new Option(
        '-D, --no-daemon',
        'accepted for compatibility; this server never daemonizes (run it under systemd or a supervisor)',
      ),
    )
    .addOption(
      new Option(
        '--workers <N>',
        'accepted for compatibility (Python ran N gunicorn workers); this server is one process whose I/O is asynchronous, so N is ignored',
      ),
    )
    .addOption(
      new Option(
        '--fallback-url <URL>',
        'migration mode: answer GET/HEAD of names this store lacks with a 307 to URL/files/NAME (the 1.x store served by ft-legacy-static); URL is probed every 5 s (HEAD /) and a dead or hung fallback shows in /healthz, /status and /metrics',
      ).argParser(url),
    )
    .addOption(
      new Option(
        '--legacy-timeout <SECONDS>',
        "migration mode: how long a DELETE waits for the fallback's answer; then a name only the fallback has is 504, one this store holds is deleted",
      )
        .default(10)
        .argParser(positive),
    )
    .addOption(
      new Option(
        '--idle-timeout <SECONDS>',
        'drop a connection that sends or accepts nothing for this long (uploads that keep moving are never cut off)',
      )
        .default(120)
        .argParser(positive),
    )
    .addOption(
      new Option(
        '--max-file-size <SIZE>',
        'refuse (413) a PUT of a file larger than SIZE uncompressed, as soon as its body passes SIZE; SIZE is bytes or has a K, M, G or T suffix (powers of 1024)',
      )
        .default(DEFAULT_MAX_FILE_BYTES, '16G')
        .argParser(byteSize),
    )
    .showHelpAfterError('(run ft-server --help for usage)');
}

interface Flags {
  dir: string;
  listenOn: string;
  port: number;
  log?: string;
  logLevel: string;
  logConfig?: string;
  workers?: string;
  fallbackUrl?: string;
  legacyTimeout: number;
  idleTimeout: number;
  maxFileSize: number;
}

/** Parses flags, opens the store, listens, and stops cleanly on SIGTERM/SIGINT. */
export async function main(argv: string[]): Promise<void> {
  const cmd = program();
  const longNames = cmd.options.map((o) => o.long).filter((n): n is string => n !== undefined);
  cmd.parse([...argv.slice(0, 2), ...expandLongOptionPrefixes(argv.slice(2), longNames)]);
  const flags = cmd.opts<Flags>();

  const { logger, reopen, flush } = createLogger({ file: flags.log, level: flags.logLevel });
  if (flags.logConfig !== undefined)
    logger.warn({ logConfig: flags.logConfig }, '--log-config is ignored');
  if (flags.workers !== undefined)
    logger.info({ workers: flags.workers }, '--workers is ignored: one process');

  let store: Store;
  try {
    store = await Store.open(flags.dir, {
      warn: (details, message) => logger.warn(details, message),
    });
  } catch (err) {
    if (err instanceof StoreOpenError) {
      console.error(`ft-server: ${err.message}`);
    } else {
      console.error(`ft-server: cannot open store ${flags.dir}: ${(err as Error).message}`);
    }
    flush();
    process.exitCode = 1;
    return;
  }
  if (store.tmpLeftovers > 0) {
    logger.warn(
      { count: store.tmpLeftovers },
      'removed leftovers of interrupted uploads from ft-tmp/',
    );
  }

  const fallbackProbe =
    flags.fallbackUrl === undefined
      ? undefined
      : new FallbackProbe(flags.fallbackUrl, { timeoutMs: flags.legacyTimeout * 1000, logger });
  // Check header and request deadlines every 5 s rather than Node's 30 s, so a client that
  // trickles its headers is cut off near headersTimeout, not up to half a minute later.
  const server: Server = createServer(
    { connectionsCheckingInterval: 5_000 },
    createRequestListener(store, {
      logger,
      fallbackUrl: flags.fallbackUrl,
      fallbackTimeoutMs: flags.legacyTimeout * 1000,
      fallbackProbe,
      maxFileBytes: flags.maxFileSize,
    }),
  );
  // Slow uploads must not be cut off (Node's default requestTimeout is 5 minutes); idle and
  // stalled connections still are, by the socket inactivity timeout and headersTimeout.
  server.requestTimeout = 0;
  server.headersTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  server.setTimeout(flags.idleTimeout * 1000);
  answerHalfClosedClients(server);
  // Signals are trapped before listening: a SIGTERM right after start still stops cleanly.
  process.on('SIGHUP', () => {
    reopen();
    logger.info('log file reopened');
  });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping: finishing requests in flight');
    void fallbackProbe?.close();
    // Connections that finish a request during shutdown become idle: drop them at once
    // rather than after the keep-alive timeout.
    setInterval(() => server.closeIdleConnections(), 100).unref();
    server.close(() => {
      store
        .close()
        .then(() => {
          logger.info('stopped');
          flush();
          process.exit(0);
        })
        .catch((err: unknown) => {
          logger.error({ err }, 'closing the store failed');
          flush();
          process.exit(1);
        });
    });
    server.closeIdleConnections();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  server.listen(flags.port, flags.listenOn);
  try {
    await Promise.race([
      once(server, 'listening'),
      once(server, 'error').then(([e]) => Promise.reject(e)),
    ]);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    console.error(
      code === 'EADDRINUSE'
        ? `ft-server: ${flags.listenOn}:${flags.port} is already in use; pick another --port`
        : `ft-server: cannot listen on ${flags.listenOn}:${flags.port}: ${(err as Error).message}`,
    );
    await Promise.all([store.close(), fallbackProbe?.close()]);
    flush();
    process.exitCode = 1;
    return;
  }
  const address = server.address();
  const actualPort = typeof address === 'object' && address ? address.port : flags.port;
  logger.info(
    {
      url: `http://${flags.listenOn}:${actualPort}`,
      dir: store.layout.root,
      fallbackUrl: flags.fallbackUrl,
    },
    'listening',
  );
}
