import { formatWithOptions } from 'node:util';

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
/** Texts remembered at most (their repeat counts are dropped beyond). */
const MAX_TEXTS = 256;

/**
 * A logger for the AWS SDK that sends its warnings and errors to `warn` as one structured
 * line (`{ service, level, sdk, repeated }`), and drops its debug and info. Without one the
 * SDK writes some warnings to the console itself: "An error was encountered in a
 * non-retryable streaming request." on every failed upload, unstructured, a line per
 * request while the object store is down. Here a given text is logged at most once per
 * {@link SDK_LOG_INTERVAL_MS}; the next line of it says how many were left out.
 */
export function sdkLogger(warn: Log, now: () => number = Date.now): SdkLogger {
  /** Per text: when it was last logged, and the repeats since. */
  const seen = new Map<string, { at: number; repeated: number }>();
  const log =
    (level: 'warn' | 'error') =>
    (...content: unknown[]): void => {
      const text = formatWithOptions({ breakLength: Infinity }, ...content)
        .replace(/\s*\n\s*/g, ' ')
        .trim();
      const t = now();
      const last = seen.get(text);
      if (last !== undefined && t - last.at < SDK_LOG_INTERVAL_MS) {
        last.repeated++;
        return;
      }
      // Forget texts logged an interval ago and not repeated since (a repeated one keeps its
      // count for its next line); a bound in case the SDK's texts vary.
      for (const [key, entry] of seen) {
        if (t - entry.at >= SDK_LOG_INTERVAL_MS && entry.repeated === 0) seen.delete(key);
      }
      if (seen.size >= MAX_TEXTS) seen.clear();
      seen.set(text, { at: t, repeated: 0 });
      warn(
        { service: 'object store', level, sdk: text, repeated: last?.repeated ?? 0 },
        `object store client ${level === 'error' ? 'error' : 'warning'}: ${text}`,
      );
    };
  const drop = (): void => {};
  return { trace: drop, debug: drop, info: drop, warn: log('warn'), error: log('error') };
}
