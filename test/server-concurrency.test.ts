import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { startServer, type TestServer } from './helpers/server.js';
import { checkStore } from './helpers/store-check.js';
import {
  deleteFile,
  fileUrl,
  getFile,
  putFile,
  sha256,
  slowRequest,
  versionOf,
  waitFor,
  type PutMode,
  type ResponseInfo,
} from './helpers/store-traffic.js';
import {
  deleteOp,
  isLinearizable,
  putOp,
  readOp,
  type HistoryOp,
  type NameState,
} from './helpers/linearizable.js';
import { prng } from './helpers/fault-prng.js';

const BASE = 1_700_000_000;
/** Versions are drawn from BASE..BASE+SPREAD, so equal versions are common. */
const SPREAD = 10;
const MODES: PutMode[] = ['gzip-hints', 'gzip', 'plain', 'plain-checksum'];

/**
 * The contents: each encodes its version and kind, and does not depend on the name, so
 * names share blobs (dedup). Kind 0 is tiny, 1 compressible (~20 KB), 2 is 300 KB of noise
 * whose gzip exceeds the server's in-memory blob limit, so it is streamed from a file.
 */
const contents = new Map<string, Buffer>();
const byDigest = new Map<string, { version: number; content: string }>();
function content(version: number, kind: number): Buffer {
  const id = `${version}:${kind}`;
  let data = contents.get(id);
  if (!data) {
    const head = Buffer.from(`v=${version};k=${kind};`);
    let filler: Buffer;
    if (kind === 0) filler = Buffer.from(`tiny ${version}\n`);
    else if (kind === 1) filler = Buffer.from(`compressible content of ${version}\n`.repeat(600));
    else {
      const rnd = prng(version * 7 + kind);
      filler = Buffer.alloc(300_000);
      for (let i = 0; i < filler.length; i++) filler[i] = (rnd() * 256) | 0;
    }
    data = Buffer.concat([head, filler]);
    contents.set(id, data);
    byDigest.set(sha256(data), { version, content: String(kind) });
  }
  return data;
}

/**
 * What a GET/HEAD answer says, after checking that its body, Last-Modified, ETag and
 * Logical-Size all come from one and the same PUT. Returns a problem string instead when not.
 */
