/**
 * ft-server's store on its own: `Store.put` (the code behind a PUT, and behind
 * `ft-migrate --into`) called in this process for each pre-built gzip body, with the
 * digest and size claimed as the Python client claims them, `concurrency` puts at once,
 * into a fresh store in `dir`. No HTTP and no source files: what is left is the store's
 * write path (verify, durable write, renames and their directory fsyncs, the reference
 * count in LevelDB, the link), on libuv's default pool as ft-server and ft-migrate run it.
 * Its files/s is therefore what `--into` could reach if reading, hashing and gzipping the
 * 1.x files cost nothing, and what ft-server could reach if HTTP cost nothing.
 *
 * Usage: node store-put.js '{"dir":..., "index":..., "bodies":..., "concurrency":64,
 *   "count":N, "version":V}'
 * Prints one JSON line: {"files": N, "ms": elapsed, "mainCpuMs": CPU of the main thread}.
 */
import { readFileSync } from 'node:fs';
import { openStore } from '@filetracker/server/local-store';
import { readPool, type PoolFiles } from '../pool.js';
import { statCpuSeconds } from '../proc.js';

/** The pool's files, and the run: `concurrency` puts at once of its first `count` bodies. */
type Args = PoolFiles & { dir: string; concurrency: number; count: number; version: number };

/** CPU time (user + system) of this process's main thread so far, in ms (Linux). */
function mainThreadCpuMs(): number {
  return statCpuSeconds(readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8')) * 1000;
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
const { entries, data } = await readPool({ index: args.index, bodies: args.bodies });
const todo = entries.slice(0, args.count);
const store = await openStore(args.dir, { warn: (_details, message) => console.error(message) });
const cpuBefore = mainThreadCpuMs();
const started = performance.now();
let next = 0;
async function worker(): Promise<void> {
  while (next < todo.length) {
    const e = todo[next++]!;
    const body = data.subarray(e.offset, e.offset + e.length);
    await store.put({
      components: e.name.split('/').filter((c) => c.length > 0),
      version: args.version,
      body,
      bodyLength: body.length,
      gzip: true,
      checksum: e.sha256,
      logicalSize: e.logicalSize,
    });
  }
}
await Promise.all(Array.from({ length: args.concurrency }, worker));
const ms = performance.now() - started;
const mainCpuMs = mainThreadCpuMs() - cpuBefore;
await store.close();
console.log(JSON.stringify({ files: todo.length, ms, mainCpuMs }));
