import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { sweepStore, type ScaleOutStore } from '@filetracker/server';
import { prng } from './helpers/fault-prng.js';
import { isRunning } from './helpers/legacy-static.js';
import {
  deleteEffect,
  deleteOp,
  isLinearizable,
  putEffect,
  putOp,
  readOp,
  unknownOutcome,
  type HistoryOp,
  type NameState,
} from './helpers/linearizable.js';
import {
  freshBucket,
  scaleOutArgs,
  scaleOutMissing,
  openTestScaleOutStore,
  startScaleOutEngines,
  SWIFT_S3_ENV,
  type ScaleOutEngines,
} from './helpers/scale-out.js';
import {
  getOnNewConnection,
  startFtServer,
  type FtProcess,
} from './helpers/scale-out-processes.js';
import { tempDir } from './helpers/server.js';
import {
  exitWithin,
  fileUrl,
  getFile,
  putFile,
  sleep,
  slowRequest,
  spawnBin,
  waitFor,
} from './helpers/store-traffic.js';

// Many ft-server processes on one scale-out store (issue 14), on real engines (PostgreSQL
// 15, Swift with s3api) started once for this file: --workers N behind one port, two
// processes on two ports written concurrently (a linearizable history per name), and
// SIGKILL of one of them under load. Without the engines these skip and say why.

const V = 1_700_000_000;
const RECOVER = 'packages/server/bin/ft-recover.mjs';
const noEngines = await scaleOutMissing();

/** A test's seed (FT_TEST_SEED replays one), printed as a diagnostic. */
function seeded(t: { diagnostic(m: string): void }): () => number {
  const seed = Number(process.env.FT_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
  t.diagnostic(`seed ${seed} (set FT_TEST_SEED to replay)`);
  return prng(seed);
}

/** Runs `worker` on every item, `width` at a time. */
async function pool<T>(items: T[], width: number, worker: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await worker(items[next++]!);
    }),
  );
}

/**
 * What the database and the bucket say, behind every process: problems found (empty when
 * consistent). Every name's blob has a row and is in the bucket (asked of the bucket with
 * a HEAD, for the digests of names under `prefix`); every blob's refcount is the number of
 * names that use it; no writer's placeholder is left committed.
 */
async function inconsistencies(store: ScaleOutStore, prefix: string): Promise<string[]> {
  const { pool: db } = store.metadata;
  const problems: string[] = [];
  const noRow = await db.query<{ name: string; digest: string }>(
    `SELECT n.name, n.digest FROM names n LEFT JOIN blobs b ON b.digest = n.digest
      WHERE n.kind = 'f' AND b.digest IS NULL`,
  );
  for (const r of noRow.rows) problems.push(`${r.name}: no blob row for ${r.digest}`);
  const refs = await db.query<{ digest: string; refs: string; used: string }>(
    `SELECT b.digest, b.refs, count(n.name) AS used FROM blobs b
       LEFT JOIN names n ON n.digest = b.digest AND n.kind = 'f'
      GROUP BY b.digest, b.refs HAVING b.refs <> count(n.name)`,
  );
  for (const r of refs.rows) problems.push(`blob ${r.digest}: refs ${r.refs}, used by ${r.used}`);
  const placeholders = await db.query<{ name: string }>(`SELECT name FROM names WHERE kind = 'p'`);
  for (const r of placeholders.rows) problems.push(`${r.name}: a placeholder was committed`);
  const digests = await db.query<{ digest: string }>(
    `SELECT DISTINCT digest FROM names WHERE kind = 'f' AND name LIKE $1`,
    [`${prefix}%`],
  );
  await pool(digests.rows, 8, async ({ digest }) => {
    if (!(await store.blobs.has(digest))) problems.push(`blob ${digest}: not in the bucket`);
  });
  return problems;
}

/** SIGKILLs, when the test ends, every worker `ft` has logged that is still alive. */
function killWorkersAfter(t: { after(fn: () => void): void }, ft: FtProcess): void {
  t.after(() => {
    for (const l of ft.lines()) {
      for (const pid of (l.workers as number[] | undefined) ?? []) {
        if (isRunning(pid)) process.kill(pid, 'SIGKILL');
      }
    }
  });
}