async function observe(
  base: string,
  name: string,
  how: 'gzip' | 'plain' | 'head',
): Promise<NameState | string> {
  if (how === 'head') {
    const res = await fetch(fileUrl(base, name), { method: 'HEAD' });
    await res.arrayBuffer();
    if (res.status === 404) return null;
    if (res.status !== 200) return `HEAD ${name}: status ${res.status}`;
    const etag = res.headers.get('etag') ?? '';
    const known = byDigest.get(etag.replace(/"/g, ''));
    if (!known) return `HEAD ${name}: unknown ETag ${etag}`;
    const version = versionOf(res.headers.get('last-modified'));
    if (version !== known.version) {
      return `HEAD ${name}: Last-Modified ${version} but ETag of version ${known.version}`;
    }
    const size = content(known.version, Number(known.content)).length;
    if (res.headers.get('logical-size') !== String(size)) {
      return `HEAD ${name}: Logical-Size ${res.headers.get('logical-size')}, content ${size}`;
    }
    return known;
  }
  const got = await getFile(base, name, { plain: how === 'plain' });
  if (got.status === 404) return null;
  if (got.status !== 200) return `GET ${name}: status ${got.status}`;
  const m = /^v=(-?\d+);k=(\d);/.exec(got.body.toString('latin1', 0, 40));
  if (!m) return `GET ${name}: body does not start with a version (${got.body.length} bytes)`;
  const version = Number(m[1]);
  const expected = content(version, Number(m[2]));
  if (!got.body.equals(expected)) {
    return `GET ${name}: body of v=${version};k=${m[2]} differs (${got.body.length} of ${expected.length} bytes)`;
  }
  if (got.version !== version) {
    return `GET ${name}: Last-Modified ${got.version} but body of version ${version}`;
  }
  if (got.etag !== `"${sha256(expected)}"`) return `GET ${name}: ETag ${got.etag} not the body's`;
  if (got.logicalSize !== String(expected.length)) {
    return `GET ${name}: Logical-Size ${got.logicalSize}, body ${expected.length}`;
  }
  return { version, content: m[2]! };
}

async function pool<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/**
 * A gzip PUT of `data` whose body stops after 10 bytes, returned once the server has taken
 * it in (its pre-lock look at the name is done); `finish()` sends the rest and answers.
 */
async function startSlowGzipPut(
  srv: TestServer,
  name: string,
  data: Buffer,
  version: number,
): Promise<{ finish(): Promise<ResponseInfo> }> {
  const gz = gzipSync(data);
  const slow = slowRequest(fileUrl(srv.url, name, version), {
    headers: {
      'Content-Encoding': 'gzip',
      'Content-Length': String(gz.length),
      'SHA256-Checksum': sha256(data),
    },
  });
  await slow.write(gz.subarray(0, 10));
  await waitFor('the upload to start', async () => srv.store.stats.uploadsInFlight > 0);
  return {
    async finish() {
      await slow.write(gz.subarray(10));
      return slow.end();
    },
  };
}

describe('server under concurrent writers and readers', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startServer();
  });
  after(async () => {
    await srv?.close();
  });

  test(
    'parallel PUT/DELETE with random versions: readers never see a 404 of a name that always exists nor a mixed answer; the history is linearizable under the max-version rule and the store stays consistent',
    {
      timeout: 55_000,
    },
    async (t) => {
      const seed = Number(process.env.FT_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
      t.diagnostic(`seed ${seed} (set FT_TEST_SEED to replay)`);
      const rnd = prng(seed);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
      const stable = ['/conc/stable-0', '/conc/stable-1', '/conc/deep/er/stable 2 ż'];
      const churn = [
        '/conc/churn-0',
        '/conc/churn-1',
        '/conc/d/churn-2',
        '/conc/d/churn-3',
        '/churn 4',
      ];
      const names = [...stable, ...churn];
      const history = new Map<string, HistoryOp[]>(names.map((n) => [n, []]));
      const problems: string[] = [];
      const initial: NameState = { version: BASE - 1, content: '0' };
      for (const name of names) {
        const r = await putFile(srv.url, name, content(BASE - 1, 0), BASE - 1);
        assert.equal(r.status, 200);
      }

      type Op =
        | { kind: 'put'; name: string; version: number; k: number; mode: PutMode }
        | { kind: 'delete'; name: string; version: number };
      const ops: Op[] = Array.from({ length: 400 }, () => {
        const name = pick(names);
        const version = BASE + Math.floor(rnd() * (SPREAD + 1));
        if (churn.includes(name) && rnd() < 0.35) return { kind: 'delete', name, version };
        return { kind: 'put', name, version, k: Math.floor(rnd() * 3), mode: pick(MODES) };
      });
      const maxPut = new Map<string, number>(names.map((n) => [n, BASE - 1]));
      const statuses: Record<string, number> = {};

      let writing = true;
      const reads = { total: 0, stable: 0, absent: 0 };
      const reader = async (): Promise<void> => {
        while (writing) {
          const name = rnd() < 0.6 ? pick(stable) : pick(churn);
          const how = pick(['gzip', 'gzip', 'plain', 'head'] as const);
          const call = performance.now();
          const seen = await observe(srv.url, name, how);
          const ret = performance.now();
          reads.total++;
          if (typeof seen === 'string') {
            problems.push(seen);
            continue;
          }
          if (stable.includes(name)) {
            reads.stable++;
            if (seen === null) problems.push(`${how} ${name}: 404 for a name that always exists`);
          } else if (seen === null) reads.absent++;
          history.get(name)!.push(readOp(call, ret, seen));
        }
      };
      const readers = Array.from({ length: 6 }, reader);
      await pool(ops, 16, async (op) => {
        const call = performance.now();
        if (op.kind === 'put') {
          const r = await putFile(srv.url, op.name, content(op.version, op.k), op.version, op.mode);
          const ret = performance.now();
          statuses[`PUT ${r.status}`] = (statuses[`PUT ${r.status}`] ?? 0) + 1;
          if (r.status !== 200) problems.push(`PUT ${op.name} v${op.version}: status ${r.status}`);
          else if (r.version === undefined || r.version < op.version) {
            problems.push(`PUT ${op.name} v${op.version}: Last-Modified ${r.version}`);
          }
          maxPut.set(op.name, Math.max(maxPut.get(op.name)!, op.version));
          history.get(op.name)!.push(putOp(call, ret, op.version, String(op.k), r));
        } else {
          const status = await deleteFile(srv.url, op.name, op.version);
          const ret = performance.now();
          statuses[`DELETE ${status}`] = (statuses[`DELETE ${status}`] ?? 0) + 1;
          if (status !== 200 && status !== 404) {
            problems.push(`DELETE ${op.name} v${op.version}: status ${status}`);
          }
          history.get(op.name)!.push(deleteOp(call, ret, op.version, status));
        }
      });
      writing = false;
      await Promise.all(readers);

      const finals = new Map<string, NameState>();
      for (const name of names) {
        const call = performance.now();
        const seen = await observe(srv.url, name, 'gzip');
        assert.equal(typeof seen, 'object', String(seen));
        finals.set(name, seen as NameState);
        history.get(name)!.push(readOp(call, performance.now(), seen as NameState));
      }
      t.diagnostic(
        `answers ${JSON.stringify(statuses)}; reads ${JSON.stringify(reads)}; dedup hits ${srv.store.stats.dedupHits}`,
      );

      assert.deepEqual(problems.slice(0, 10), []);
      assert.ok(reads.stable > 0, 'readers got no answers for the stable names');
      for (const name of stable) {
        assert.equal(finals.get(name)?.version, maxPut.get(name), `${name}: highest version wins`);
      }
      for (const name of names) {
        assert.ok(
          isLinearizable(history.get(name)!, initial),
          `${name}: the answers (${history.get(name)!.length} operations) fit no one-at-a-time order under the max-version rule`,
        );
      }
      const check = await checkStore(srv.dir, { meta: srv.store.metadata.db });
      assert.deepEqual(check.problems, []);
      const present = [...finals.values()].filter((s) => s !== null).length;
      assert.equal(
        [...check.links.values()].reduce((a, b) => a + b, 0),
        present,
      );
    },
  );

  test(
    '50 parallel PUTs of one name with distinct versions are applied one at a time: the highest version wins and only its blob stays',
    {
      timeout: 30_000,
    },
    async () => {
      const name = '/serial/one-name';
      const versions = Array.from({ length: 50 }, (_, i) => BASE + 1000 + i).sort(
        () => Math.random() - 0.5,
      );
      const results = await Promise.all(
        versions.map((v, i) =>
          putFile(srv.url, name, content(v, i % 3), v, MODES[i % MODES.length]).then((r) => ({
            v,
            r,
          })),
        ),
      );
      for (const { v, r } of results) {
        assert.equal(r.status, 200);
        assert.ok(r.version !== undefined && r.version >= v, `PUT v${v} answered ${r.version}`);
      }
      const max = Math.max(...versions);
      assert.equal(results.find((x) => x.v === max)!.r.version, max);
      const final = await observe(srv.url, name, 'plain');
      const maxKind = versions.indexOf(max) % 3;
      assert.deepEqual(final, { version: max, content: String(maxKind) });
      const check = await checkStore(srv.dir, { meta: srv.store.metadata.db });
      assert.deepEqual(check.problems, []);
      assert.equal(check.links.get(sha256(content(max, maxKind))), 1);
    },
  );

  test(
    'a slow upload blocks neither other names nor readers of its own name, and a newer PUT made meanwhile wins when it finishes',
    {
      timeout: 30_000,
    },
    async () => {
      const slowName = '/parallel/slow';
      const old = content(BASE + 2000, 1);
      assert.equal((await putFile(srv.url, slowName, old, BASE + 2000)).status, 200);
      const slow = slowRequest(fileUrl(srv.url, slowName, BASE + 2001));
      await slow.write('v=slow;');
      await waitFor('the upload to reach ft-tmp/', async () => srv.store.stats.uploadsInFlight > 0);

      const started = performance.now();
      const others = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          putFile(srv.url, `/parallel/other-${i}`, content(BASE + 2000 + i, 0), BASE + 2000 + i),
        ),
      );
      for (const r of others) assert.equal(r.status, 200);
      const reading = await observe(srv.url, slowName, 'gzip');
      assert.deepEqual(reading, { version: BASE + 2000, content: '1' });
      const newer = await putFile(srv.url, slowName, content(BASE + 2005, 0), BASE + 2005);
      assert.equal(newer.status, 200);
      assert.equal(newer.version, BASE + 2005);
      assert.ok(performance.now() - started < 10_000);

      await slow.write('the rest of the slow body');
      const answer = await slow.end();
      assert.equal(answer.status, 200);
      assert.equal(versionOf(answer.headers['last-modified'] as string), BASE + 2005);
      assert.deepEqual(await observe(srv.url, slowName, 'plain'), {
        version: BASE + 2005,
        content: '0',
      });
      const check = await checkStore(srv.dir, { meta: srv.store.metadata.db });
      assert.deepEqual(check.problems, []);
    },
  );

  test(
    'a slow gzip upload of a new name does not overwrite a newer PUT of that name made while it was read',
    {
      timeout: 30_000,
    },
    async () => {
      // The slow PUT finds no link before its body is read; by the time it takes the name's
      // lock the name has one, which it must see (not a stale "no link").
      const name = '/parallel/new-and-slow';
      const slow = await startSlowGzipPut(srv, name, content(BASE + 3001, 1), BASE + 3001);
      const newer = await putFile(srv.url, name, content(BASE + 3005, 0), BASE + 3005);
      assert.equal(newer.status, 200);
      assert.equal(newer.version, BASE + 3005);

      const answer = await slow.finish();
      assert.equal(answer.status, 200);
      assert.equal(versionOf(answer.headers['last-modified'] as string), BASE + 3005);
      assert.deepEqual(await observe(srv.url, name, 'plain'), {
        version: BASE + 3005,
        content: '0',
      });
      // An older PUT made afterwards is refused as well, from what the lock's read found.
      const older = await putFile(srv.url, name, content(BASE + 3003, 0), BASE + 3003);
      assert.equal(older.version, BASE + 3005);
      const check = await checkStore(srv.dir, { meta: srv.store.metadata.db });
      assert.deepEqual(check.problems, []);
    },
  );
});

test('a slow upload of a new name whose name becomes a directory while it is read is 409, not answered from a tombstone', async (t) => {
  // In migration mode a PUT of an absent name older than its tombstone is refused with the
  // tombstone's version. Here the name is absent when the upload starts, but a file is put
  // under it meanwhile, so by the time the upload takes the name's lock it is a directory:
  // it must see that (409), not the "no link" it saw first.
  const srv = await startServer({ fallbackUrl: 'http://127.0.0.1:9' });
  t.after(() => srv.close());
  const name = '/becomes/dir';
  await srv.store.metadata.db.putTombstone(name, BASE + 10);
  const slow = await startSlowGzipPut(srv, name, content(BASE + 5, 1), BASE + 5);
  assert.equal(
    (await putFile(srv.url, `${name}/child`, content(BASE + 6, 0), BASE + 6)).status,
    200,
  );
  const answer = await slow.finish();
  assert.equal(answer.status, 409);
  const check = await checkStore(srv.dir, { meta: srv.store.metadata.db });
  assert.deepEqual(check.problems, []);
});
