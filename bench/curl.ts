import { run } from './proc.js';

/** One transfer as curl measured it. */
export interface CurlResult {
  status: number;
  /** Body bytes on the wire (before any decoding). */
  bytes: number;
  seconds: number;
}

async function curl(bin: string, args: string[]): Promise<CurlResult> {
  const r = await run(bin, [
    '-sS',
    '-o',
    '/dev/null',
    '-w',
    '%{http_code} %{size_download} %{size_upload} %{time_total}',
    ...args,
  ]);
  const [status, down, up, total] = r.stdout.trim().split(' ').map(Number);
  if (r.code !== 0 || status === undefined || total === undefined) {
    throw new Error(`curl ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
  }
  return { status, bytes: Math.max(down ?? 0, up ?? 0), seconds: total };
}

/**
 * GET `url` to /dev/null. `inflate`: `--compressed` (curl asks for gzip and inflates it,
 * like a Python client); otherwise it sends the Python client's `Accept-Encoding: gzip,
 * deflate` and keeps the bytes as they come.
 */
export function curlGet(bin: string, url: string, inflate: boolean): Promise<CurlResult> {
  return curl(bin, inflate ? ['--compressed', url] : ['-H', 'Accept-Encoding: gzip, deflate', url]);
}

/** PUT the file `body` to `url` with `headers` (no `Expect: 100-continue`, as Python's requests). */
export function curlPut(
  bin: string,
  url: string,
  body: string,
  headers: Record<string, string>,
): Promise<CurlResult> {
  const h = Object.entries({ ...headers, Expect: '' }).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
  return curl(bin, ['-T', body, ...h, url]);
}
