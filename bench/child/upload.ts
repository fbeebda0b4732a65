/**
 * One end-to-end upload as a client does it, from a separate process: FiletrackerClient
 * (shared-protocol) PUTs a file, which for a large file means a SHA-256 pass over it,
 * then the file gzipped at level 6 on the fly (as ft-migrate and the Python client do).
 *
 * Usage: node upload.js '{"url": URL, "file": PATH, "name": "/x", "version": N}'
 * Prints one JSON line: {"ms": elapsed}.
 */
import { FiletrackerClient } from '@filetracker/shared-protocol';

interface Args {
  url: string;
  file: string;
  name: string;
  version: number;
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
const client = new FiletrackerClient(args.url, { retries: 0 });
const started = performance.now();
try {
  await client.put(args.name, args.file, { version: args.version });
} finally {
  client.close();
}
process.stdout.write(JSON.stringify({ ms: performance.now() - started }) + '\n');
