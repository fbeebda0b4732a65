/**
 * Issue 18, item 2: a dead or hung fallback used to be invisible (307s, `/status` ok,
 * `/healthz` 200, nothing in `/metrics`) while every unmigrated read failed at the clients.
 */
import assert from 'node:assert/strict';
import { mkdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { formatHttpDate } from '@filetracker/shared-protocol';
import { describeEachBackend, type Backend } from './helpers/backends.js';
import { fakeFallback, processStore, serveLegacy, serverProcess } from './helpers/fallback.js';
import { httpRequest } from './helpers/legacy-static.js';
import { tempDir } from './helpers/server.js';
import { freePort, waitFor } from './helpers/store-traffic.js';

/** Probes every 100 ms, each waiting 300 ms at most: state changes show within a second. */
const FAST = { fallbackProbeIntervalMs: 100, fallbackTimeoutMs: 300 };
/** How long a /healthz, /status or /metrics may take: they must never wait for a probe. */
const ANSWER_MS = 1_000;

interface Samples {
  /** Every sample, keyed by the series as written (`name{labels}`). */
  values: Map<string, number>;
  get(series: string): number | undefined;
}

async function metrics(base: string): Promise<Samples> {
  const answer = await httpRequest(base, '/metrics', { timeoutMs: ANSWER_MS });
  assert.equal(answer.status, 200);
  const values = new Map<string, number>();
  for (const line of answer.body.toString().split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    values.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return { values, get: (series) => values.get(series) };
}

interface FallbackStatus {
  url: string;
  state: string;
  since: string;
  lastProbeAt: string | null;
  lastStatus: number | null;
  lastError: string | null;
  lastErrorAt: string | null;
}

async function status(base: string): Promise<{ status: string; fallback?: FallbackStatus }> {
  const answer = await httpRequest(base, '/status', { timeoutMs: ANSWER_MS });
  assert.equal(answer.status, 200);
  return JSON.parse(answer.body.toString()) as { status: string; fallback?: FallbackStatus };
}

async function healthz(base: string): Promise<{ status: number; body: string; ms: number }> {
  const started = Date.now();
  const answer = await httpRequest(base, '/healthz', { timeoutMs: ANSWER_MS });
  return { status: answer.status, body: answer.body.toString(), ms: Date.now() - started };
}

/** Waits for /healthz to say degraded, and checks it stays 200 with "ok" first. */
async function waitDegraded(base: string, fallbackUrl: string): Promise<string> {
  const body = await waitFor('/healthz to say degraded', async () => {
    const h = await healthz(base);
    assert.equal(h.status, 200, 'a dead fallback does not fail the store health');
    return h.body.includes('degraded') ? h.body : undefined;
  });
  const lines = body.split('\n');
  assert.equal(lines[0], 'ok');
  assert.match(lines[1]!, /^degraded: fallback /);
  assert.ok(lines[1]!.includes(fallbackUrl), lines[1]);
  return body;
}

// The probe on every backend (helpers/backends.ts): /healthz joins its word to the store's.
describeEachBackend('ft-server probes its fallback', probeSuite);

function probeSuite(backend: Backend): void {
  test('a dead fallback: /healthz 200 but degraded, /status and /metrics say down; it recovers once ft-legacy-static starts', async (t) => {
    const port = await freePort();
    const fallbackUrl = `http://127.0.0.1:${port}`;
    const server = await backend.start({ fallbackUrl, ...FAST });
    t.after(() => server.close());

    await waitDegraded(server.url, fallbackUrl);
    const down = await status(server.url);
    assert.equal(down.status, 'ok', 'sioworkers keeps its 200 and ok');
    assert.equal(down.fallback?.url, fallbackUrl);
    assert.equal(down.fallback?.state, 'down');
    assert.notEqual(down.fallback?.lastError, null);
    assert.notEqual(down.fallback?.lastErrorAt, null);
    const before = await metrics(server.url);
    assert.equal(before.get('ft_fallback_up'), 0);
    assert.ok(before.get('ft_fallback_probe_errors_total{reason="unreachable"}')! >= 1);
    assert.equal(before.get('ft_fallback_probe_errors_total{reason="timeout"}'), 0);
    // The counters keep moving while it stays down.
    await waitFor('more probes', async () => {
      const now = await metrics(server.url);
      return (
        now.get('ft_fallback_probes_total')! > before.get('ft_fallback_probes_total')! &&
        now.get('ft_fallback_probe_duration_seconds_count')! >
          before.get('ft_fallback_probe_duration_seconds_count')!
      );
    });

    // ft-legacy-static comes up on that port.
    const root = await tempDir('ft-legacy-');
    t.after(() => rm(root, { recursive: true, force: true }));
    await mkdir(path.join(root, 'files'));
    const legacy = await serveLegacy(root, port);
    t.after(() => legacy.stop());
    await waitFor('/healthz to be plain ok again', async () => {
      const h = await healthz(server.url);
      assert.equal(h.status, 200);
      return h.body === 'ok\n';
    });
    const up = await status(server.url);
    assert.equal(up.fallback?.state, 'up');
    assert.ok(up.fallback!.since > down.fallback!.since, 'since moved to the recovery');
    assert.equal(typeof up.fallback?.lastStatus, 'number');
    assert.equal(up.fallback?.lastError, down.fallback?.lastError, 'the last error is kept');
    assert.equal((await metrics(server.url)).get('ft_fallback_up'), 1);
  });

  test('a hung fallback: /healthz answers at once and says degraded; probe timeouts and the DELETE that timed out are counted', async (t) => {
    const hung = await fakeFallback();
    t.after(() => hung.close());
    // Probes of 2 s each, 100 ms apart: nearly always one in flight.
    const server = await backend.start({
      fallbackUrl: hung.url,
      fallbackProbeIntervalMs: 100,
      fallbackTimeoutMs: 2_000,
    });
    t.after(() => server.close());

    await waitDegraded(server.url, hung.url);
    // Each /healthz answers from the last probe's result, never waiting on one in flight.
    for (let i = 0; i < 5; i++) {
      const h = await healthz(server.url);
      assert.equal(h.status, 200);
      assert.ok(h.ms < 500, `/healthz took ${h.ms} ms`);
    }
    assert.equal((await status(server.url)).fallback?.state, 'down');
    const m = await metrics(server.url);
    assert.equal(m.get('ft_fallback_up'), 0);
    assert.ok(m.get('ft_fallback_probe_errors_total{reason="timeout"}')! >= 1);
    assert.equal(m.get('ft_fallback_request_errors_total{code="FALLBACK_TIMEOUT"}'), 0);

    const res = await fetch(
      server.url +
        '/files/only/legacy.txt?last_modified=' +
        encodeURIComponent(formatHttpDate(1_500_000_000)),
      { method: 'DELETE' },
    );
    assert.equal(res.status, 504);
    assert.equal(
      (await metrics(server.url)).get('ft_fallback_request_errors_total{code="FALLBACK_TIMEOUT"}'),
      1,
    );
  });

  test('a fallback answering any HTTP status, even 503, is up', async (t) => {
    const answering = createServer((s) => {
      s.on('error', () => {});
      s.once('data', () =>
        s.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'),
      );
    });
    await new Promise<void>((resolve) => answering.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => answering.close(() => resolve())));
    const fallbackUrl = `http://127.0.0.1:${(answering.address() as { port: number }).port}`;
    const server = await backend.start({ fallbackUrl, ...FAST });
    t.after(() => server.close());

    const fallback = await waitFor('a first probe', async () => {
      const s = await status(server.url);
      return s.fallback?.state === 'unknown' ? undefined : s.fallback;
    });
    assert.equal(fallback.state, 'up');
    assert.equal(fallback.lastStatus, 503);
    assert.equal((await healthz(server.url)).body, 'ok\n');
    assert.equal((await metrics(server.url)).get('ft_fallback_up'), 1);
  });

  test('without --fallback-url there is no fallback in /status nor in /metrics', async (t) => {
    const server = await backend.start();
    t.after(() => server.close());
    assert.equal((await status(server.url)).fallback, undefined);
    const names = [...(await metrics(server.url)).values.keys()];
    assert.deepEqual(
      names.filter((n) => n.startsWith('ft_fallback')),
      [],
    );
    assert.equal((await healthz(server.url)).body, 'ok\n');
  });

  test('ft-server with a hung fallback logs it down, says so in /healthz, and still stops at once on SIGTERM', async (t) => {
    const hung = await fakeFallback();
    t.after(() => hung.close());
    const proc = await serverProcess(t, await processStore(t, backend), [
      '--fallback-url',
      hung.url,
      '--legacy-timeout',
      '0.5',
    ]);

    await waitDegraded(proc.url, hung.url);
    // Log lines are written in batches, at least once a second: the warning may trail
    // the /healthz that already says degraded.
    const warning = await waitFor('the fallback-down warning in the log', () =>
      proc.lines
        .map((l) => JSON.parse(l) as { level: string; msg: string; fallbackUrl?: string })
        .find((l) => l.msg.startsWith('fallback is down')),
    );
    assert.equal(warning?.level, 'warn');
    assert.equal(warning?.fallbackUrl, hung.url);
    // A probe may be in flight (the hung server holds it up to 0.5 s): the exit is not held.
    const started = Date.now();
    assert.equal(await proc.stop('SIGTERM'), 0);
    assert.ok(Date.now() - started < 3_000, `exit took ${Date.now() - started} ms`);
  });
}
