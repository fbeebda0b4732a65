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
  /** What pino writes its lines to (as `pino(options, destination)` or `pino(destination)`). */
  destination: pino.DestinationStream & { writable: true };
  /** Reopens the file (after logrotate moved it); a no-op for stdout. */
  reopen(): void;
  /** Writes out what is buffered; call before exiting. */
  flush(): void;
  /** Writes out what is buffered and closes the file; later lines are dropped. */
  close(): void;
}

/** Lines are written once about this many characters are held... */
const BATCH_CHARS = 64 * 1024;
/** ...or after this long, whichever comes first. */
const FLUSH_MS = 1000;
/**
 * When the log cannot be written (a full disk), lines are kept for a later try up to this
 * many bytes, then dropped: a log must not grow the server's memory without bound.
 */
const MAX_PENDING_BYTES = 16 * 1024 * 1024;

/**
 * The log destination of both servers: lines gathered in memory and written to the file
 * in one synchronous write per 64 KiB, and at least once a second, the way nginx's
 * `access_log ... buffer=64k flush=1s` writes from its worker. pino hands each line over
 * at once and in order, so request lines and other lines stay in the order they were
 * logged.
 *
 * Why: at tens of thousands of requests a second the log is megabytes a second. Written a
 * line at a time, or asynchronously in 4 KiB batches (sonic-boom's `minLength`), each write
 * was a trip through libuv's thread pool and back; and sonic-boom, appending to its pending
 * string, measures it whole on every line. ft-legacy-static served about 15% fewer small
 * GETs with its log on than off; in 64 KiB synchronous writes (about 140 a second at
 * 50,000 requests a second, each a copy into the page cache) the log costs a few percent.
 * The write blocks the event loop only as long as the kernel takes to take 64 KiB.
 *
 * What can be lost: the last second of lines if the process is SIGKILLed. What is held is
 * written at a clean stop (the owner's flush()) and when the process exits for any other
 * reason, an uncaught exception included ('exit' handler).
 */
export function bufferedLogDestination(options: LogDestinationOptions): LogDestination {
  const file = pino.destination({
    dest: options.file ?? 1,
    sync: true,
    mkdir: options.mkdir ?? false,
    maxLength: MAX_PENDING_BYTES,
  });
  // A log that cannot be written (a full disk) must not take the file server down with it.
  let lastError: string | undefined;
  file.on('error', (err: NodeJS.ErrnoException) => {
    const what = err.code ?? err.message;
    if (what === lastError) return; // once per kind of failure, not once per batch
    lastError = what;
    process.stderr.write(`${options.name}: cannot write the log: ${what}\n`);
  });
  file.on('write', () => (lastError = undefined));

  let lines: string[] = [];
  let chars = 0;
  let closed = false;
  const writeOut = (): void => {
    if (lines.length === 0 || closed) return;
    const text = lines.length === 1 ? lines[0]! : lines.join('');
    lines = [];
    chars = 0;
    try {
      file.write(text);
    } catch {
      // Destroyed: the process is stopping.
    }
  };
  const destination = {
    writable: true as const, // how pino(destination) tells a stream from options
    write(line: string): void {
      lines.push(line);
      chars += line.length;
      if (chars >= BATCH_CHARS) writeOut();
    },
  };
  const timer = setInterval(writeOut, FLUSH_MS).unref();
  process.on('exit', writeOut);
  return {
    destination,
    reopen() {
      if (options.file === undefined) return;
      writeOut(); // what was logged before the rotation goes to the old file
      file.reopen();
    },
    flush: writeOut,
    close() {
      if (closed) return;
      writeOut();
      closed = true;
      clearInterval(timer);
      process.off('exit', writeOut);
      file.end();
    },
  };
}
