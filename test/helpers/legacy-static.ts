import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { request, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The ft-legacy-static bin, as an operator runs it. */
export const LEGACY_BIN = fileURLToPath(
  new URL('../../../packages/legacy-static/bin/ft-legacy-static.mjs', import.meta.url),
);

export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/**
 * One request through node:http (no normalizing, no decompressing): `path` is sent as is.
 * `timeoutMs`: fails once the connection has been idle that long (a server that hangs).
 */
export function httpRequest(
  base: string,
  path: string,
  options: {
    method?: string;
    headers?: Record<string, string>;
    body?: string | Buffer;
    timeoutMs?: number;
  } = {},
): Promise<HttpAnswer> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path,
        method: options.method ?? 'GET',
        headers: {
          ...options.headers,
          ...(options.body === undefined
            ? {}
            : { 'Content-Length': String(Buffer.byteLength(options.body)) }),
        },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (options.timeoutMs !== undefined) {
      req.setTimeout(options.timeoutMs, () =>
        req.destroy(new Error(`no answer to ${path} within ${options.timeoutMs} ms`)),
      );
    }
    req.end(options.body);
  });
}

/**
 * Sends `GET {target}` byte for byte over a socket (fetch and node:http would normalize
 * or refuse some targets) and returns the status and the whole raw answer.
 */
export async function rawGet(
  base: string,
  target: string,
): Promise<{ status: number; raw: string }> {
  const url = new URL(base);
  const socket = connect(Number(url.port), url.hostname);
  await once(socket, 'connect');
  // No half-close here: test/half-close.test.ts tests that case on its own.
  socket.write(`GET ${target} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n\r\n`);
  const chunks: Buffer[] = [];
  for await (const chunk of socket) chunks.push(chunk as Buffer);
  const raw = Buffer.concat(chunks).toString('latin1');
  const match = /^HTTP\/1\.1 (\d{3})/.exec(raw);
  return { status: match ? Number(match[1]) : 0, raw };
}

/** A running ft-legacy-static process and the JSON lines it printed so far. */
export interface LegacyProcess {
  child: ChildProcess;
  url: string;
  lines: Record<string, unknown>[];
  /** Resolves with the exit code (or the signal's name) once the process is gone. */
  exited: Promise<number | string>;
  /** The worker processes the listening line named (--workers above 1), else empty. */
  workers: number[];
  /** What the process wrote to stderr so far. */
  stderr(): string;
  /** SIGKILLs the process and its workers if they still run; safe to call twice. */
  kill(): Promise<void>;
}

/** Whether a process of this pid exists. */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts the bin with `args` and waits (10 s at most) for its `listening` line, read from
 * stdout, or from `logFile` when the process logs there (`-L`).
 */
export async function startLegacy(args: string[], logFile?: string): Promise<LegacyProcess> {
  const child = spawn(process.execPath, [LEGACY_BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)),
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines: Record<string, unknown>[] = [];
  createInterface({ input: child.stdout! }).on('line', (text) => lines.push(parseLine(text)));
  let workers: number[] = [];
  const kill = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
    for (const pid of workers) if (isRunning(pid)) process.kill(pid, 'SIGKILL');
  };
  const end = Date.now() + 10_000;
  let listening: Record<string, unknown> | undefined;
  while (listening === undefined) {
    const seen = logFile === undefined ? lines : (await readLines(logFile)).map(parseLine);
    listening = seen.find((l) => l.msg === 'listening');
    if (listening !== undefined) break;
    if (child.exitCode !== null || Date.now() > end) {
      await kill();
      throw new Error(`no listening line (exit ${child.exitCode}); stderr: ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  workers = Array.isArray(listening.workers) ? (listening.workers as number[]) : [];
  return {
    child,
    url: String(listening.url),
    lines,
    exited,
    workers,
    stderr: () => stderr,
    kill,
  };
}

function parseLine(text: string): Record<string, unknown> {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return { text };
  }
}

async function readLines(path: string): Promise<string[]> {
  try {
    return (await readFile(path, 'utf8')).split('\n').filter((l) => l !== '');
  } catch {
    return [];
  }
}

/** Runs the bin to its end (20 s at most) and returns its exit code and output. */
export async function runLegacy(
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [LEGACY_BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}
