/**
 * The machine's limit for storing small uploads, as a bare script: for each pre-built gzip
 * body, exactly the file-system work the server must do (DESIGN.md invariants 1 and 2),
 * and nothing else (no HTTP, no hashing, no database):
 * write the gzip to tmp/ durably, rename into blobs/xx/digest, fsync blobs/xx/, symlink in
 * tmp/, lutimes, rename into links/, fsync that directory. `concurrency` files at once, as
 * many as the server gets connections. Each call the cheapest way Node offers, as ft-server
 * makes it (see its store/fs-calls.ts): callbacks rather than fs/promises, the write with
 * O_SYNC rather than write + fsync, and the directory fsyncs through ft-server's own
 * DirSync, which shares one fsync of a directory among the renames waiting for it.
 *
 * Usage: node put-limit.js '{"dir":..., "index":..., "bodies":..., "concurrency":64,
 *   "count":N, "durationS":S, "version":V}'
 * Stores the first `count` bodies, or stops starting new ones after `durationS` seconds
 * (like wrk's -d), whichever comes first. Prints one JSON line: {"files": N, "ms": elapsed}.
 */
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { DirSync } from '@filetracker/server';
import { readPool } from '../pool.js';

interface Args {
  dir: string;
  index: string;
  bodies: string;
  concurrency: number;
  count: number;
  durationS?: number;
  version: number;
}

const open = promisify(fs.open);
const write = promisify(fs.write);
const symlink = promisify(fs.symlink);
const lutimes = promisify(fs.lutimes);
const mkdir = promisify(fs.mkdir);
const CREATE_SYNC =
  fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_SYNC;

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
const { entries, data } = await readPool({ index: args.index, bodies: args.bodies });
const todo = entries.slice(0, args.count);
const tmp = path.join(args.dir, 'tmp');
const blobs = path.join(args.dir, 'blobs');
const links = path.join(args.dir, 'links');
await Promise.all([tmp, blobs, links].map((d) => mkdir(d, { recursive: true })));
const dirs = new DirSync();

const started = performance.now();
const deadline = started + (args.durationS ?? Infinity) * 1000;
let next = 0;
let done = 0;
let tmpCounter = 0;
async function worker(): Promise<void> {
  while (next < todo.length && performance.now() < deadline) {
    const e = todo[next++]!;
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
    done++;
  }
}
await Promise.all(Array.from({ length: args.concurrency }, worker));
process.stdout.write(JSON.stringify({ files: done, ms: performance.now() - started }) + '\n');
