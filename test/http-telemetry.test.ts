import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Counter, Histogram, Registry } from 'prom-client';
import {
  AccessLog,
  RequestMetrics,
  bufferedLogDestination,
  createLogger,
} from '@filetracker/http-telemetry';
import { httpRequest, startLegacy } from './helpers/legacy-static.js';
import { startProcess, tempDir } from './helpers/server.js';
import { getFile, putFile } from './helpers/store-traffic.js';

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

test('AccessLog writes the line pino would write for the same fields, with the level and time as the logger formats them', async (t) => {
  const dir = await tempDir();
  t.after(() => rm(dir, { recursive: true, force: true }));
  const plainFile = path.join(dir, 'plain.log');
  const plain = pino(
    { name: 'svc', level: 'info' },
    pino.destination({ dest: plainFile, sync: true }),
  );
  // The servers' logger: level names and ISO times (issue 17).
  const ours = createLogger({ name: 'svc', file: path.join(dir, 'ours.log') });
  const odd = '/files/a"b\\c\u0001\u00e9\u2028?x=1';
  const error = { code: 'MISSING_DATE', reason: '"?last_modified=" is required' };
  for (const logger of [plain, ours.logger]) {
    const log = new AccessLog(logger);
    for (const [p, status, answered] of [
      ['/files/plain', 200, undefined],
      [odd, 200, undefined],
      ['/files/x', 400, error],
    ] as const) {
      log.request('GET', p, status, 0, 12, 0.25, answered);
      const fields = {
        method: 'GET',
        path: p,
        status,
        bodyBytesIn: 0,
        bodyBytesOut: 12,
        ms: 0.25,
        ...answered,
      };
      logger.info(fields, 'request');
    }
  }
  ours.flush();
  const read = async (file: string): Promise<Record<string, unknown>[]> => {
    const lines = (await readFile(file, 'utf8')).trimEnd().split('\n');
    assert.equal(lines.length, 6);
    return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  };
  const plainLines = await read(plainFile);
  const ourLines = await read(path.join(dir, 'ours.log'));
  for (const lines of [plainLines, ourLines]) {
    const untimed = lines.map(({ time: _time, ...rest }) => rest);
    for (let i = 0; i < 6; i += 2) assert.deepEqual(untimed[i], untimed[i + 1]);
    assert.equal(lines[2]!.path, odd);
    assert.equal(lines[4]!.code, 'MISSING_DATE');
    assert.equal(lines[4]!.reason, error.reason);
  }
  for (const line of plainLines) {
    assert.equal(line.level, 30);
    assert.equal(typeof line.time, 'number');
  }
  for (const line of ourLines) {
    assert.equal(line.level, 'info');
    assert.equal(typeof line.time, 'string');
    assert.equal(new Date(line.time as string).toISOString(), line.time);
    assert.ok(Math.abs(Date.parse(line.time as string) - Date.now()) < 60_000);
  }

  // Above info, nothing is written.
  const log = new AccessLog(plain);
  plain.level = 'warn';
  assert.equal(log.enabled, false);
  plain.level = 'info';
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
  const access = new AccessLog(logger);
  // About 100 characters a line: 1,000 lines pass 64 KiB once, not twice.
  const expected: string[] = [];
  for (let i = 0; i < 1000; i++) {
    if (i % 100 === 0) {
      logger.warn({ i }, 'other');
      expected.push(`other ${i}`);
    }
    access.request('GET', `/files/${i}/${'x'.repeat(40)}`, 200, 0, i, 0);
    expected.push(`request ${i}`);
  }
  const read = async (): Promise<string[]> =>
    (await readFile(file, 'utf8'))
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => {
        const { msg, i, bodyBytesOut } = JSON.parse(l) as {
          msg: string;
          i?: number;
          bodyBytesOut?: number;
        };
        return `${msg} ${i ?? bodyBytesOut}`;
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

/** The fields of a request line and the JSON type of each, e.g. `status:number`. */
function shapeOf(line: Record<string, unknown>): string[] {
  return Object.entries(line)
    .map(([key, value]) => `${key}:${typeof value}`)
    .sort();
}

test('ft-server and ft-legacy-static write request lines of one schema, answered from memory or by Koa', async (t) => {
  const dir = await tempDir();
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(path.join(dir, 'legacy', 'files'), { recursive: true });
  await writeFile(path.join(dir, 'legacy', 'files', 'a.txt'), 'legacy bytes');

  const server = await startProcess('packages/server/bin/ft-server.mjs', [
    '-d',
    path.join(dir, 'store'),
    '-p',
    '0',
  ]);
  t.after(() => server.stop('SIGKILL'));
  const legacy = await startLegacy(['--root', path.join(dir, 'legacy'), '--port', '0', '-w', '1']);
  t.after(() => legacy.kill());

  assert.equal(
    (await putFile(server.url, '/a.txt', Buffer.from('new bytes'), 1_700_000_000)).status,
    200,
  );
  // The first GET reads the blob (Koa); later ones are answered from memory.
  for (let i = 0; i < 3; i++) assert.equal((await getFile(server.url, '/a.txt')).status, 200);
  assert.equal((await getFile(server.url, '/missing')).status, 404);
  for (let i = 0; i < 3; i++)
    assert.equal((await httpRequest(legacy.url, '/files/a.txt')).status, 200);
  assert.equal((await httpRequest(legacy.url, '/files/missing')).status, 404);
  assert.equal(await server.stop('SIGTERM'), 0);
  legacy.child.kill('SIGTERM');
  assert.equal(await legacy.exited, 0);

  const serverLines = server.lines
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => 'method' in l);
  const legacyLines = legacy.lines.filter((l) => 'method' in l);
  assert.equal(serverLines.length, 5, server.lines.join('\n'));
  assert.equal(legacyLines.length, 4);
  const success = {
    level: '',
    time: '',
    pid: 0,
    hostname: '',
    name: '',
    method: '',
    path: '',
    status: 0,
    bodyBytesIn: 0,
    bodyBytesOut: 0,
    ms: 0,
    msg: '',
  };
  // An error answer's line has its code and reason besides (issue 17).
  const failure = { ...success, code: '', reason: '' };
  for (const line of [...serverLines, ...legacyLines]) {
    const shape = (line.status as number) >= 400 ? failure : success;
    assert.deepEqual(shapeOf(line), shapeOf(shape), JSON.stringify(line));
    assert.equal(line.msg, 'request');
    assert.equal(line.level, 'info');
    assert.equal(new Date(line.time as string).toISOString(), line.time, 'an ISO 8601 time');
  }
  // Both kinds of line, from both servers.
  for (const lines of [serverLines, legacyLines]) {
    assert.deepEqual([...new Set(lines.map((l) => (l.status as number) >= 400))].sort(), [
      false,
      true,
    ]);
  }
  // The other lines have the same level, time, pid, hostname and name.
  const listening = [
    JSON.parse(server.lines.find((l) => l.includes('"listening"'))!) as Record<string, unknown>,
    legacy.lines.find((l) => l.msg === 'listening')!,
  ];
  for (const line of listening) {
    assert.equal(line.level, 'info');
    assert.equal(new Date(line.time as string).toISOString(), line.time);
    assert.equal(typeof line.pid, 'number');
    assert.equal(typeof line.hostname, 'string');
  }
  assert.deepEqual(
    [...new Set(serverLines.map((l) => l.name))].concat([
      ...new Set(legacyLines.map((l) => l.name)),
    ]),
    ['ft-server', 'ft-legacy-static'],
  );
  // Body bytes: the legacy file's own bytes on each 200 it served.
  assert.deepEqual(
    legacyLines.filter((l) => l.status === 200).map((l) => l.bodyBytesOut),
    [12, 12, 12],
  );
});
