import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it, type TestContext } from 'node:test';
import { StallingRelay } from './helpers/fault-net.js';
import {
  freshBucket,
  scaleOutArgs,
  scaleOutMissing,
  serveScaleOut,
  startScaleOutEngines,
  type ScaleOutEngines,
  type ScaleOutServer,
} from './helpers/scale-out.js';
import { queryValue } from './helpers/postgres.js';
import { fileUrl, putBody, sleep, waitFor } from './helpers/store-traffic.js';
import { startSwift } from './helpers/swift.js';

// The scale-out backend's services failing under a running ft-server (issue 14, "Faults"):
// the Swift proxy stopped and restarted under load, the object store and the database
// gone silent (a relay that stops passing bytes), and the metrics of both services. Real
// PostgreSQL 15 and Swift 2.30 (the suite's shared ones, or started once for this file),
// and a Swift of its own for the test that stops it; without them these skip.

const V = 1_700_000_000;
/**
 * ft-server's bounds (s3-blob-store.ts, pg-metadata-store.ts): a silent object store fails
 * a request after 2 attempts of 3 + 10 s (the SDK arms its idle timer 3 s in); a silent
 * database after the client's 12 s read timeout (10 s to connect). Plus slack for load.
 */
const OBJECT_STORE_BOUND_MS = 2 * 13_000 + 8_000;
const DB_BOUND_MS = 12_000 + 6_000;

const noEngines = await scaleOutMissing();

/** One request's outcome, as the tests judge it. */
interface Answer {
  status: number;
  ms: number;
  /** X-Error-Code. */
  code: string | null;
  body: Buffer;
  /** When it was sent (Date.now()). */
  at: number;
}

/**
 * A request with `fetch`, timed; status 0 when no answer came within `limitMs` (a hang)
 * or the connection failed.
 */
async function timedFetch(url: string, init: RequestInit = {}, limitMs = 60_000): Promise<Answer> {
  const at = Date.now();
  const start = performance.now();
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(limitMs) });
    const body = Buffer.from(await res.arrayBuffer());
    const ms = performance.now() - start;
    return { status: res.status, ms, code: res.headers.get('x-error-code'), body, at };
  } catch {
    return { status: 0, ms: performance.now() - start, code: null, body: Buffer.alloc(0), at };
  }
}

/**
 * `PUT /files/<name>`: plain, or as the Python client sends it (`gzip`: the body gzipped,
 * with Logical-Size and SHA256-Checksum), which ft-server reads whole and commits with one
 * object PUT inside the database transaction.
 */
const put = (base: string, name: string, content: Buffer, gzip = false): Promise<Answer> =>
  timedFetch(fileUrl(base, name, V), {
    method: 'PUT',
    ...putBody(content, gzip ? 'gzip-hints' : 'plain'),
  });
const get = (base: string, name: string): Promise<Answer> => timedFetch(fileUrl(base, name));

/** Asserts a 503 that names `service` in one line, with BACKEND_UNAVAILABLE. */
function assertUnavailable(answer: Answer, service: RegExp, what: string): void {
  const reason = answer.body.toString().trim();
  assert.equal(answer.status, 503, `${what}: ${answer.status} ${reason}`);
  assert.equal(answer.code, 'BACKEND_UNAVAILABLE', what);
  assert.match(reason, service, what);
  assert.ok(!reason.includes('\n'), `${what}: one line: ${reason}`);
}

/** The sum of the samples of `name` in a Prometheus text whose labels include `labels`. */
function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => have.includes(`${k}="${v}"`))) {
      sum += Number(m[3]);
      found = true;
    }
  }
  assert.ok(found, `${name}${JSON.stringify(labels)} in /metrics`);
  return sum;
}

async function metricsOf(base: string): Promise<string> {
  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
}

/** Random content of 100 B to 4 KiB: each one a new blob, never in ft-server's cache. */
const content = (): Buffer => randomBytes(100 + Math.floor(Math.random() * 4000));

