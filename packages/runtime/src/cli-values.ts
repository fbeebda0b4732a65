import { InvalidArgumentError } from 'commander';

/*
 * The option values of every tool, parsed one way with one message per kind. commander
 * prints the message after the option and the value it refused (`option '-p, --port
 * <PORT>' argument '70000' is invalid. expected a port number from 0 to 65535.`) and the
 * tool exits 2 (see cli-error.ts).
 */

/** A TCP port, 0 (any free port) to 65535. */
export function portNumber(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n > 65535) {
    throw new InvalidArgumentError('expected a port number from 0 to 65535.');
  }
  return n;
}

/** A parser of whole numbers from `min` to `max` (a count of workers, retries, ms...). */
export function wholeNumber(min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || n < min || n > max) {
      throw new InvalidArgumentError(
        max === Number.MAX_SAFE_INTEGER
          ? `expected a whole number of at least ${min}.`
          : `expected a whole number from ${min} to ${max}.`,
      );
    }
    return n;
  };
}

/** A duration in seconds, above 0; fractions allowed (`0.5`). */
export function positiveSeconds(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) {
    throw new InvalidArgumentError('expected a positive number of seconds.');
  }
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
export function byteSize(value: string): number {
  const m = /^(\d+)\s*(?:([kmgt])(?:ib)?)?$/i.exec(value.trim());
  const n = m ? Number(m[1]) * SIZE_UNITS[(m[2] ?? '').toLowerCase()]! : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new InvalidArgumentError('expected a size: bytes, or a number with K, M, G or T (16G).');
  }
  return n;
}

/** An http: or https: URL, returned as given. */
export function httpUrl(value: string): string {
  try {
    const url = new URL(value);
    if (url.protocol === 'http:' || url.protocol === 'https:') return value;
  } catch {
    // fall through
  }
  throw new InvalidArgumentError('expected an http(s) URL such as http://127.0.0.1:9999.');
}
