import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Counter, Histogram, Registry } from 'prom-client';
import { AccessLog, RequestMetrics, bufferedLogDestination } from '@filetracker/http-telemetry';
import { tempDir } from './helpers/server.js';

const BUCKETS = [0.001, 0.01, 0.1, 1, 10];

/** The sample lines of a Prometheus text exposition, sorted (order is not part of it). */
function samples(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .sort();
}

test('RequestMetrics writes the series prom-client itself writes for the same requests', async () => {
  const ours = new Registry();
  const metrics = new RequestMetrics({
    registry: ours,
    labelNames: ['endpoint', 'method'],
    requests: { name: 't_requests_total', help: 'requests' },
    duration: { name: 't_duration_seconds', help: 'duration', buckets: BUCKETS },
    bodyBytesIn: { name: 't_in_bytes_total', help: 'in' },
    bodyBytesOut: { name: 't_out_bytes_total', help: 'out' },
  });
  const reference = new Registry();
  const registers = [reference];
  const requests = new Counter({
    name: 't_requests_total',
    help: 'requests',
    labelNames: ['endpoint', 'method', 'status'],
    registers,
  });
  const duration = new Histogram({
    name: 't_duration_seconds',
    help: 'duration',
    labelNames: ['endpoint', 'method'],
    buckets: BUCKETS,
    registers,
  });
  const bytesIn = new Counter({ name: 't_in_bytes_total', help: 'in', registers });
  const bytesOut = new Counter({ name: 't_out_bytes_total', help: 'out', registers });

  // Durations on, between and beyond the bounds, with a label value that needs escaping.
  const seen: [string, string, number, number, number, number][] = [
    ['files', 'GET', 200, 0.0005, 0, 100],
    ['files', 'GET', 200, 0.001, 0, 100],
    ['files', 'GET', 404, 0.05, 0, 20],
    ['files', 'PUT', 200, 2, 5000, 10],
    ['list', 'GET', 200, 30, 0, 7],
    ['we"ird\\', 'GET', 400, 0.01, 3, 1],
  ];
  for (const [endpoint, method, status, seconds, inB, outB] of seen) {
    metrics.observe([endpoint, method], status, seconds, inB, outB);
    requests.inc({ endpoint, method, status: String(status) });
    duration.observe({ endpoint, method }, seconds);
    bytesIn.inc(inB);
    bytesOut.inc(outB);
  }
  const ourText = await ours.metrics();
  assert.deepEqual(samples(ourText), samples(await reference.metrics()));
  assert.match(ourText, /# TYPE t_duration_seconds histogram/);
  // Scraping twice does not count twice.
  assert.deepEqual(samples(await ours.metrics()), samples(ourText));
});

test('AccessLog writes the line pino would write for the same fields', async (t) => {
  const dir = await tempDir();
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'log');
  const destination = pino.destination({ dest: file, sync: true });
  const logger = pino({ name: 'svc', level: 'info' }, destination);
  const log = new AccessLog(logger, 'request');
  const odd = '/files/a"b\\c\u0001\u00e9\u2028?x=1';
  for (const p of ['/files/plain', odd]) {
    log.write(`"method":${AccessLog.str('GET')},"path":${AccessLog.str(p)},"status":200,"ms":0.25`);
    logger.info({ method: 'GET', path: p, status: 200, ms: 0.25 }, 'request');
  }
  const lines = (await readFile(file, 'utf8')).trimEnd().split('\n');
  assert.equal(lines.length, 4);
  const parsed = lines.map((l) => {
    const { time, ...rest } = JSON.parse(l) as { time: number };
    assert.equal(typeof time, 'number');
    return rest;
  });
  assert.deepEqual(parsed[0], parsed[1]);
  assert.deepEqual(parsed[2], parsed[3]);
  assert.equal((parsed[2] as { path: string }).path, odd);

  // Above info, nothing is written.
  logger.level = 'warn';
  assert.equal(log.enabled, false);
  logger.level = 'info';
  assert.equal(log.enabled, true);
});

test('bufferedLogDestination holds lines back briefly, then writes them within about a second', async (t) => {
  const dir = await tempDir();
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'batched.log');
  const { destination, flush, close } = bufferedLogDestination({ file, name: 'test' });
  t.after(close);
  const logger = pino({ base: null }, destination);
  for (let i = 0; i < 3; i++) logger.info({ i }, 'line');
  const read = async () => (await readFile(file, 'utf8').catch(() => '')).split('\n');
  // Three short lines are below the batch size: nothing is written at once...
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(await read(), ['']);
  // ...but within the flush interval with no more lines coming.
  await new Promise((r) => setTimeout(r, 1300));
  assert.equal((await read()).filter((l) => l.includes('"msg":"line"')).length, 3);
  flush(); // nothing left: a no-op
});

test('bufferedLogDestination writes a batch as soon as 64 KiB of lines are held, in the order logged', async (t) => {
  const dir = await tempDir();
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'full.log');
  const { destination, close } = bufferedLogDestination({ file, name: 'test' });
  t.after(close);
  const logger = pino({ base: null }, destination);
  const access = new AccessLog(logger, 'request');
  // About 100 characters a line: 1,000 lines pass 64 KiB once, not twice.
  const expected: string[] = [];
  for (let i = 0; i < 1000; i++) {
    if (i % 100 === 0) {
      logger.warn({ i }, 'other');
      expected.push(`other ${i}`);
    }
    access.write(`"i":${i},"pad":"${'x'.repeat(40)}"`);
    expected.push(`request ${i}`);
  }
  const read = async (): Promise<string[]> =>
    (await readFile(file, 'utf8'))
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => {
        const { msg, i } = JSON.parse(l) as { msg: string; i: number };
        return `${msg} ${i}`;
      });
  // Written at once, with no timer having run: whole lines, in the order logged.
  const first = await read();
  assert.ok(first.length > 500 && first.length < expected.length, `${first.length} lines`);
  assert.deepEqual(first, expected.slice(0, first.length));
  close(); // writes the rest
  assert.deepEqual(await read(), expected);
});

test('bufferedLogDestination writes what it holds when the process dies of an uncaught exception', async (t) => {
  const dir = await tempDir();
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'crash.log');
  const script = `
    import { pino } from 'pino';
    import { bufferedLogDestination } from '@filetracker/http-telemetry';
    const { destination } = bufferedLogDestination({ file: ${JSON.stringify(file)}, name: 't' });
    const logger = pino(destination);
    logger.error('the line before the crash');
    setTimeout(() => { throw new Error('boom'); }, 10);`;
  // Run from the test directory, so the workspace packages resolve as they do here.
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: path.dirname(fileURLToPath(import.meta.url)),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(child, 'exit')) as [number];
  assert.equal(code, 1, stderr);
  assert.match(stderr, /boom/);
  assert.match(await readFile(file, 'utf8'), /the line before the crash/);
});
