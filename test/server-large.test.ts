import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { FiletrackerClient } from '@filetracker/shared-protocol';
import { startProcess, tempDir } from './helpers/server.js';
import { checkStore } from './helpers/store-check.js';
import { fileUrl, versionOf } from './helpers/store-traffic.js';

/** 1 GiB by default; FT_LARGE_MIB=64 for a quick run. */
const MIB = Number(process.env.FT_LARGE_MIB ?? 1024);
const SIZE = MIB * 1024 * 1024;
const CHUNK = 1024 * 1024;
const VERSION = 1_700_000_123;

/**
 * Text records from a small pool (deflate finds them in its window) with 16 bytes of noise
 * each: gzip shrinks it to about 15 % at a speed that keeps a 1 GiB run short.
 */
const POOL = Array.from({ length: 64 }, (_, i) =>
  Buffer.from(`record ${i} `.padEnd(112, String.fromCharCode(97 + (i % 26)))),
);

/** The same pseudo-random chunks on every call, one MiB at a time, hashed on the way. */
async function* generate(
  total: number,
  hash: ReturnType<typeof createHash>,
): AsyncGenerator<Buffer> {
  let x = 0x9e3779b9 | 1;
  const rnd = (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  for (let sent = 0; sent < total; sent += CHUNK) {
    const chunk = Buffer.allocUnsafe(Math.min(CHUNK, total - sent));
    for (let o = 0; o + 128 <= chunk.length; o += 128) {
      POOL[rnd() & 63]!.copy(chunk, o);
      for (let k = 0; k < 4; k++) chunk.writeUInt32LE(rnd(), o + 112 + 4 * k);
    }
    hash.update(chunk);
    yield chunk;
  }
}

/** Peak RSS of a process, as the kernel counts it (VmHWM), in MiB. */
async function peakRssMib(pid: number): Promise<number | undefined> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = /^VmHWM:\s+(\d+) kB/m.exec(status)?.[1];
  return kb === undefined ? undefined : Number(kb) / 1024;
}

test(
  `a ${MIB} MiB file goes up and comes back intact through the real server process, hashed on both sides`,
  {
    timeout: 180_000,
  },
  async (t) => {
    const dir = await tempDir('ft-large-');
    const server = await startProcess('packages/server/bin/ft-server.mjs', [
      '-d',
      dir,
      '-p',
      '0',
    ]).catch(async (err: unknown) => {
      await rm(dir, { recursive: true, force: true });
      throw err;
    });
    t.after(async () => {
      await server.stop('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    });
    const pid = server.child.pid!;
    let peak = 0;
    const sampler = setInterval(() => {
      void peakRssMib(pid).then((mib) => (peak = Math.max(peak, mib ?? 0)));
    }, 250);
    t.after(() => clearInterval(sampler));
    const ft = new FiletrackerClient(server.url, { timeoutMs: 120_000 });
    t.after(() => ft.close());
    const name = '/large/data.bin';

    const sentHash = createHash('sha256');
    let started = performance.now();
    const stored = await ft.put(name, Readable.from(generate(SIZE, sentHash)), {
      version: VERSION,
    });
    const upMs = performance.now() - started;
    const sent = sentHash.digest('hex');
    assert.equal(stored, VERSION);

    const head = await fetch(fileUrl(server.url, name), { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('logical-size'), String(SIZE));
    assert.equal(head.headers.get('etag'), `"${sent}"`, 'the server hashed what we sent');
    assert.equal(versionOf(head.headers.get('last-modified')), VERSION);

    started = performance.now();
    const got = await ft.get(name, { expectedVersion: VERSION });
    assert.equal(got.logicalSize, SIZE);
    const receivedHash = createHash('sha256');
    let received = 0;
    await pipeline(got.stream, async (chunks: AsyncIterable<Buffer>) => {
      for await (const chunk of chunks) {
        receivedHash.update(chunk);
        received += chunk.length;
      }
    });
    const downMs = performance.now() - started;
    assert.equal(received, SIZE);
    assert.equal(receivedHash.digest('hex'), sent);

    // Without gzip in Accept-Encoding (plain curl) the server inflates the blob on the fly.
    started = performance.now();
    const plain = await fetch(fileUrl(server.url, name), {
      headers: { 'Accept-Encoding': 'identity' },
    });
    assert.equal(plain.status, 200);
    assert.equal(plain.headers.get('content-length'), String(SIZE));
    const plainHash = createHash('sha256');
    let plainBytes = 0;
    for await (const chunk of plain.body! as unknown as AsyncIterable<Uint8Array>) {
      plainHash.update(chunk);
      plainBytes += chunk.length;
    }
    const plainMs = performance.now() - started;
    assert.equal(plainBytes, SIZE);
    assert.equal(plainHash.digest('hex'), sent);

    clearInterval(sampler);
    peak = Math.max(peak, (await peakRssMib(pid)) ?? 0);
    const rate = (ms: number): string => `${(MIB / (ms / 1000)).toFixed(0)} MiB/s`;
    t.diagnostic(
      `${MIB} MiB: upload ${(upMs / 1000).toFixed(1)} s (${rate(upMs)}), download ${(downMs / 1000).toFixed(1)} s (${rate(downMs)}), plain download ${(plainMs / 1000).toFixed(1)} s (${rate(plainMs)}); server peak RSS (VmHWM) ${peak.toFixed(0)} MiB`,
    );

    assert.equal(await server.stop('SIGTERM'), 0);
    started = performance.now();
    const check = await checkStore(dir);
    assert.deepEqual(check.problems, []);
    assert.equal(check.records.get(sent)?.logicalSize, SIZE);
    t.diagnostic(`store check ${((performance.now() - started) / 1000).toFixed(1)} s`);
  },
);