/** GET of `path` on a connection of its own (a worker accepts it anew): status, body, ms. */
async function ask(
  base: string,
  path: string,
): Promise<{ status: number; body: string; ms: number }> {
  const started = performance.now();
  const get = slowRequest(new URL(path, base).href, {
    method: 'GET',
    headers: { Connection: 'close' },
  });
  get.req.setTimeout(10_000, () =>
    get.req.destroy(new Error(`GET ${path}: no answer within 10 s`)),
  );
  const answer = await get.end();
  return {
    status: answer.status,
    body: answer.body.toString(),
    ms: Math.round(performance.now() - started),
  };
}

describe('many ft-server processes on one scale-out store', { skip: noEngines }, () => {
  let engines: ScaleOutEngines;
  before(async () => {
    engines = await startScaleOutEngines();
  });
  after(() => engines?.close());

  /** A fresh database and bucket: the flags, and the store opened in this process too. */
  async function freshStore(t: { after(fn: () => Promise<void>): void }) {
    const db = await engines.postgres.createDatabase();
    const bucket = freshBucket();
    const args = scaleOutArgs(engines, db, bucket);
    const dir = await tempDir('ft-workers-view-');
    const view = await openTestScaleOutStore(engines, dir, { db, bucket }, 4);
    t.after(async () => {
      await view.close();
      await rm(dir, { recursive: true, force: true });
    });
    return { args, view };
  }

  it('--workers 2 with --db: two workers serve one port; a SIGKILLed worker is replaced while requests go on being answered; SIGTERM stops every process', async (t) => {
    const { args } = await freshStore(t);
    const ft = await startFtServer(t, [...args, '--workers', '2']);
    const primary = ft.proc.child.pid!;
    const workers = ft.lines().find((l) => l.msg === 'listening')!.workers as number[];
    killWorkersAfter(t, ft);
    assert.equal(workers.length, 2, JSON.stringify(workers));
    assert.ok(!workers.includes(primary));
    assert.ok(workers.every(isRunning));

    const content = Buffer.from('served by whichever worker\n'.repeat(10));
    assert.equal((await putFile(ft.url, '/w/a.txt', content, V)).status, 200);
    const servedBy = (): Set<unknown> =>
      new Set(
        ft
          .lines()
          .filter((l) => l.msg === 'request' && l.status === 200)
          .map((l) => l.pid),
      );
    // Each request on a connection of its own; the workers accept from one socket and the
    // kernel picks which takes a connection, so ask until both have answered.
    await waitFor(
      'request lines of both workers',
      async () => {
        for (let i = 0; i < 6; i++) {
          assert.equal(await getOnNewConnection(ft.url, '/w/a.txt'), 200);
        }
        return servedBy().size === 2;
      },
      30_000,
    );
    assert.deepEqual([...servedBy()].sort(), [...workers].sort());
    // Only the workers open the store: the primary has no pool to stop.
    assert.ok(
      ft.lines().every((l) => l.msg !== 'worker listening' || workers.includes(l.pid as number)),
    );

    const [victim, survivor] = workers as [number, number];
    process.kill(victim, 'SIGKILL');
    const answers: (number | string)[] = [];
    const start = performance.now();
    // Requests go on being answered while the primary notices and starts a replacement.
    while (ft.lines().filter((l) => l.msg === 'listening').length < 2) {
      answers.push(await getOnNewConnection(ft.url, '/w/a.txt'));
      if (performance.now() - start > 30_000) assert.fail('no replacement within 30 s');
    }
    t.diagnostic(`${answers.length} requests answered while the worker was replaced`);
    assert.ok(answers.length > 0);
    assert.deepEqual(
      answers.filter((a) => a !== 200),
      [],
    );
    const death = ft.lines().find((l) => l.msg === 'worker died; starting another')!;
    assert.equal(death.worker, victim);
    assert.equal(death.signal, 'SIGKILL');
    const again = ft.lines().filter((l) => l.msg === 'listening')[1]!.workers as number[];
    assert.equal(again.length, 2);
    assert.ok(again.includes(survivor) && !again.includes(victim));
    const replacement = again.find((pid) => pid !== survivor)!;
    // The replacement opened the store and serves it.
    await waitFor('a request served by the replacement', async () => {
      assert.equal(await getOnNewConnection(ft.url, '/w/a.txt'), 200);
      return servedBy().has(replacement);
    });
    assert.deepEqual((await getFile(ft.url, '/w/a.txt')).body, content);

    const stopping = performance.now();
    ft.proc.child.kill('SIGTERM');
    assert.equal((await exitWithin(ft.proc, 20_000)).code, 0, ft.proc.stderr());
    t.diagnostic(`SIGTERM to exit: ${Math.round(performance.now() - stopping)} ms`);
    await waitFor('every worker to be gone', () => again.every((pid) => !isRunning(pid)), 5_000);
    assert.ok(!isRunning(victim));
  });

  it('--workers 2: /status and /metrics through either worker sum both workers; a stopped worker is left out after 2 s, not waited for; a SIGKILLed worker’s replacement is summed', async (t) => {
    const { args } = await freshStore(t);
    const ft = await startFtServer(t, [...args, '--workers', '2']);
    const [a, b] = ft.lines().find((l) => l.msg === 'listening')!.workers as [number, number];
    killWorkersAfter(t, ft);
    assert.equal((await putFile(ft.url, '/w/s.txt', Buffer.from('summed\n'), V)).status, 200);
    /** The file GETs answered 200, by worker, as the log says (a line trails by up to 1 s). */
    const getsBy = (pids: number[]): number =>
      ft
        .lines()
        .filter(
          (l) =>
            l.msg === 'request' &&
            l.method === 'GET' &&
            l.path === '/files/w/s.txt' &&
            l.status === 200 &&
            pids.includes(l.pid as number),
        ).length;
    const requestLines = (pids: number[]): number =>
      ft.lines().filter((l) => l.msg === 'request' && pids.includes(l.pid as number)).length;
    /** Whether the log shows `path` answered by each of `pids`. */
    const answeredBy = (path: string, pids: number[]): boolean =>
      pids.every((pid) =>
        ft.lines().some((l) => l.msg === 'request' && l.path === path && l.pid === pid),
      );
    let gets = 0;
    await waitFor(
      'file GETs answered by both workers',
      async () => {
        for (let i = 0; i < 6; i++, gets++) {
          assert.equal(await getOnNewConnection(ft.url, '/w/s.txt'), 200);
        }
        return getsBy([a]) > 0 && getsBy([b]) > 0;
      },
      30_000,
    );
    const filesGets = (metrics: string): number => {
      const line = metrics
        .split('\n')
        .find(
          (l) =>
            l.startsWith('ft_http_requests_total{') &&
            l.includes('endpoint="files"') &&
            l.includes('method="GET"') &&
            l.includes('status="200"'),
        );
      return line === undefined ? 0 : Number(line.split(' ').pop());
    };

    /**
     * /status and /metrics, asked on new connections until each worker answered both
     * (the kernel picks the worker), count `expected` file GETs and every request logged.
     */
    const assertSummed = async (pids: number[], expected: () => number): Promise<void> => {
      // The last GETs are counted when their response has closed, a moment after the client
      // has it, and logged up to 1 s later: wait until both agree.
      let seen = -1;
      await waitFor(
        `/metrics to count the file GETs logged`,
        async () => (seen = filesGets((await ask(ft.url, '/metrics')).body)) === expected(),
        10_000,
      ).catch((err: Error) => {
        throw new Error(`${err.message}: /metrics counts ${seen}, the log ${expected()}`);
      });
      const want = expected();
      await waitFor(
        '/status and /metrics answered by each worker',
        async () => {
          const logged = requestLines(pids);
          const status = await ask(ft.url, '/status');
          assert.equal(status.status, 200);
          const body = JSON.parse(status.body) as {
            requests: number;
            workers: { pids: number[]; missing: number };
          };
          assert.deepEqual(body.workers, { pids: [...pids].sort((x, y) => x - y), missing: 0 });
          // Every request logged before it was counted before it, by whichever worker.
          assert.ok(body.requests >= logged, `${body.requests} requests, ${logged} logged`);
          const metrics = await ask(ft.url, '/metrics');
          assert.equal(metrics.status, 200);
          assert.equal(filesGets(metrics.body), want);
          assert.match(metrics.body, /^ft_workers_summed 2$/m);
          assert.match(metrics.body, /^ft_workers_missing 0$/m);
          return answeredBy('/status', pids) && answeredBy('/metrics', pids);
        },
        30_000,
      );
    };
    await assertSummed([a, b], () => gets);

    // A worker that cannot answer (stopped: new connections go to the other) is left out
    // after 2 s, and the answers say so.
    process.kill(b, 'SIGSTOP');
    try {
      const status = await ask(ft.url, '/status');
      assert.equal(status.status, 200);
      const body = JSON.parse(status.body) as { workers: Record<string, unknown> };
      assert.deepEqual(body.workers.pids, [a]);
      assert.equal(body.workers.missing, 1);
      assert.match(
        String(body.workers.problem),
        /1 worker\(s\) left out: no answer within 2000 ms/,
      );
      assert.ok(status.ms >= 1_900 && status.ms < 6_000, `answered in ${status.ms} ms`);
      const metrics = await ask(ft.url, '/metrics');
      assert.equal(metrics.status, 200);
      assert.match(metrics.body, /^ft_workers_summed 1$/m);
      assert.match(metrics.body, /^ft_workers_missing 1$/m);
      assert.equal(filesGets(metrics.body), getsBy([a]));
      t.diagnostic(`with a worker stopped: /status ${status.ms} ms, /metrics ${metrics.ms} ms`);
    } finally {
      process.kill(b, 'SIGCONT');
    }

    // A SIGKILLed worker: answers stay bounded meanwhile, and its replacement is summed.
    process.kill(a, 'SIGKILL');
    for (const path of ['/status', '/metrics']) {
      const during = await ask(ft.url, path);
      assert.equal(during.status, 200, `${path} right after a SIGKILL: ${during.body}`);
      assert.ok(during.ms < 6_000, `${path} took ${during.ms} ms`);
    }
    await waitFor(
      'a replacement listening',
      () => ft.lines().filter((l) => l.msg === 'listening').length === 2,
      30_000,
    );
    const again = ft.lines().filter((l) => l.msg === 'listening')[1]!.workers as number[];
    const replacement = again.find((pid) => pid !== b)!;
    assert.ok(again.includes(b) && !again.includes(a), JSON.stringify(again));
    await waitFor(
      'a file GET served by the replacement',
      async () => {
        assert.equal(await getOnNewConnection(ft.url, '/w/s.txt'), 200);
        return getsBy([replacement]) > 0;
      },
      30_000,
    );
    // The killed worker's counts are gone with it; the two alive are summed.
    await assertSummed([b, replacement], () => getsBy([b, replacement]));
  });

  it('2 x 32 concurrent writers of the same names through two processes: every answer fits one linearizable history per name, and the store is consistent', async (t) => {
    const rnd = seeded(t);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const { args, view } = await freshStore(t);
    const ends = await Promise.all([startFtServer(t, args), startFtServer(t, args)]);
    const urls = ends.map((e) => e.url);
    // Enough names that the check can decide each history (a few writers overlap on each
    // at any time, where one name for all would be beyond it), few enough that they do.
    const stable = Array.from({ length: 6 }, (_, i) => `/lin/${i % 2 ? 'd/' : ''}stable-${i}`);
    const churn = Array.from({ length: 6 }, (_, i) => `/lin/${i % 2 ? 'd/' : ''}churn-${i}`);
    const names = [...stable, ...churn];
    const body = (version: number, k: number): Buffer =>
      Buffer.from(`${version}:${k}\n`.repeat(50 + k));
    const initial: NameState = { version: V - 1, content: `${V - 1}:0` };
    for (const name of names) {
      assert.equal((await putFile(urls[0]!, name, body(V - 1, 0), V - 1)).status, 200);
    }
    const history = new Map<string, HistoryOp[]>(names.map((n) => [n, []]));
    const problems: string[] = [];

    /** GET through `url`: the state seen, or a problem. */
    const read = async (url: string, name: string): Promise<void> => {
      const call = performance.now();
      const got = await getFile(url, name);
      const ret = performance.now();
      if (got.status === 404) {
        if (stable.includes(name)) problems.push(`GET ${name}: 404 for a name never deleted`);
        history.get(name)!.push(readOp(call, ret, null));
        return;
      }
      if (got.status !== 200) {
        problems.push(`GET ${name} through ${url}: ${got.status}`);
        return;
      }
      const label = got.body.toString().split('\n')[0]!;
      const [v, k] = label.split(':').map(Number) as [number, number];
      if (!got.body.equals(body(v, k)) || got.version !== v) {
        problems.push(`GET ${name}: a mixed answer (${label}, Last-Modified ${got.version})`);
        return;
      }
      history.get(name)!.push(readOp(call, ret, { version: v, content: label }));
    };

    const PER_WRITER = 2;
    /** Writes answered 503: a store too slow to take them in time (a bounded wait). */
    let unavailable = 0;
    const writers = Array.from({ length: 64 }, (_, i) => async () => {
      const url = urls[i % 2]!;
      for (let n = 0; n < PER_WRITER; n++) {
        const name = pick(names);
        const version = V + Math.floor(rnd() * 6);
        const call = performance.now();
        if (churn.includes(name) && rnd() < 0.3) {
          const res = await fetch(fileUrl(url, name, version), { method: 'DELETE' });
          const { status } = res;
          const reason = await res.text();
          if (status === 503) {
            unavailable++;
            history.get(name)!.push(unknownOutcome(call, deleteEffect(version)));
          } else {
            if (status !== 200 && status !== 404) {
              problems.push(`DELETE ${name}: ${status} ${reason}`);
            }
            history.get(name)!.push(deleteOp(call, performance.now(), version, status));
          }
        } else {
          const k = Math.floor(rnd() * 3);
          const r = await putFile(url, name, body(version, k), version);
          if (r.status === 503) {
            unavailable++;
            history.get(name)!.push(unknownOutcome(call, putEffect(version, `${version}:${k}`)));
          } else {
            if (r.status !== 200) problems.push(`PUT ${name} v${version}: ${r.status}`);
            history.get(name)!.push(putOp(call, performance.now(), version, `${version}:${k}`, r));
          }
        }
      }
    });
    let writing = true;
    let reads = 0;
    const readers = Array.from({ length: 6 }, async (_, i) => {
      while (writing) {
        await read(urls[i % 2]!, pick(names));
        reads++;
      }
    });
    const started = performance.now();
    await Promise.all(writers.map((w) => w()));
    writing = false;
    await Promise.all(readers);
    const writeMs = performance.now() - started;
    // The last word on each name, through both ends.
    for (const url of urls) for (const name of names) await read(url, name);
    t.diagnostic(
      `${64 * PER_WRITER} writes in ${Math.round(writeMs)} ms (${unavailable} answered 503), ${reads} reads`,
    );

    assert.deepEqual(problems.slice(0, 10), []);
    // Writers queue on a name's row lock; on a loaded machine a few may wait past the
    // database timeout and get a 503 (their outcome unknown to the check), not most.
    assert.ok(unavailable <= (64 * PER_WRITER) / 4, `${unavailable} writes answered 503`);
    for (const name of names) {
      assert.ok(
        isLinearizable(history.get(name)!, initial, 20_000_000),
        `${name}: the answers (${history.get(name)!.length} operations through two processes) fit no one-at-a-time order`,
      );
    }
    assert.deepEqual(await inconsistencies(view, '/lin/'), []);
  });

  it('SIGKILL of one of two processes under load, round after round: every acknowledged write is read through the survivor, no name answers 500, and the database and bucket agree', async (t) => {
    const rnd = seeded(t);
    const { args, view } = await freshStore(t);
    const ends: FtProcess[] = await Promise.all([startFtServer(t, args), startFtServer(t, args)]);
    const body = (label: string): Buffer => Buffer.from(`${label}\n`.repeat(30));
    /**
     * What each name may hold: the state its last acknowledged write left, and those of the
     * writes cut off by a kill since (applied or not). Each name has one writer, whose
     * versions only grow, so nothing else can change it.
     */
    const possible = new Map<string, NameState[]>();
    const lastVersion = new Map<string, number>();
    const problems: string[] = [];
    const counts = { acked: 0, cutOff: 0, refused: 0, checked: 0 };
    const key = (s: NameState): string => (s === null ? '-' : `${s.version}:${s.content}`);

    /** One write by writer `w` in `round`, through the process it is bound to. */
    const writeOnce = async (round: number, w: number, own: string[]): Promise<void> => {
      const end = ends[w % 2]!;
      const roll = rnd();
      let name: string;
      let next: NameState;
      if (own.length === 0 || roll < 0.6) {
        name = `/kill/r${round}/w${w}/f${own.length}`;
        own.push(name);
        possible.set(name, [null]);
      } else name = own[Math.floor(rnd() * own.length)]!;
      const states = possible.get(name)!;
      const version = (lastVersion.get(name) ?? V) + 1;
      lastVersion.set(name, version);
      const method = states.some((s) => s !== null) && roll > 0.85 ? 'DELETE' : 'PUT';
      let status: number | undefined;
      try {
        if (method === 'DELETE') {
          next = null;
          const res = await fetch(fileUrl(end.url, name, version), { method });
          await res.arrayBuffer();
          status = res.status;
        } else {
          // Some contents are shared by many names: their blobs are deduplicated.
          const label = rnd() < 0.3 ? `shared-${Math.floor(rnd() * 4)}` : `${name}@${version}`;
          next = { version, content: label };
          const r = await putFile(end.url, name, body(label), version);
          status = r.status;
          if (status === 200 && r.version !== version) {
            problems.push(`PUT ${name} v${version}: Last-Modified ${r.version}`);
          }
        }
      } catch (err) {
        if ((err as { cause?: { code?: string } }).cause?.code === 'ECONNREFUSED') {
          // The process is dead: nothing was sent. Wait for its restart.
          counts.refused++;
          await sleep(50);
          return;
        }
        // Cut off by the kill: may or may not have been applied.
        counts.cutOff++;
        states.push(next!);
        return;
      }
      if (status === 200 || (method === 'DELETE' && status === 404)) {
        counts.acked++;
        possible.set(name, [next]);
      } else {
        problems.push(`${method} ${name} through ${end.url}: ${status}`);
        states.push(next);
      }
    };

    /** GET through `url`: what `name` holds must be one of its possible states. */
    const check = async (url: string, name: string): Promise<void> => {
      counts.checked++;
      const got = await getFile(url, name);
      let seen: NameState;
      if (got.status === 404) seen = null;
      else if (got.status === 200) {
        const label = got.body.toString().split('\n')[0]!;
        if (!got.body.equals(body(label))) {
          problems.push(`GET ${name}: a body that no write sent`);
          return;
        }
        seen = { version: got.version!, content: label };
      } else {
        problems.push(`GET ${name} through ${url}: ${got.status}`);
        return;
      }
      const states = possible.get(name)!;
      if (!states.some((s) => key(s) === key(seen))) {
        problems.push(`GET ${name}: ${key(seen)}, expected one of ${states.map(key).join(' ')}`);
      } else possible.set(name, [seen]);
    };

    /** Two dozen kills, each of a random process at a random instant (about 4 s a round). */
    const ROUNDS = 24;
    const started = performance.now();
    let rounds = 0;
    let restartMs = 0;
    while (rounds < ROUNDS) {
      const round = rounds++;
      let loading = true;
      const load = Array.from({ length: 8 }, async (_, w) => {
        const own: string[] = [];
        while (loading) await writeOnce(round, w, own);
        return own;
      });
      await sleep(200 + rnd() * 1000);
      const victim = rnd() < 0.5 ? 0 : 1;
      await ends[victim]!.proc.kill('SIGKILL');
      // Writes through the survivor go on a moment after the kill.
      await sleep(100);
      loading = false;
      const names = (await Promise.all(load)).flat();
      // The victim starts again while the survivor is checked.
      const restartAt = performance.now();
      const restarting = startFtServer(t, args).then((ft) => {
        restartMs += performance.now() - restartAt;
        return ft;
      });
      const survivor = ends[1 - victim]!;
      await pool(names, 8, (name) => check(survivor.url, name));
      problems.push(...(await inconsistencies(view, `/kill/r${round}/`)));
      ends[victim] = await restarting;
      if (problems.length > 0) break;
    }
    // At the end, every name of every round through both processes.
    const all = [...possible.keys()];
    for (const end of ends) await pool(all, 8, (name) => check(end.url, name));
    problems.push(...(await inconsistencies(view, '/kill/')));
    t.diagnostic(
      `${rounds} rounds in ${Math.round(performance.now() - started)} ms (restarts ${Math.round(restartMs / rounds)} ms each); ${all.length} names; ops ${JSON.stringify(counts)}`,
    );

    assert.deepEqual(problems.slice(0, 10), []);
    assert.equal(rounds, ROUNDS);
    assert.ok(counts.cutOff > 0, 'no kill cut off a write: the load did not overlap the kills');

    // After the sweep (no grace: nothing is in flight now), the real ft-recover --check finds
    // the database and the bucket in agreement: the blobs and staging copies the kills left
    // are gone, every name's blob is there, every refcount true.
    const swept = await sweepStore(view.metadata, view.blobs, { graceSeconds: 0 });
    const live = [...possible.values()].filter(([s]) => s !== null).length;
    const recover = spawnBin(RECOVER, ['--check', ...args], {
      env: { ...process.env, ...SWIFT_S3_ENV },
    });
    const { code } = await exitWithin(recover, 60_000);
    const report = recover.stdoutLines.join('\n');
    t.diagnostic(`swept ${JSON.stringify(swept)}; ft-recover --check: ${report}`);
    assert.equal(code, 0, `${report}\n${recover.stderr()}`);
    assert.match(report, new RegExp(`^ft-recover: consistent: ${live} names, \\d+ blobs`, 'm'));
    for (const end of ends) {
      end.proc.child.kill('SIGTERM');
      assert.equal((await exitWithin(end.proc, 20_000)).code, 0, end.proc.stderr());
    }
  });
});
