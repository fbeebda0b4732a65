/**
 * Many large uploads at once, from a separate process, for the server's peak RSS. Each
 * body is `bytes` of content: zeros then a 64-byte tail unique to the upload, sent as two
 * gzip members (the zeros' member is built once), with `SHA256-Checksum` and
 * `Logical-Size`. So the server inflates, hashes and stores `count` x `bytes` of content
 * while only ~1/1000 of it crosses the loopback and reaches the disk: that keeps 64 GiB
 * of uploads within what this machine can move in a minute or two.
 *
 * Usage: node uploads.js '{"url": URL, "count": 64, "bytes": N, "version": V}'
 * Prints one JSON line: {"ms": elapsed, "statuses": [...], "wireBytes": N}.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import { gzipSync, createGzip } from 'node:zlib';

interface Args {
  url: string;
  count: number;
  bytes: number;
  version: number;
  query: string;
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
const TAIL = 64;
const zerosLength = args.bytes - TAIL;

// One gzip member of the zeros, and the SHA-256 state after them (copied per upload).
const zeroChunk = Buffer.alloc(1024 * 1024);
const zeroHash = createHash('sha256');
const gz = createGzip({ level: 6 });
const parts: Buffer[] = [];
gz.on('data', (b: Buffer) => parts.push(b));
const gzDone = new Promise((resolve) => gz.on('end', resolve));
for (let left = zerosLength; left > 0; left -= zeroChunk.length) {
  const piece = left >= zeroChunk.length ? zeroChunk : zeroChunk.subarray(0, left);
  zeroHash.update(piece);
  if (!gz.write(piece)) await new Promise((resolve) => gz.once('drain', resolve));
}
gz.end();
await gzDone;
const zerosMember = Buffer.concat(parts);

const url = new URL(args.url);
const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });

function upload(i: number): Promise<number> {
  const tail = Buffer.from(`upload ${i} ${Date.now()}`.padEnd(TAIL - 1, '.') + '\n');
  const tailMember = gzipSync(tail);
  const sha = zeroHash.copy().update(tail).digest('hex');
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        method: 'PUT',
        path: `/files/memory/u${i}.bin${args.query}`,
        agent,
        headers: {
          'Content-Encoding': 'gzip',
          'SHA256-Checksum': sha,
          'Logical-Size': String(args.bytes),
          'Content-Length': String(zerosMember.length + tailMember.length),
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.write(zerosMember);
    req.end(tailMember);
  });
}

const started = performance.now();
const statuses = await Promise.all(Array.from({ length: args.count }, (_, i) => upload(i)));
process.stdout.write(
  JSON.stringify({
    ms: performance.now() - started,
    statuses,
    wireBytes: args.count * zerosMember.length,
  }) + '\n',
);
