import type { LoggerOptions as PinoOptions } from 'pino';

let lastMs = -1;
let lastTime = '';

/**
 * pino's `timestamp` for both servers: `,"time":"2026-01-31T23:59:59.123Z"`, as
 * `pino.stdTimeFunctions.isoTime` writes it, an ISO 8601 UTC time an operator reads at a
 * glance and any tool parses (issue 17: epoch milliseconds were neither). The text is made
 * once per millisecond: at tens of thousands of request lines a second, toISOString on
 * every line cost more than the rest of the line.
 */
export function isoTime(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    lastTime = `,"time":"${new Date(now).toISOString()}"`;
  }
  return lastTime;
}

/**
 * The pino options that make the one log schema of both servers (docs/OPERATIONS.md,
 * "Log lines"): `level` as its name (`"info"`, not 30), `time` as ISO 8601, and `pid`,
 * `hostname` and `name` on every line.
 */
export function logFormat(name: string): PinoOptions {
  return {
    name,
    timestamp: isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
}