/** PUTs `count` files under `dir`; returns them (name -> content). */
async function seed(base: string, dir: string, count: number): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (let i = 0; i < count; i += 8) {
    await Promise.all(
      Array.from({ length: Math.min(8, count - i) }, async (_, j) => {
        const name = `${dir}/s${i + j}`;
        const body = content();
        const answer = await put(base, name, body);
        assert.equal(answer.status, 200, answer.body.toString());
        files.set(name, body);
      }),
    );
  }
  return files;
}

/** Reads every file back through `base`, 8 at a time: each must be byte-exact. */
async function assertAllReadBack(base: string, files: Map<string, Buffer>): Promise<void> {
  const names = [...files.keys()];
  for (let i = 0; i < names.length; i += 8) {
    await Promise.all(
      names.slice(i, i + 8).map(async (name) => {
        const answer = await get(base, name);
        assert.equal(answer.status, 200, `${name}: ${answer.body.toString()}`);
        assert.ok(answer.body.equals(files.get(name)!), `${name} reads back byte-exact`);
      }),
    );
  }
}

/**
 * After a fault has ended: the same ft-server process serves `name` again within 30 s,
 * takes a new upload to `newName`, reads every one of `files` back byte-exact, and /healthz
 * answers 200.
 */
async function assertResumes(
  ft: ScaleOutServer,
  files: Map<string, Buffer>,
  name: string,
  newName: string,
): Promise<void> {
  await waitFor(
    'ft-server to serve again',
    async () => ((await get(ft.url, name)).status === 200 ? true : undefined),
    30_000,
  );
  assert.equal(ft.proc.child.exitCode, null, 'ft-server was not restarted');
  const after = content();
  assert.equal((await put(ft.url, newName, after)).status, 200);
  files.set(newName, after);
  await assertAllReadBack(ft.url, files);
  assert.equal((await timedFetch(`${ft.url}/healthz`)).status, 200);
}

