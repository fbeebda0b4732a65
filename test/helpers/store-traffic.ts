import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { request, type IncomingHttpHeaders, type ClientRequest } from 'node:http';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { gzipSync } from 'node:zlib';
import { REPO_ROOT } from './server.js';

export const sha256 = (data: Buffer | string): string =>
  createHash('sha256').update(data).digest('hex');

/** A version as `last_modified` carries it (RFC 2822, IMF-fixdate). */
export const dateOf = (version: number): string => new Date(version * 1000).toUTCString();

/** The version a `Last-Modified` header names, or undefined. */
export function versionOf(header: string | null | undefined): number | undefined {
  if (!header) return undefined;
  const ms = Date.parse(header);
  return Number.isNaN(ms) ? undefined : ms / 1000;
}

/** `/files/<name>` percent-encoded as the Python client does, with `?last_modified=`. */
export function fileUrl(base: string, name: string, version?: number): string {
  const encoded = name
    .split('/')
    .map((c) => encodeURIComponent(c))
    .join('/');
  const query =
    version === undefined ? '' : `?last_modified=${encodeURIComponent(dateOf(version))}`;
  return `${base}/files${encoded}${query}`;
}

/** How a PUT body is sent. */
export type PutMode = 'gzip-hints' | 'gzip' | 'plain' | 'plain-checksum';

export interface PutResult {
  status: number;
  /** The version from `Last-Modified`. */
  version: number | undefined;
}

/** The body and headers of a PUT of `content` sent as `mode` says. */
export function putBody(
  content: Buffer,
  mode: PutMode,
): { body: Buffer; headers: Record<string, string> } {
  const headers: Record<string, string> = {};
  let body = content;
  if (mode === 'gzip-hints' || mode === 'gzip') {
    body = gzipSync(content);
    headers['Content-Encoding'] = 'gzip';
  }
  if (mode === 'gzip-hints') headers['Logical-Size'] = String(content.length);
  if (mode === 'gzip-hints' || mode === 'plain-checksum') {
    headers['SHA256-Checksum'] = sha256(content);
  }
  return { body, headers };
}

/** `PUT /files/<name>` with `content` sent as `mode` says (default: as the Python client). */
export async function putFile(
  base: string,
  name: string,
  content: Buffer,
  version: number,
  mode: PutMode = 'gzip-hints',
  extraHeaders: Record<string, string> = {},
): Promise<PutResult> {
  const { body, headers } = putBody(content, mode);
  const res = await fetch(fileUrl(base, name, version), {
    method: 'PUT',
    headers: { ...headers, ...extraHeaders },
    body,
  });
  await res.arrayBuffer();
  return { status: res.status, version: versionOf(res.headers.get('last-modified')) };
}

/** `DELETE /files/<name>?last_modified=<version>`; resolves with the status. */
export async function deleteFile(base: string, name: string, version: number): Promise<number> {
  const res = await fetch(fileUrl(base, name, version), { method: 'DELETE' });
  await res.arrayBuffer();
  return res.status;
}

export interface GetResult {
  status: number;
  version: number | undefined;
  body: Buffer;
  etag: string | null;
  logicalSize: string | null;
}

/** `GET /files/<name>`, gzip accepted (fetch inflates it) unless `plain`. */
export async function getFile(
  base: string,
  name: string,
  options: { plain?: boolean } = {},
): Promise<GetResult> {
  const res = await fetch(fileUrl(base, name), {
    headers: options.plain ? { 'Accept-Encoding': 'identity' } : {},
  });
  const body = Buffer.from(await res.arrayBuffer());
  return {
    status: res.status,
    version: versionOf(res.headers.get('last-modified')),
    body,
    etag: res.headers.get('etag'),
    logicalSize: res.headers.get('logical-size'),
  };
}

export interface ResponseInfo {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** A request whose body the test writes piece by piece (chunked unless a length is set). */
export interface SlowRequest {
  req: ClientRequest;
  /** Writes a piece of the body; resolves once it was handed to the socket. */
  write(chunk: Buffer | string): Promise<void>;
  /** Ends the body and resolves with the response. */
  end(): Promise<ResponseInfo>;
  /** The response, or a rejection when the connection fails first. */
  response: Promise<ResponseInfo>;
}

/** Starts a request and leaves the body open, for uploads in flight. */
export function slowRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string> } = {},
): SlowRequest {
  const req = request(url, { method: options.method ?? 'PUT', headers: options.headers });
  const response = new Promise<ResponseInfo>((resolve, reject) => {
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
    });
  });
  // Callers may abort on purpose; they look at `response` when they care.
  response.catch(() => {});
  req.flushHeaders();
  return {
    req,
    response,
    write: (chunk) =>
      new Promise<void>((resolve, reject) =>
        req.write(chunk, (err) => (err ? reject(err) : resolve())),
      ),
    end: () => {
      req.end();
      return response;
    },
  };
}

/** Polls `check` every 20 ms until it returns a truthy value; throws after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T> | T,
  timeoutMs = 5_000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A port that was free a moment ago (bound on 127.0.0.1:0 and released). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** A child process of this repo's bins, with its output collected. */
export interface Spawned {
  child: ChildProcess;
  stdoutLines: string[];
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends `signal` (default SIGKILL) unless it has exited; resolves when it has. */
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `node <bin> ...args`, or `command ...args` when `bin` is absolute (a shell shim). */
export function spawnBin(
  bin: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Spawned {
  const absolute = path.isAbsolute(bin);
  const child = spawn(
    absolute ? bin : process.execPath,
    absolute ? args : [path.join(REPO_ROOT, bin), ...args],
    { env: options.env ?? process.env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const stdoutLines: string[] = [];
  let stderr = '';
  createInterface({ input: child.stdout! }).on('line', (l) => stdoutLines.push(l));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    stdoutLines,
    stderr: () => stderr,
    exited,
    kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Resolves with the exit of `p`, or rejects after `timeoutMs` (killing it). */
export async function exitWithin(
  p: Spawned,
  timeoutMs: number,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      void p.kill();
      reject(new Error(`process did not exit within ${timeoutMs} ms; stderr: ${p.stderr()}`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([p.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits for the `listening` JSON line among `lines` (stdout, or a log file's) and returns its url. */
export async function listeningUrl(
  lines: () => string[] | Promise<string[]>,
  p: Spawned,
  timeoutMs = 15_000,
): Promise<string> {
  return waitFor(
    'the listening log line',
    async () => {
      if (p.child.exitCode !== null) {
        throw new Error(`exited with ${p.child.exitCode} before listening: ${p.stderr()}`);
      }
      for (const line of await lines()) {
        try {
          const rec = JSON.parse(line) as { msg?: string; url?: string };
          if (rec.msg === 'listening' && rec.url) return rec.url;
        } catch {
          // not JSON
        }
      }
      return undefined;
    },
    timeoutMs,
  );
}
