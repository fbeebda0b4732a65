import { spawn, type ChildProcess } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { createServer, connect } from 'node:net';

/** A free TCP port on 127.0.0.1 (taken by nobody a moment ago: start-up retries once). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** The first of `programs` that is not an executable file, or undefined. */
export async function missingProgram(programs: readonly string[]): Promise<string | undefined> {
  for (const program of programs) {
    try {
      await access(program, constants.X_OK);
    } catch {
      return program;
    }
  }
  return undefined;
}

/** Resolves once something accepts a TCP connection on 127.0.0.1:`port`. */
export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A child process of an engine, with its output kept for error messages. */
export interface EngineProcess {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
  /** Signals the process (SIGTERM unless said) and resolves once it has exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export function spawnEngine(command: string, args: string[]): EngineProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (d: Buffer): void => {
    // The tail is what says why a start failed.
    output = (output + d.toString()).slice(-8000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', () => resolve(null));
  });
  return {
    child,
    output: () => output,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

/** Polls `ready` every 100 ms until it is true; rejects with `what` after `timeoutMs`. */
export async function waitFor(
  ready: () => Promise<boolean>,
  timeoutMs: number,
  what: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(what());
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
