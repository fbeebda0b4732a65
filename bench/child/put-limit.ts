/**
 * The machine's limit for storing small uploads, as a bare script: for each pre-built gzip
 * body, exactly the file-system work the server must do (DESIGN.md invariants 1 and 2),
 * and nothing else (no HTTP, no hashing, no database):
 * write the gzip to tmp/ durably, rename into blobs/xx/digest, fsync blobs/xx/, symlink in
 * tmp/, lutimes, rename into links/, fsync that directory. `concurrency` files at once, as
 * many as the server gets connections. The write is made with O_SYNC rather than write +
 * fsync, and the directory fsyncs are shared (group commit) among the renames waiting for
 * them, as ft-server does, in either of two call styles:
 *
 * - `async` (the default): callbacks on libuv's thread pool rather than fs/promises, as
 *   ft-server makes them (see its store/fs-calls.ts), and the directory fsyncs through
 *   ft-server's own DirSync. The pool's size is the process's UV_THREADPOOL_SIZE (libuv's
 *   default: 4), which the caller sets.
 * - `sync`: `threads` worker_threads (at most `concurrency`), each storing one file at a
 *   time with synchronous calls, the whole sequence in the worker; the directory fsyncs
 *   are shared across the workers through shared memory (put-limit-sync.ts).
 *
 * Usage: node put-limit.js '{"dir":..., "index":..., "bodies":..., "concurrency":64,
 *   "count":N, "durationS":S, "version":V, "style":"async"|"sync", "threads":T}'
 * Stores the first `count` bodies, or stops starting new ones after `durationS` seconds
 * (like wrk's -d), whichever comes first. Prints one JSON line:
 * {"files": N, "ms": elapsed, "p50Ms": ..., "p99Ms": ..., "style": ..., "threads": T},
 * the percentiles of each file's latency in a closed loop of `concurrency` clients, as wrk
 * measures a request's (see closedLoopLatencies): to the end of its last directory fsync,
 * what an acknowledged PUT waits for.
 */
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Worker } from 'node:worker_threads';
import { DirSync } from '@filetracker/server';
import { readPool } from '../pool.js';
import { dirTable, type SyncWorkerData } from './put-limit-sync.js';

interface Args {
  dir: string;
  index: string;
  bodies: string;
  concurrency: number;
  count: number;
  durationS?: number;
  version: number;
  style?: 'async' | 'sync';
  threads?: number;
}

/** What a style measured: each file stored, by its index in the pool, with its end. */
interface Result {
  files: number;
  ms: number;
  /** When the first files were started, as {@link now}. */
  startedAt: number;
  indices: Int32Array;
  ends: Float64Array;
  threads: number;
}

/** Milliseconds on a clock shared by the process's threads. */
function now(): number {
  return performance.timeOrigin + performance.now();
}

const open = promisify(fs.open);
const write = promisify(fs.write);
const symlink = promisify(fs.symlink);
const lutimes = promisify(fs.lutimes);
const mkdir = promisify(fs.mkdir);
const CREATE_SYNC =
  fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_SYNC;

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
const tmp = path.join(args.dir, 'tmp');
const blobs = path.join(args.dir, 'blobs');
const links = path.join(args.dir, 'links');
await Promise.all([tmp, blobs, links].map((d) => mkdir(d, { recursive: true })));

/** `concurrency` loops on libuv's pool, as ft-server's uploads. */
async function asyncStyle(): Promise<Result> {
  const { entries, data } = await readPool({ index: args.index, bodies: args.bodies });
  const todo = entries.slice(0, args.count);
  const dirs = new DirSync();
  const indices = new Int32Array(todo.length);
  const ends = new Float64Array(todo.length);
  const started = performance.now();
  const startedAt = now();
  const deadline = started + (args.durationS ?? Infinity) * 1000;
  let next = 0;
  let done = 0;
  let tmpCounter = 0;
  async function worker(): Promise<void> {
    while (next < todo.length && performance.now() < deadline) {
      const i = next++;
      const e = todo[i]!;
      const body = data.subarray(e.offset, e.offset + e.length);
      const upload = path.join(tmp, `upload-${tmpCounter++}`);
      const fd = await open(upload, CREATE_SYNC, 0o644);
      try {
        let written = 0;
        while (written < body.length) {
          written += (await write(fd, body, written, body.length - written, null)).bytesWritten;
        }
      } finally {
        fs.closeSync(fd);
      }
      const blob = path.join(blobs, e.sha256.slice(0, 2), e.sha256);
      await dirs.rename(upload, blob, blobs);
      const link = path.join(links, e.name);
      const tmpLink = path.join(tmp, `link-${tmpCounter++}`);
      await symlink(path.relative(path.dirname(link), blob), tmpLink);
      await lutimes(tmpLink, args.version, args.version);
      await dirs.rename(tmpLink, link, links);
      indices[done] = i;
      ends[done++] = now();
    }
  }
  await Promise.all(Array.from({ length: args.concurrency }, worker));
  const ms = performance.now() - started;
  const threads = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  return {
    files: done,
    ms,
    startedAt,
    indices: indices.subarray(0, done),
    ends: ends.subarray(0, done),
    threads,
  };
}

