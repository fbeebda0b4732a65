import assert from 'node:assert/strict';
import { after, before, describe, it, test } from 'node:test';
import { rm } from 'node:fs/promises';
import {
  freshBucket,
  scaleOutArgs,
  scaleOutMissing,
  serveScaleOut,
  startScaleOutEngines,
  type ScaleOutEngines,
} from './helpers/scale-out.js';
import { startPostgres } from './helpers/postgres.js';
import { tempDir } from './helpers/server.js';
import {
  deleteFile,
  exitWithin,
  fileUrl,
  getFile,
  putFile,
  spawnBin,
  waitFor,
} from './helpers/store-traffic.js';

// ft-server on the scale-out backend (issue 14), as real processes on real engines
// (PostgreSQL 15, Swift 2.30 with s3api): the suite's shared ones, or started once for this
// file; without them these skip and say why. The command-line checks need no engine.

const BIN = 'packages/server/bin/ft-server.mjs';
const V = 1_700_000_000;
/** ft-server's database connection timeout (PgMetadataStore's default), and slack for load. */
const DB_TIMEOUT_MS = 10_000;
const ANSWER_BOUND_MS = DB_TIMEOUT_MS + 5_000;

const noEngines = await scaleOutMissing();

/** `/status`'s storeId and the header's; asserts they agree. */
async function storeIdOf(url: string): Promise<string> {
  const res = await fetch(`${url}/status`);
  assert.equal(res.status, 200);
  const body = (await res.json()) as { storeId?: string };
  assert.equal(typeof body.storeId, 'string');
  assert.equal(res.headers.get('x-filetracker-store-id'), body.storeId);
  return body.storeId!;
}

async function headStatus(url: string, name: string): Promise<number> {
  const res = await fetch(fileUrl(url, name), { method: 'HEAD' });
  return res.status;
}

async function listOf(url: string, dir: string): Promise<{ status: number; names: string[] }> {
  const res = await fetch(
    `${url}/list${dir}?last_modified=${encodeURIComponent('Fri, 1 Jan 2100 00:00:00 GMT')}`,
  );
  const text = await res.text();
  return { status: res.status, names: text.split('\n').filter(Boolean).sort() };
}

/** Resolves with `fn`'s result and how long it took. */
async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - start };
}

describe(
  'ft-server on the scale-out backend (real PostgreSQL and Swift)',
  { skip: noEngines },
  () => {
    let engines: ScaleOutEngines;
    before(async () => {
      engines = await startScaleOutEngines();
    });
    after(() => engines?.close());

    const layouts: { name: string; args: (db: string, shared: string) => string[] }[] = [
      {
        name: '--db and --blobs s3://BUCKET (Swift)',
        args: (db) => scaleOutArgs(engines, db, freshBucket()),
      },
      {
        name: '--db and -d DIR (blobs in DIR/blobs/)',
        args: (db, shared) => ['--db', db, '-d', shared],
      },
    ];
    for (const layout of layouts) {
      it(`two processes with ${layout.name} are one store: a write through one is read through the other at once`, async (t) => {
        const db = await engines.postgres.createDatabase();
        const shared = await tempDir('ft-scale-out-');
        t.after(() => rm(shared, { recursive: true, force: true }));
        const args = layout.args(db, shared);
        const [a, b] = await Promise.all([
          serveScaleOut(t, args),
          serveScaleOut(t, [...args, '--workers', '2']),
        ]);
        assert.notEqual(a.url, b.url);
        assert.equal(await storeIdOf(a.url), await storeIdOf(b.url), 'one storeId');

        // Read through b before the write: a name cache in b would now hold "absent".
        assert.equal((await getFile(b.url, '/shared/one.txt')).status, 404);
        const content = Buffer.from('written through a, read through b\n'.repeat(20));
        assert.equal((await putFile(a.url, '/shared/one.txt', content, V)).status, 200);
        const got = await getFile(b.url, '/shared/one.txt');
        assert.equal(got.status, 200);
        assert.deepEqual(got.body, content);
        assert.equal(got.version, V);
        assert.equal(await headStatus(b.url, '/shared/one.txt'), 200);
        assert.deepEqual(await listOf(b.url, '/shared'), { status: 200, names: ['one.txt'] });

        // A newer version through b replaces what a serves, at once.
        const newer = Buffer.from('replaced through b');
        assert.equal((await putFile(b.url, '/shared/one.txt', newer, V + 1)).status, 200);
        const again = await getFile(a.url, '/shared/one.txt');
        assert.deepEqual(again.body, newer);
        assert.equal(again.version, V + 1);

        assert.equal(await deleteFile(a.url, '/shared/one.txt', V + 1), 200);
        assert.equal((await getFile(b.url, '/shared/one.txt')).status, 404);
        assert.equal(await headStatus(b.url, '/shared/one.txt'), 404);
        assert.deepEqual(await listOf(b.url, '/shared'), { status: 200, names: [] });

        // With --db, --workers 2 is two worker processes behind b's port.
        const listening = b.proc.stdoutLines.find((l) => l.includes('"listening"'))!;
        assert.equal((JSON.parse(listening) as { workers: number[] }).workers.length, 2);

        // SIGTERM: requests finished, the pool ended, exit 0.
        for (const p of [a, b]) {
          p.proc.child.kill('SIGTERM');
          assert.equal((await exitWithin(p.proc, 15_000)).code, 0, p.proc.stderr());
        }
      });
    }

    it(`PostgreSQL stopped: requests answer 503 within ${ANSWER_BOUND_MS / 1000} s, /healthz says database, and service resumes when it is back`, async (t) => {
      // A PostgreSQL of its own: the suite's shared one is not stopped under other tests.
      const postgres = await startPostgres();
      t.after(() => postgres.close());
      const db = await postgres.createDatabase();
      const ft = await serveScaleOut(t, scaleOutArgs(engines, db, freshBucket()));
      const content = Buffer.from('stored before the database went away');
      assert.equal((await putFile(ft.url, '/pg/kept', content, V)).status, 200);
      assert.equal((await fetch(`${ft.url}/healthz`)).status, 200);

      await postgres.stop();
      const attempts: [string, () => Promise<Response>][] = [
        ['GET', () => fetch(fileUrl(ft.url, '/pg/kept'))],
        ['HEAD', () => fetch(fileUrl(ft.url, '/pg/kept'), { method: 'HEAD' })],
        ['PUT', () => fetch(fileUrl(ft.url, '/pg/new', V), { method: 'PUT', body: 'not stored' })],
        ['DELETE', () => fetch(fileUrl(ft.url, '/pg/kept', V), { method: 'DELETE' })],
        ['list', () => fetch(`${ft.url}/list/pg`)],
      ];
      let slowest = 0;
      for (const [what, request] of attempts) {
        const { value: res, ms } = await timed(request);
        await res.arrayBuffer();
        slowest = Math.max(slowest, ms);
        assert.equal(res.status, 503, what);
        assert.equal(res.headers.get('x-error-code'), 'BACKEND_UNAVAILABLE', what);
        assert.ok(ms < ANSWER_BOUND_MS, `${what} answered in ${Math.round(ms)} ms`);
      }
      const { value: health, ms: healthMs } = await timed(() => fetch(`${ft.url}/healthz`));
      const reason = await health.text();
      assert.equal(health.status, 503);
      assert.match(reason, /^database\b/, reason);
      assert.ok(!reason.trim().includes('\n'), 'one line');
      assert.ok(healthMs < ANSWER_BOUND_MS);
      t.diagnostic(`slowest 503 while PostgreSQL was down: ${Math.round(slowest)} ms`);

      await postgres.start();
      // Service resumes by itself: the pool connects again on demand.
      await waitFor(
        'ft-server to serve again',
        async () => ((await getFile(ft.url, '/pg/kept')).status === 200 ? true : undefined),
        30_000,
      );
      assert.deepEqual((await getFile(ft.url, '/pg/kept')).body, content, 'nothing lost');
      assert.equal((await putFile(ft.url, '/pg/new', Buffer.from('after'), V)).status, 200);
      assert.equal((await getFile(ft.url, '/pg/new')).body.toString(), 'after');
      assert.equal((await fetch(`${ft.url}/healthz`)).status, 200);
    });
  },
);

