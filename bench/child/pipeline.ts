/**
 * The pipeline limit of an upload: read a file, SHA-256 it and gzip it at `level` in one
 * process, the work a client must do before the server can store the file, with nothing
 * else (no HTTP, no disk writes; the gzip is dropped).
 *
 * Usage: node pipeline.js '{"file": PATH, "level": 6}', or with "files": [PATHS] or
 * "listFile": a file of paths, one a line (a long list does not fit in argv), in turn.
 * Prints one JSON line: {"bytes": logical bytes, "gzipBytes": N, "ms": elapsed}.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';

interface Args {
  file?: string;
  files?: string[];
  listFile?: string;
  level: number;
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
const files = args.listFile
  ? (await readFile(args.listFile, 'utf8')).split('\n').filter((l) => l.length > 0)
  : (args.files ?? [args.file!]);
let bytes = 0;
let gzipBytes = 0;
const started = performance.now();
for (const file of files) {
  const hash = createHash('sha256');
  await pipeline(
    createReadStream(file),
    async function* (chunks: AsyncIterable<Buffer>) {
      for await (const chunk of chunks) {
        hash.update(chunk);
        bytes += chunk.length;
        yield chunk;
      }
    },
    createGzip({ level: args.level }),
    new Writable({
      write(chunk: Buffer, _enc, callback) {
        gzipBytes += chunk.length;
        callback();
      },
    }),
  );
  hash.digest('hex');
}
process.stdout.write(JSON.stringify({ bytes, gzipBytes, ms: performance.now() - started }) + '\n');