/** Reads a whole file into shared memory, for the workers to read without copies. */
function readShared(file: string): Buffer {
  const size = fs.statSync(file).size;
  const shared = Buffer.from(new SharedArrayBuffer(size));
  const fd = fs.openSync(file, 'r');
  try {
    let done = 0;
    while (done < size) done += fs.readSync(fd, shared, done, size - done, done);
  } finally {
    fs.closeSync(fd);
  }
  return shared;
}

/** `threads` workers, each one file at a time with synchronous calls. */
async function syncStyle(): Promise<Result> {
  const threads = Math.max(1, Math.min(args.threads ?? 4, args.concurrency));
  const index = readShared(args.index);
  const bodies = readShared(args.bodies);
  // Where each of the first `count` index lines starts, and one past the last.
  const starts: number[] = [0];
  for (let at = index.indexOf(10); at >= 0 && starts.length <= args.count;) {
    starts.push(at + 1);
    at = index.indexOf(10, at + 1);
  }
  const lineStarts = new Int32Array(new SharedArrayBuffer(starts.length * 4));
  lineStarts.set(starts);
  const lines = starts.length - 1;
  const table = dirTable(index, lineStarts, { blobs, links });
  const control = new SharedArrayBuffer(16);
  const data: Omit<SyncWorkerData, 'id'> = {
    tmp,
    blobs,
    links,
    version: args.version,
    index: index.buffer as SharedArrayBuffer,
    lineStarts: lineStarts.buffer as SharedArrayBuffer,
    lines,
    bodies: bodies.buffer as SharedArrayBuffer,
    dirs: table.dirs,
    parents: table.parents,
    commit: new SharedArrayBuffer(table.dirs.length * 4 * 4),
    control,
  };
  const script = new URL('./put-limit-sync.js', import.meta.url);
  const workers = Array.from(
    { length: threads },
    (_, id) => new Worker(script, { workerData: { ...data, id } }),
  );
  const results = workers.map(
    (w) =>
      new Promise<{ indices: Int32Array; ends: Float64Array }>((resolve, reject) => {
        w.on('message', (m: { indices?: Int32Array; ends?: Float64Array }) => {
          if (m.indices && m.ends) resolve({ indices: m.indices, ends: m.ends });
        });
        w.once('error', reject);
        w.once('exit', (code) => reject(new Error(`a worker exited ${code} without a result`)));
      }),
  );
  await Promise.all(
    workers.map((w) => new Promise<void>((resolve) => w.once('message', () => resolve()))),
  );
  // Every worker is ready: start them together, with one deadline on the shared clock.
  const ctl = new Int32Array(control, 0, 2);
  const deadline = new Float64Array(control, 8, 1);
  const started = performance.now();
  const startedAt = now();
  deadline[0] = startedAt + (args.durationS ?? 1e9) * 1000;
  Atomics.store(ctl, 1, 1);
  Atomics.notify(ctl, 1);
  const outs = await Promise.all(results);
  const ms = performance.now() - started;
  await Promise.all(workers.map((w) => w.terminate()));
  const files = outs.reduce((a, o) => a + o.indices.length, 0);
  const indices = new Int32Array(files);
  const ends = new Float64Array(files);
  let at = 0;
  for (const o of outs) {
    indices.set(o.indices, at);
    ends.set(o.ends, at);
    at += o.indices.length;
  }
  return { files, ms, startedAt, indices, ends, threads };
}

/**
 * Each file's latency as a closed loop of `clients` (wrk's connections) would see it: the
 * first `clients` files are sent at the start, and each end sends the next, so the file of
 * pool index i (taken in that order) was sent at the (i - clients)-th end. With fewer
 * threads than clients, this counts the time a file waited for a thread, as a request
 * waits in a server; otherwise it is the time from the file's open.
 */
function closedLoopLatencies(r: Result, clients: number): Float64Array {
  const byEnd = r.ends.slice().sort();
  const latencies = new Float64Array(r.files);
  for (let k = 0; k < r.files; k++) {
    const i = r.indices[k]!;
    latencies[k] = r.ends[k]! - (i < clients ? r.startedAt : byEnd[i - clients]!);
  }
  return latencies;
}

/** The `q` quantile (nearest rank) of `values`, sorted here. */
function quantile(values: Float64Array, q: number): number {
  if (values.length === 0) return NaN;
  const sorted = values.slice().sort();
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

const style = args.style ?? 'async';
const r = style === 'sync' ? await syncStyle() : await asyncStyle();
const latencies = closedLoopLatencies(r, args.concurrency);
process.stdout.write(
  JSON.stringify({
    files: r.files,
    ms: r.ms,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    style,
    threads: r.threads,
  }) + '\n',
);
