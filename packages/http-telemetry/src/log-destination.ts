import { pino } from 'pino';

/** Options of {@link bufferedLogDestination}. */
export interface LogDestinationOptions {
  /** A file to append to; stdout when absent. */
  file?: string | undefined;
  /** Create the file's directory if missing. */
  mkdir?: boolean;
  /** The program's name, for the line on stderr when the log cannot be written. */
  name: string;
}

/** A pino destination, with what its owner must do to it. */
export interface LogDestination {
  destination: ReturnType<typeof pino.destination>;
  /** Reopens the file (after logrotate moved it); a no-op for stdout. */
  reopen(): void;
  /** Writes out what is buffered, synchronously; call before exiting. */
  flush(): void;
}

/** Lines are written once this much is buffered... */
const BUFFER_BYTES = 4096;
/** ...or after this long, whichever comes first. */
const FLUSH_MS = 1000;

/**
 * The log destination of both servers: pino.destination (sonic-boom), asynchronous, with
 * lines gathered into writes of about 4 KiB and written out at least once a second, the
 * way nginx's `access_log ... buffer=4k flush=1s` does.
 *
 * Why: without a buffer sonic-boom writes each line as it comes, and each write is a trip
 * through libuv's thread pool, waking a thread and then the event loop. At tens of
 * thousands of requests a second that cost ft-legacy-static about 15% of its small-file
 * GETs (wrk, 8 connections, A/B in one run). What can be lost: the last second of lines
 * if the process is SIGKILLed. Everything buffered is written at a clean stop, by the
 * owner's flush(), and when the process exits for any other reason (an uncaught
 * exception included), by pino's own exit hook for asynchronous destinations.
 */
export function bufferedLogDestination(options: LogDestinationOptions): LogDestination {
  const destination = pino.destination({
    dest: options.file ?? 1,
    sync: false,
    minLength: BUFFER_BYTES,
    mkdir: options.mkdir ?? false,
  });
  // A log that cannot be written (a full disk) must not take the file server down with it.
  destination.on('error', (err: NodeJS.ErrnoException) => {
    process.stderr.write(`${options.name}: cannot write the log: ${err.code ?? err.message}\n`);
  });
  const flush = (): void => {
    try {
      destination.flushSync();
    } catch {
      // Not open yet, or the disk is gone: nothing more can be written anyway.
    }
  };
  // sonic-boom's own count of buffered characters: no empty write each idle second.
  const buffered = destination as unknown as { _len?: number };
  setInterval(() => {
    try {
      if ((buffered._len ?? 1) > 0) destination.flush(); // a no-op while a write is under way
    } catch {
      // Destroyed: the process is stopping.
    }
  }, FLUSH_MS).unref();
  return {
    destination,
    reopen() {
      if (options.file !== undefined) destination.reopen();
    },
    flush,
  };
}