describe('scale-out faults (real PostgreSQL and Swift)', { skip: noEngines }, () => {
  let engines: ScaleOutEngines;
  before(async () => {
    engines = await startScaleOutEngines();
  });
  after(() => engines?.close());

  it('the Swift proxy stopped and restarted under load: 503s naming the object store, nothing lost, service resumes by itself', async (t) => {
    // A Swift of its own: the suite's shared one is not stopped under other tests.
    const swift = await startSwift();
    t.after(() => swift.close());
    const db = await engines.postgres.createDatabase();
    const ft = await serveScaleOut(t, [
      ...scaleOutArgs({ ...engines, swift }, db, freshBucket()),
      '--db-pool-size',
      '6',
    ]);
    const acked = await seed(ft.url, '/load/seed', 64);
    /** Connections ft-server has opened to its database so far (PostgreSQL's own count). */
    const sessions = async (): Promise<number> => {
      await sleep(1_500); // a backend reports its statistics within a second
      return Number(
        await queryValue(
          db,
          'SELECT sessions FROM pg_stat_database WHERE datname = current_database()',
        ),
      );
    };
    const sessionsBefore = await sessions();
    /** Acknowledged names no reader has read yet: their blobs are not in ft-server's cache. */
    const unread = [...acked.keys()];
    /**
     * Seeded names kept unread until the proxy is stopped: readers that have caught up with
     * the writers still send GETs of uncached blobs while it is down.
     */
    const reserve = unread.splice(0, 32);
    let down = false;
    const puts: Answer[] = [];
    const gets: (Answer & { name: string })[] = [];
    const mismatches: string[] = [];
    const before = await metricsOf(ft.url);

    let running = true;
    const writer = async (w: number): Promise<void> => {
      for (let n = 0; running; n++) {
        const name = `/load/w${w}/f${n}`;
        const body = content();
        // Half the writers upload as the Python client does.
        const answer = await put(ft.url, name, body, w % 2 === 0);
        puts.push(answer);
        if (answer.status === 200) {
          acked.set(name, body);
          unread.push(name);
        }
      }
    };
    const reader = async (): Promise<void> => {
      while (running) {
        const name = unread.shift() ?? (down ? reserve.shift() : undefined);
        if (name === undefined) {
          await sleep(20);
          continue;
        }
        const answer = await get(ft.url, name);
        gets.push({ ...answer, name });
        if (answer.status === 200 && !answer.body.equals(acked.get(name)!)) mismatches.push(name);
        // Not read yet after all: a later reader tries it again.
        if (answer.status !== 200) unread.push(name);
      }
    };
    const load = Promise.all([
      ...Array.from({ length: 8 }, (_, w) => writer(w)),
      ...Array.from({ length: 8 }, () => reader()),
    ]);
    t.after(async () => {
      running = false;
      await load;
    });

    await sleep(2_000);
    const stoppedAt = Date.now();
    await swift.stopProxy();
    down = true;
    await sleep(2_000);
    const health = await timedFetch(`${ft.url}/healthz`);
    assertUnavailable(health, /^object store\b/, '/healthz while the proxy is down');
    const during = await metricsOf(ft.url);
    await sleep(1_000);
    await swift.startProxy();
    const restartedAt = Date.now();
    t.diagnostic(`proxy down for ${restartedAt - stoppedAt} ms`);
    // Under load, until a PUT and a GET sent after the restart have succeeded.
    await waitFor(
      'a PUT and a GET to succeed after the restart',
      () =>
        puts.some((a) => a.status === 200 && a.at >= restartedAt) &&
        gets.some((a) => a.status === 200 && a.at >= restartedAt)
          ? true
          : undefined,
      30_000,
    ).catch((err: unknown) => {
      // What the requests since the restart got, and ft-server's last lines: the why.
      const since = (list: Answer[]): string => {
        const by = new Map<string, number>();
        for (const a of list.filter((x) => x.at >= restartedAt)) {
          const key = `${a.status} ${a.body.toString().trim().slice(0, 120)}`;
          by.set(key, (by.get(key) ?? 0) + 1);
        }
        return JSON.stringify([...by]);
      };
      const tail = ft.proc.stdoutLines.slice(-15).join('\n');
      throw new Error(
        `${(err as Error).message}\nPUTs since: ${since(puts)}\nGETs since: ${since(gets)}\n` +
          `unread ${unread.length}, reserve ${reserve.length}\nswift: ${swift.output()}\n${tail}`,
      );
    });
    running = false;
    await load;

    const answers = [...puts, ...gets];
    const slowest = Math.max(...answers.map((a) => a.ms));
    const count = (list: Answer[], status: number, from = 0, to = Infinity): number =>
      list.filter((a) => a.status === status && a.at >= from && a.at < to).length;
    /** When the first request of `list` sent after the restart that succeeded ended. */
    const resumed = (list: Answer[]): number =>
      Math.min(
        ...list.filter((a) => a.status === 200 && a.at >= restartedAt).map((a) => a.at + a.ms),
      ) - restartedAt;
    t.diagnostic(
      `PUT 200/503: ${count(puts, 200)}/${count(puts, 503)}, GET 200/503: ${count(gets, 200)}/${count(gets, 503)}, slowest ${Math.round(slowest)} ms; ` +
        `first PUT and GET 200 ${Math.round(resumed(puts))} and ${Math.round(resumed(gets))} ms after the restart`,
    );
    for (const answer of answers) {
      if (answer.status !== 200) assertUnavailable(answer, /^object store\b/, 'a failed request');
    }
    // A PUT answers the step that failed, not the clean-up of its staged copy after it.
    const cleanups = puts.filter((a) => a.body.toString().includes('(discard: '));
    assert.equal(cleanups.length, 0, cleanups[0]?.body.toString());
    assert.ok(slowest < OBJECT_STORE_BOUND_MS, `slowest answer ${Math.round(slowest)} ms`);
    assert.deepEqual(mismatches, [], 'every 200 GET has the acknowledged bytes');
    // While the proxy was down (requests sent well after the stop), both kinds failed.
    assert.ok(count(puts, 503, stoppedAt + 500, restartedAt) > 0, 'PUTs answered 503 while down');
    assert.ok(count(gets, 503, stoppedAt + 500, restartedAt) > 0, 'GETs answered 503 while down');
    // The same process serves again once the proxy is back.
    assert.equal(ft.proc.child.exitCode, null, 'ft-server was not restarted');
    assert.ok(count(puts, 200, restartedAt) > 0, 'PUTs succeed after the restart');
    assert.ok(count(gets, 200, restartedAt) > 0, 'GETs of uncached blobs succeed after it');
    assert.equal((await timedFetch(`${ft.url}/healthz`)).status, 200);
    await assertAllReadBack(ft.url, acked);
    // An upload the object store failed rolls its transaction back on a healthy database
    // connection and keeps it: an outage of one service does not churn the other's.
    const opened = (await sessions()) - sessionsBefore - 1; // -1: queryValue's own
    t.diagnostic(`database connections opened during the load: ${opened}`);
    assert.ok(opened <= 12, `database connections opened: ${opened} (a pool of 6)`);

    // The metrics: every family present, requests timed, errors counted while down.
    const later = await metricsOf(ft.url);
    const errors = (text: string): number => metric(text, 'ft_object_store_errors_total');
    assert.equal(metric(before, 'ft_object_store_errors_total'), 0);
    assert.ok(errors(during) > 0, 'object-store errors counted while the proxy is down');
    assert.ok(errors(later) >= errors(during));
    assert.ok(metric(later, 'ft_object_store_errors_total', { kind: 'unavailable' }) > 0);
    const timedPuts = (text: string): number =>
      metric(text, 'ft_object_store_request_duration_seconds_count', { operation: 'PutObject' });
    assert.ok(timedPuts(later) >= count(puts, 200), 'each stored upload is a timed PutObject');
    assert.ok(timedPuts(later) > timedPuts(before));
    assert.ok(
      metric(later, 'ft_object_store_request_duration_seconds_count', { operation: 'GetObject' }) >=
        count(gets, 200),
    );
    assert.ok(metric(later, 'ft_db_query_duration_seconds_count') > acked.size);
    for (const kind of ['unavailable', 'timeout', 'conflict', 'query']) {
      assert.equal(metric(later, 'ft_db_errors_total', { kind }), 0, kind);
    }
    assert.equal(metric(later, 'ft_db_pool_size'), 6, '--db-pool-size');
    assert.ok(metric(later, 'ft_db_pool_open') <= 6);
    assert.equal(metric(later, 'ft_db_pool_waiting'), 0);
    assert.equal(metric(later, 'ft_object_store_pool_size'), 64);
    assert.ok(metric(later, 'ft_object_store_pool_open') <= 64);
    assert.equal(metric(later, 'ft_object_store_pool_in_use'), 0);

    // The SDK's own warning about each failed streamed upload is a rate-limited JSON log
    // line, not a console line per request on stderr.
    const sdkNoise = /non-retryable streaming request/;
    assert.doesNotMatch(ft.proc.stderr(), sdkNoise, 'nothing from the SDK on stderr');
    const logged = ft.proc.stdoutLines.filter((l) => sdkNoise.test(l));
    assert.ok(logged.length >= 1, 'the failed uploads are logged');
    assert.ok(
      logged.length <= 2,
      `at most once a minute, not per request: ${logged.length}\n${logged.join('\n')}`,
    );
    const line = JSON.parse(logged[0]!) as Record<string, unknown>;
    assert.equal(line.service, 'object store');
    assert.match(String(line.msg), /^object store client warning: /);
    // Every failed command the SDK reports (a different key each) is one line a minute per
    // command and error too: a handful in all, not one per request.
    const sdkLines = ft.proc.stdoutLines.filter((l) => l.includes('"object store client '));
    const texts = sdkLines.map((l) => String((JSON.parse(l) as { sdk?: unknown }).sdk));
    const repeatedTexts = texts.filter((text, i) => texts.indexOf(text) !== i);
    assert.ok(
      sdkLines.length <= 20 && repeatedTexts.length <= texts.length / 2,
      `the S3 client's lines: ${sdkLines.length}\n${texts.join('\n')}`,
    );
    assert.ok(
      texts.every((text) => !text.includes('blobs/')),
      'no line names a key',
    );
    // The 503s' stacks likewise, once a minute per reason; each request has its own line.
    const stacks = ft.proc.stdoutLines.filter((l) => l.includes('"msg":"request failed"'));
    const reasons = stacks.map((l) => (JSON.parse(l) as { err: { message: string } }).err.message);
    assert.ok(stacks.length >= 1 && stacks.length <= 20, `stacks: ${reasons.join('\n')}`);
    assert.equal(new Set(reasons).size, reasons.length, 'one stack per reason in a minute');
    const failedLines = ft.proc.stdoutLines.filter(
      (l) =>
        l.includes('"msg":"request"') &&
        l.includes('"status":503') &&
        !l.includes('"path":"/healthz"'),
    );
    assert.equal(failedLines.length, count(answers, 503), 'a request line for every 503');
  });

  /** An ft-server whose object store or database is reached through a relay. */
  async function relayed(
    t: TestContext,
    through: 'object store' | 'database',
  ): Promise<{ ft: ScaleOutServer; relay: StallingRelay }> {
    const target =
      through === 'database' ? engines.postgres.port : Number(new URL(engines.swift.endpoint).port);
    const relay = await StallingRelay.start(target);
    t.after(() => relay.close());
    const db = await engines.postgres.createDatabase();
    const bucket = freshBucket();
    const args =
      through === 'database'
        ? [
            '--db',
            db.replace(`:${engines.postgres.port}/`, `:${relay.port}/`),
            '--blobs',
            `s3://${bucket}`,
            '--s3-endpoint',
            engines.swift.endpoint,
          ]
        : [...scaleOutArgs(engines, db, bucket).slice(0, -1), `http://127.0.0.1:${relay.port}`];
    return { ft: await serveScaleOut(t, args), relay };
  }

  it('the object store answering errors (500 InternalError to every request): 503 naming it at once, not a 500; /healthz says it; service resumes', async (t) => {
    const { ft, relay } = await relayed(t, 'object store');
    const files = await seed(ft.url, '/failing', 4);
    const names = [...files.keys()];
    const before = await metricsOf(ft.url);

    relay.answerWith(
      500,
      '<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>' +
        '<Message>We encountered an internal error. Please try again.</Message></Error>',
    );
    t.after(() => relay.pass());
    const [plainPut, gzipPut, firstGet, health] = await Promise.all([
      put(ft.url, '/failing/new', content()),
      put(ft.url, '/failing/gz', content(), true),
      get(ft.url, names[0]!),
      timedFetch(`${ft.url}/healthz`),
    ]);
    const secondGet = await get(ft.url, names[1]!);
    t.diagnostic(
      `answers after ${[plainPut, gzipPut, firstGet, health, secondGet].map((a) => Math.round(a.ms)).join(', ')} ms`,
    );
    assertUnavailable(plainPut, /^object store\b/, 'PUT');
    assertUnavailable(gzipPut, /^object store\b/, 'PUT as the Python client sends it');
    assertUnavailable(firstGet, /^object store\b/, 'GET of an uncached blob');
    assertUnavailable(secondGet, /^object store\b/, 'GET of an uncached blob');
    assertUnavailable(health, /^object store\b/, '/healthz');
    for (const answer of [plainPut, gzipPut, firstGet, secondGet, health]) {
      assert.ok(answer.ms < OBJECT_STORE_BOUND_MS, `answered in ${Math.round(answer.ms)} ms`);
    }
    const during = await metricsOf(ft.url);
    assert.ok(
      metric(during, 'ft_object_store_errors_total', { kind: 'server' }) >
        metric(before, 'ft_object_store_errors_total', { kind: 'server' }),
      'ft_object_store_errors_total{kind="server"} went up',
    );

    relay.pass();
    await assertResumes(ft, files, names[1]!, '/failing/new');
  });

  it('the database answering errors (read-only, as a standby is): writes answer 503 naming it, not a 500; reads go on; writes resume', async (t) => {
    const db = await engines.postgres.createDatabase();
    const ft = await serveScaleOut(t, scaleOutArgs(engines, db, freshBucket()));
    const files = await seed(ft.url, '/readonly', 4);
    const name = new URL(db).pathname.slice(1);
    /** Its cluster's `postgres` database: the setting is changed from outside the database. */
    const admin = db.replace(/\/[^/]*$/, '/postgres');
    /** Ends ft-server's connections, so that its next ones get the database's new setting. */
    const reconnect = (): Promise<string> =>
      queryValue(
        db,
        `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()`,
      );
    await queryValue(admin, `ALTER DATABASE ${name} SET default_transaction_read_only = on`);
    t.after(() => queryValue(admin, `ALTER DATABASE ${name} RESET default_transaction_read_only`));
    await reconnect();

    const refused = [
      await put(ft.url, '/readonly/new', content()),
      await put(ft.url, '/readonly/gz', content(), true),
    ];
    for (const answer of refused)
      assertUnavailable(answer, /^database\b/, 'PUT to a read-only database');
    const deleted = await timedFetch(fileUrl(ft.url, [...files.keys()][0]!, V + 1), {
      method: 'DELETE',
    });
    assertUnavailable(deleted, /^database\b/, 'DELETE on a read-only database');
    await assertAllReadBack(ft.url, files);

    await queryValue(admin, `ALTER DATABASE ${name} RESET default_transaction_read_only`);
    await reconnect();
    await assertResumes(ft, files, [...files.keys()][0]!, '/readonly/new');
  });

  for (const [service, bound, reason] of [
    ['object store', OBJECT_STORE_BOUND_MS, /^object store\b/],
    ['database', DB_BOUND_MS, /^database\b/],
  ] as const) {
    it(`the ${service} gone silent (a relay passing nothing): 503 naming it within ${bound / 1000} s, not a hang; /healthz says it; service resumes`, async (t) => {
      const { ft, relay } = await relayed(t, service);
      const files = await seed(ft.url, '/silent', 4);
      const names = [...files.keys()];
      const before = await metricsOf(ft.url);

      relay.stall();
      t.after(() => relay.resume());
      const started = performance.now();
      // No answer within the bound + 20 s counts as a hang (status 0).
      const limit = bound + 20_000;
      const [putNew, get0, get1, health] = await Promise.all([
        timedFetch(fileUrl(ft.url, '/silent/new', V), { method: 'PUT', body: content() }, limit),
        timedFetch(fileUrl(ft.url, names[0]!), {}, limit),
        timedFetch(fileUrl(ft.url, names[1]!), {}, limit),
        timedFetch(`${ft.url}/healthz`, {}, limit),
      ]);
      const stalledMs = performance.now() - started;
      t.diagnostic(
        `answers after ${[putNew, get0, get1, health].map((a) => Math.round(a.ms)).join(', ')} ms`,
      );
      assertUnavailable(putNew, reason, 'PUT');
      assertUnavailable(get0, reason, 'GET of an uncached blob');
      assertUnavailable(get1, reason, 'GET of an uncached blob');
      assertUnavailable(health, reason, '/healthz');
      assert.ok(stalledMs < bound, `all answered within ${Math.round(stalledMs)} ms`);
      const during = await metricsOf(ft.url);
      const errors = service === 'database' ? 'ft_db_errors_total' : 'ft_object_store_errors_total';
      assert.ok(
        metric(during, errors, { kind: 'timeout' }) > metric(before, errors, { kind: 'timeout' }),
        `${errors}{kind="timeout"} went up`,
      );

      relay.resume();
      await assertResumes(ft, files, names[0]!, '/silent/new');
    });
  }
});
