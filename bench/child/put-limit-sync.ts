/**
 * A worker thread of put-limit.ts's `sync` style: stores one file at a time with
 * synchronous calls (the whole write/rename/symlink/lutimes/rename sequence in this
 * thread, no thread-pool trip), taking the next body from a counter shared by all workers,
 * until the bodies run out or the shared deadline passes.
 *
 * Directory fsyncs are shared across the workers as ft-server's GroupCommit shares them
 * across its uploads: per directory, one fsync at a time; a writer whose rename landed
 * needs a fsync that began after its rename, so it waits for the next one to end or makes
 * it itself. The state is in shared memory (per directory: a lock, fsyncs begun, fsyncs
 * ended, entry durable), indexed by a table of every directory the bodies use, which the
 * parent builds once ({@link dirTable}). A directory made here (mkdir -p on a rename's
 * ENOENT) is durable in its parent only after a fsync of the parent that began after it
 * was made, up to blobs/ or links/ (made before the start, like the async style's).
 */
import fs from 'node:fs';
import path from 'node:path';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';

export interface SyncWorkerData {
  id: number;
  tmp: string;
  blobs: string;
  links: string;
  version: number;
  /** The pool's index (`/files/NAME sha256 size offset length` lines) and bodies. */
  index: SharedArrayBuffer;
  lineStarts: SharedArrayBuffer;
  lines: number;
  bodies: SharedArrayBuffer;
  /** Every directory renamed into or made, and the index of its parent (-1: a top). */
  dirs: string[];
  parents: number[];
  /** Int32 x 4 per directory: lock, fsyncs begun, fsyncs ended, entry durable. */
  commit: SharedArrayBuffer;
  /** Int32 [0] next body, [1] go; Float64 at byte 8: deadline (timeOrigin + now, ms). */
  control: SharedArrayBuffer;
}

interface Line {
  name: string;
  sha256: string;
  offset: number;
  length: number;
}

function parseLine(index: Buffer, lineStarts: Int32Array, i: number): Line {
  const [p, sha256, , offset, length] = index
    .toString('utf8', lineStarts[i]!, lineStarts[i + 1]! - 1)
    .split(' ');
  return {
    name: p!.slice('/files'.length),
    sha256: sha256!,
    offset: Number(offset),
    length: Number(length),
  };
}

/** The directories the bodies' blobs and links land in, with every parent up to a top. */
export function dirTable(
  index: Buffer,
  lineStarts: Int32Array,
  tops: { blobs: string; links: string },
): { dirs: string[]; parents: number[] } {
  const ids = new Map<string, number>([
    [tops.blobs, 0],
    [tops.links, 1],
  ]);
  const dirs = [tops.blobs, tops.links];
  const parents = [-1, -1];
  const add = (dir: string): number => {
    const known = ids.get(dir);
    if (known !== undefined) return known;
    const parent = add(path.dirname(dir));
    const id = dirs.length;
    ids.set(dir, id);
    dirs.push(dir);
    parents.push(parent);
    return id;
  };
  for (let i = 0; i + 1 < lineStarts.length; i++) {
    const e = parseLine(index, lineStarts, i);
    add(path.join(tops.blobs, e.sha256.slice(0, 2)));
    add(path.dirname(path.join(tops.links, e.name)));
  }
  return { dirs, parents };
}

const DIRECTORY = fs.constants.O_RDONLY | fs.constants.O_DIRECTORY;
const CREATE_SYNC =
  fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_SYNC;

function work(d: SyncWorkerData): void {
  const index = Buffer.from(d.index);
  const lineStarts = new Int32Array(d.lineStarts);
  const bodies = Buffer.from(d.bodies);
  const ids = new Map(d.dirs.map((dir, i) => [dir, i]));
  const n = d.dirs.length;
  const lock = new Int32Array(d.commit, 0, n);
  const begun = new Int32Array(d.commit, 4 * n, n);
  const ended = new Int32Array(d.commit, 8 * n, n);
  const durable = new Int32Array(d.commit, 12 * n, n);
  const ctl = new Int32Array(d.control, 0, 2);
  const deadline = new Float64Array(d.control, 8, 1);

  /** Returns once a fsync of directory `id` that began after this call has ended. */
  const syncDir = (id: number): void => {
    const seen = Atomics.load(begun, id);
    for (;;) {
      if (Atomics.load(ended, id) > seen) return;
      if (Atomics.compareExchange(lock, id, 0, 1) === 0) {
        try {
          if (Atomics.load(ended, id) > seen) return;
          const number = Atomics.add(begun, id, 1) + 1;
          const fd = fs.openSync(d.dirs[id]!, DIRECTORY);
          try {
            fs.fsyncSync(fd);
          } finally {
            fs.closeSync(fd);
          }
          Atomics.store(ended, id, number);
        } finally {
          Atomics.store(lock, id, 0);
          Atomics.notify(lock, id);
        }
        return;
      }
      Atomics.wait(lock, id, 1, 50);
    }
  };
  /** Makes directory `id`'s own entry durable (in its parent, recursively), once. */
  const ensureDurable = (id: number): void => {
    const parent = d.parents[id]!;
    if (parent < 0 || Atomics.load(durable, id) === 1) return;
    ensureDurable(parent);
    syncDir(parent);
    Atomics.store(durable, id, 1);
  };
  /** rename, making the target's directory when missing; then the directory fsyncs. */
  const renameDurably = (from: string, to: string, dirId: number): void => {
    try {
      fs.renameSync(from, to);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      fs.mkdirSync(path.dirname(to), { recursive: true });
      fs.renameSync(from, to);
    }
    syncDir(dirId);
    ensureDurable(dirId);
  };

  parentPort!.postMessage({ ready: true });
  Atomics.wait(ctl, 1, 0);
  const end = deadline[0]!;
  const indices: number[] = [];
  const ends: number[] = [];
  let tmpCounter = 0;
  while (performance.timeOrigin + performance.now() < end) {
    const i = Atomics.add(ctl, 0, 1);
    if (i >= d.lines) break;
    const e = parseLine(index, lineStarts, i);
    const upload = path.join(d.tmp, `upload-${d.id}-${tmpCounter++}`);
    const fd = fs.openSync(upload, CREATE_SYNC, 0o644);
    try {
      let written = 0;
      while (written < e.length) {
        written += fs.writeSync(fd, bodies, e.offset + written, e.length - written, null);
      }
    } finally {
      fs.closeSync(fd);
    }
    const blobDir = path.join(d.blobs, e.sha256.slice(0, 2));
    const blob = path.join(blobDir, e.sha256);
    renameDurably(upload, blob, ids.get(blobDir)!);
    const link = path.join(d.links, e.name);
    const linkDir = path.dirname(link);
    const tmpLink = path.join(d.tmp, `link-${d.id}-${tmpCounter++}`);
    fs.symlinkSync(path.relative(linkDir, blob), tmpLink);
    fs.lutimesSync(tmpLink, d.version, d.version);
    renameDurably(tmpLink, link, ids.get(linkDir)!);
    indices.push(i);
    ends.push(performance.timeOrigin + performance.now());
  }
  const out = { indices: Int32Array.from(indices), ends: Float64Array.from(ends) };
  parentPort!.postMessage(out, [out.indices.buffer, out.ends.buffer]);
}

if (!isMainThread) work(workerData as SyncWorkerData);
