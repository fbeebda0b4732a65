import { formatWithOptions } from 'node:util';
import { RepeatFilter } from '../repeat-filter.js';

type Log = (details: Record<string, unknown>, message: string) => void;

/** The AWS SDK's logger interface (`S3ClientConfig['logger']`), in the part it calls. */
export interface SdkLogger {
  trace(...content: unknown[]): void;
  debug(...content: unknown[]): void;
  info(...content: unknown[]): void;
  warn(...content: unknown[]): void;
  error(...content: unknown[]): void;
}

/** One line of the same text is logged at most this often; the repeats in between are counted. */
export const SDK_LOG_INTERVAL_MS = 60_000;

/**
 * A logger for the AWS SDK that sends its warnings and errors to `warn` as one structured
 * line (`{ service, level, sdk, repeated }`), and drops its debug and info. Without one the
 * SDK writes some warnings to the console itself: "An error was encountered in a
 * non-retryable streaming request." on every failed upload, unstructured, a line per
 * request while the object store is down. Here a given text is logged at most once per
 * {@link SDK_LOG_INTERVAL_MS}; the next line of it says how many were left out.
 *
 * The SDK also logs every failed command as an object naming its input (the bucket and the
 * key, different for each blob): that is logged as its command and error only ("GetObject:
 * Error: connect ECONNREFUSED …"), so that an outage is one line a minute per command and
 * error, not a line per request. A 404 is an answer the caller handles (a blob or bucket
 * that is not there yet): not logged.
 */
export function sdkLogger(warn: Log, now: () => number = Date.now): SdkLogger {
  const repeats = new RepeatFilter(SDK_LOG_INTERVAL_MS, 256, now);
  const log =
    (level: 'warn' | 'error') =>
    (...content: unknown[]): void => {
      const failed = failedCommand(content);
      if (failed === null) return;
      const text = failed ?? flat(formatWithOptions({ breakLength: Infinity }, ...content));
      const repeated = repeats.admit(text);
      if (repeated === undefined) return;
      warn(
        { service: 'object store', level, sdk: text, repeated },
        `object store client ${level === 'error' ? 'error' : 'warning'}: ${text}`,
      );
    };
  const drop = (): void => {};
  return { trace: drop, debug: drop, info: drop, warn: log('warn'), error: log('error') };
}

/**
 * The SDK's record of a failed command (`{ clientName, commandName, input, error, metadata }`)
 * as "command: error" on one line; null for a 404 (not logged); undefined for anything else.
 */
function failedCommand(content: unknown[]): string | null | undefined {
  const record = content.length === 1 ? content[0] : undefined;
  if (typeof record !== 'object' || record === null) return undefined;
  const { commandName, error } = record as { commandName?: unknown; error?: unknown };
  if (typeof commandName !== 'string' || error === undefined) return undefined;
  const status = (error as { $metadata?: { httpStatusCode?: unknown } } | null)?.$metadata
    ?.httpStatusCode;
  if (status === 404) return null;
  const why =
    error instanceof Error
      ? `${error.name}: ${error.message}`
      : formatWithOptions({ breakLength: Infinity }, error);
  return `${commandName.replace(/Command$/, '')}: ${flat(why)}`;
}

/** `text` on one line: each line break and the blanks around it become one space. */
function flat(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}
