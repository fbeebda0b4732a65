import { request } from 'node:http';
import type { TestContext } from 'node:test';
import { SWIFT_S3_ENV } from './scale-out.js';
import { fileUrl, listeningUrl, spawnBin, type Spawned } from './store-traffic.js';

/** ft-server processes on the scale-out backend, for the tests of many processes on one store. */

export const FT_SERVER = 'packages/server/bin/ft-server.mjs';

/** A JSON log line of ft-server. */
export type LogLine = { msg?: string } & Record<string, unknown>;

export interface FtProcess {
  url: string;
  proc: Spawned;
  /** The JSON lines it has logged on stdout so far. */
  lines(): LogLine[];
}

function parsed(proc: Spawned): LogLine[] {
  const out: LogLine[] = [];
  for (const line of proc.stdoutLines) {
    try {
      out.push(JSON.parse(line) as LogLine);
    } catch {
      // not JSON
    }
  }
  return out;
}

/**
 * `ft-server -p 0 ...args` with Swift's S3 credentials; resolves once it logged `listening`.
 * Killed (SIGKILL) when the test ends if still alive.
 */
export async function startFtServer(t: TestContext, args: string[]): Promise<FtProcess> {
  const proc = spawnBin(FT_SERVER, ['-p', '0', ...args], {
    env: { ...process.env, ...SWIFT_S3_ENV },
  });
  t.after(() => proc.kill());
  // Under the load of several test runs, opening the bucket and the schema takes seconds.
  const url = await listeningUrl(() => proc.stdoutLines, proc, 60_000);
  return { url, proc, lines: () => parsed(proc) };
}

/**
 * GET of `name` on a connection of its own (closed after), so that each request is
 * accepted by a worker anew; resolves with the status, the network error's code, or
 * `no answer within N ms` (a connection left waiting, the bug this helper was made for).
 */
export function getOnNewConnection(
  base: string,
  name: string,
  timeoutMs = 10_000,
): Promise<number | string> {
  return new Promise((resolve) => {
    const req = request(fileUrl(base, name), { agent: false, headers: { Connection: 'close' } });
    req.setTimeout(timeoutMs, () => {
      resolve(`no answer within ${timeoutMs} ms`);
      req.destroy();
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
    req.end();
  });
}