describe('ft-server scale-out command line', () => {
  /** Runs ft-server with `args` and only `env`'s scale-out variables. */
  async function usage(args: string[], env: NodeJS.ProcessEnv = {}) {
    const base = { ...process.env };
    for (const name of ['FT_DB', 'FT_BLOBS', 'FT_S3_ENDPOINT', 'FILETRACKER_DIR'])
      delete base[name];
    const proc = spawnBin(BIN, args, { env: { ...base, ...env } });
    const { code } = await exitWithin(proc, 15_000);
    return { code, stderr: proc.stderr(), stdout: proc.stdoutLines };
  }

  test('--blobs without --db is a usage error: exit 2, one error line, nothing served', async () => {
    for (const [args, env] of [
      [['--blobs', 's3://bucket', '-p', '0'], {}],
      [['-p', '0'], { FT_BLOBS: 's3://bucket/prefix' }],
    ] as const) {
      const { code, stderr, stdout } = await usage([...args], env);
      assert.equal(code, 2, stderr);
      const errors = stderr.split('\n').filter((l) => l.startsWith('error:'));
      assert.equal(errors.length, 1, stderr);
      assert.match(errors[0]!, /--blobs.*--db/);
      assert.ok(!stdout.some((l) => l.includes('"listening"')));
    }
  });

  test('--db without -d and without --blobs is a usage error (exit 2)', async () => {
    const { code, stderr } = await usage(['--db', 'postgres://ft@127.0.0.1:1/x', '-p', '0']);
    assert.equal(code, 2, stderr);
    assert.match(stderr, /^error: --db/m);
  });

  test('--blobs with something other than s3://BUCKET is a usage error (exit 2)', async () => {
    for (const bad of ['http://bucket', 's3://', 's3://Upper_Case']) {
      const { code, stderr } = await usage(['--db', 'postgres://x@127.0.0.1:1/x', '--blobs', bad]);
      assert.equal(code, 2, `${bad}: ${stderr}`);
    }
  });

  test('a database that cannot be reached: exit 1, one line naming it without its password', async (t) => {
    const dir = await tempDir('ft-scale-out-cli-');
    t.after(() => rm(dir, { recursive: true, force: true }));
    const { code, stderr } = await usage([
      '--db',
      'postgres://ft:secret-word@127.0.0.1:1/x',
      '-d',
      dir,
      '-p',
      '0',
    ]);
    assert.equal(code, 1, stderr);
    assert.equal(stderr.trim().split('\n').length, 1, stderr);
    assert.match(stderr, /database/);
    assert.doesNotMatch(stderr, /secret-word/);
  });

  test('--help explains --db, --blobs and --s3-endpoint with their env variables', async () => {
    const proc = spawnBin(BIN, ['--help']);
    assert.equal((await exitWithin(proc, 15_000)).code, 0);
    const help = proc.stdoutLines.join('\n');
    for (const [flag, env] of [
      ['--db', 'FT_DB'],
      ['--blobs', 'FT_BLOBS'],
      ['--s3-endpoint', 'FT_S3_ENDPOINT'],
    ]) {
      assert.match(help, new RegExp(`${flag} [\\s\\S]*?env:\\s+${env}\\)`), flag);
    }
  });
});
