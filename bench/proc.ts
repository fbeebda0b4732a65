import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnTracked, stopChild } from './lifecycle.js';

/** What a finished command printed, and how it ended. */
export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Runs a command to its end (killed after `timeoutMs`) and collects its output. Never
 * rejects for a non-zero exit: the caller decides what a failure means.
 */
export async function run(
  command: string,
  args: readonly string[],
  options: SpawnOptions & { timeoutMs?: number } = {},
): Promise<RunResult> {
  const { timeoutMs = 600_000, ...spawnOptions } = options;
  const started = performance.now();
  const child = spawnTracked(command, args, spawnOptions);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const timer = setTimeout(() => void stopChild(child, 1000), timeoutMs);
  const code = await new Promise<number | null>((resolve) => {
    child.once('error', (err) => {
      stderr += String(err);
      resolve(-1);
    });
    child.once('close', (c) => resolve(c));
  });
  clearTimeout(timer);
  return { code, stdout, stderr, ms: performance.now() - started };
}

/** Like {@link run}, but a non-zero exit is an error carrying what the command printed. */
export async function runOk(
  command: string,
  args: readonly string[],
  options: SpawnOptions & { timeoutMs?: number } = {},
): Promise<RunResult> {
  const r = await run(command, args, options);
  if (r.code !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(-2000)}`,
    );
  }
  return r;
}

/** A long-running server started by the bench. */
export interface Running {
  child: ChildProcess;
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/**
 * Waits for a JSON log line with `msg: "listening"` and a `url` in `logFile` (our servers
 * print it once they listen). Rejects if the process exits first or after `timeoutMs`.
 */
export async function waitForListeningLine(
  child: ChildProcess,
  logFile: string,
  timeoutMs = 20_000,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`exited (${child.exitCode ?? child.signalCode}) before listening: ${stderr}`);
    }
    const text = await readFile(logFile, 'utf8').catch(() => '');
    for (const line of text.split('\n')) {
      if (!line.includes('"listening"')) continue;
      try {
        const rec = JSON.parse(line) as { msg?: string; url?: string };
        if (rec.msg === 'listening' && rec.url) return rec.url;
      } catch {
        // a line being written; read again
      }
    }
    await sleep(50);
  }
  throw new Error(`no "listening" line in ${logFile} within ${timeoutMs} ms: ${stderr}`);
}

/** Resolves once something accepts TCP connections on 127.0.0.1:`port`. */
export async function waitForPort(
  port: number,
  child: ChildProcess,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`exited (${child.exitCode ?? child.signalCode}) before listening`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

/** A port that was free a moment ago (for servers that cannot report port 0). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A field of /proc/PID/status in KiB (VmHWM: peak RSS, VmRSS: current), or undefined. */
export async function procStatusKiB(
  pid: number,
  field: 'VmHWM' | 'VmRSS',
): Promise<number | undefined> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

/** Clock ticks a second in /proc's CPU times (USER_HZ on Linux). */
const USER_HZ = 100;

/**
 * CPU seconds (user + system) in a /proc/PID/stat or /proc/PID/task/TID/stat line: fields
 * 14 and 15, counted after the command name (which may hold spaces and parentheses).
 */
export function statCpuSeconds(text: string): number {
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / USER_HZ;
}

/** CPU seconds (user + system) used so far by every process, by its command name. */
async function cpuByCommand(): Promise<Map<string, Map<number, number>>> {
  const out = new Map<string, Map<number, number>>();
  const pids = (await readdir('/proc')).filter((d) => /^\d+$/.test(d));
  await Promise.all(
    pids.map(async (pid) => {
      const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
      if (text === undefined) return;
      const comm = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
      const seconds = statCpuSeconds(text);
      if (!out.has(comm)) out.set(comm, new Map());
      out.get(comm)!.set(Number(pid), seconds);
    }),
  );
  return out;
}

/**
 * The share of one core each group of processes used while `fn` ran (1 = a whole core),
 * from /proc: `groups` maps a name to a test on the process's command name. Processes
 * that started or ended meanwhile count for the part of the time seen. `machine`: the cores
 * the whole machine was busy meanwhile (see machineBusySeconds).
 */
export async function cpuShares<T, K extends string>(
  groups: Record<K, (comm: string) => boolean>,
  fn: () => Promise<T>,
): Promise<{ result: T; shares: Record<K, number>; machine: number }> {
  const [before, busyBefore] = await Promise.all([cpuByCommand(), machineBusySeconds()]);
  const t = performance.now();
  const result = await fn();
  const seconds = (performance.now() - t) / 1000;
  const [after, busyAfter] = await Promise.all([cpuByCommand(), machineBusySeconds()]);
  const shares = {} as Record<K, number>;
  for (const [group, test] of Object.entries(groups) as [K, (comm: string) => boolean][]) {
    let used = 0;
    for (const [comm, pids] of after) {
      if (!test(comm)) continue;
      for (const [pid, s] of pids) used += s - (before.get(comm)?.get(pid) ?? 0);
    }
    shares[group] = used / seconds;
  }
  return { result, shares, machine: (busyAfter - busyBefore) / seconds };
}

/**
 * CPU seconds the whole machine has been busy since boot, summed over its cores, from the
 * first line of /proc/stat: user, nice, system, irq and softirq time (every process and the
 * kernel; idle, I/O wait and time stolen by the hypervisor do not count).
 */
async function machineBusySeconds(): Promise<number> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n', 1)[0]!;
  const [user, nice, system, , , irq, softirq] = line.trim().split(/\s+/).slice(1).map(Number);
  return (user! + nice! + system! + irq! + softirq!) / USER_HZ;
}
