import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import { after, before, describe, test, type TestContext } from 'node:test';
import { Readable } from 'node:stream';
import { S3BlobStore, type ScaleOutStore } from '@filetracker/server';
import {
  freshBucket,
  scaleOutArgs,
  scaleOutMissing,
  openTestScaleOutStore,
  startScaleOutEngines,
  SWIFT_S3_ENV,
  type ScaleOutEngines,
} from './helpers/scale-out.js';
import { tempDir } from './helpers/server.js';
import {
  exitWithin,
  getFile,
  listeningUrl,
  putFile,
  sha256,
  spawnBin,
} from './helpers/store-traffic.js';
import { SWIFT_S3_CREDENTIALS, SWIFT_S3_REGION } from './helpers/swift.js';

// ft-recover --db/--blobs (issue 14) on real engines (PostgreSQL 15, Swift's s3api), started
// once for this file; without them these skip and say why.

const SERVER = 'packages/server/bin/ft-server.mjs';
const RECOVER = 'packages/server/bin/ft-recover.mjs';
const V = 1_700_000_000;

const noEngines = await scaleOutMissing();

interface Target {
  db: string;
  bucket: string;
  /** ft-recover's and ft-server's flags for this store. */
  args: string[];
  /** The same store in-process: its database pool and blob store, to look and to damage. */
  store: ScaleOutStore;
}

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe('ft-recover on the scale-out store', { skip: noEngines }, () => {
  let engines: ScaleOutEngines;
  before(async () => {
    engines = await startScaleOutEngines();
  });
  after(() => engines?.close());

  /** A fresh database and bucket, opened in-process (closed after the test). */
  async function target(t: TestContext): Promise<Target> {
    const db = await engines.postgres.createDatabase();
    const bucket = freshBucket();
    const dir = await tempDir('ft-recover-so-');
    const store = await openTestScaleOutStore(engines, dir, { db, bucket }, 2);
    t.after(async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    });
    return { db, bucket, args: scaleOutArgs(engines, db, bucket), store };
  }

  /** An ft-server process on `tg` (stopped when the test ends); its URL. */
  async function serve(t: TestContext, tg: Target): Promise<string> {
    const proc = spawnBin(SERVER, ['-p', '0', ...tg.args], {
      env: { ...process.env, ...SWIFT_S3_ENV },
    });
    t.after(() => proc.kill());
    return listeningUrl(() => proc.stdoutLines, proc, 60_000);
  }

  async function recover(args: string[]): Promise<Ran> {
    const proc = spawnBin(RECOVER, args, { env: { ...process.env, ...SWIFT_S3_ENV } });
    const { code } = await exitWithin(proc, 60_000);
    return { code, stdout: proc.stdoutLines.join('\n'), stderr: proc.stderr() };
  }

  /** Names and records as the database holds them (what a repair may change). */
  async function snapshot(tg: Target): Promise<string> {
    const { pool } = tg.store.metadata;
    const names = await pool.query(`SELECT name, kind, digest, version FROM names ORDER BY name`);
    const blobs = await pool.query(
      'SELECT digest, refs, logical_size, stored_size, zero_since FROM blobs ORDER BY digest',
    );
    return JSON.stringify([names.rows, blobs.rows]);
  }

  async function refsOf(tg: Target, digest: string): Promise<number | undefined> {
    const { rows } = await tg.store.metadata.pool.query<{ refs: string }>(
      'SELECT refs FROM blobs WHERE digest = $1',
      [digest],
    );
    return rows[0] === undefined ? undefined : Number(rows[0].refs);
  }

  /**
   * Stores the gzip of `content` as the object of `digest` behind the servers' backs, by
   * the blob store's own stage and commit (no record): the blob of `content` when `digest`
   * is its sha256, else a corrupt one.
   */
  async function putObject(tg: Target, digest: string, content: Buffer): Promise<void> {
    const staged = await tg.store.blobs.stage(Readable.from([content]), {
      gzip: false,
      write: true,
    });
    await tg.store.blobs.commit({ ...staged, digest });
  }

  test('a clean store checks clean; each kind of damage is reported by --check without a change, repaired without it, and the server serves every remaining name', async (t) => {
    const tg = await target(t);
    const url = await serve(t, tg);
    const files: Record<string, Buffer> = {
      '/a/one': Buffer.from('content one'),
      '/a/two': Buffer.from('content two'),
      '/lost': Buffer.from('content whose object goes'),
      '/bad': Buffer.from('content whose object is corrupted'),
      '/same-as-one': Buffer.from('content one'),
    };
    for (const [name, content] of Object.entries(files)) {
      assert.equal((await putFile(url, name, content, V)).status, 200, name);
    }

    const clean = await recover(['--check', '--full', ...tg.args]);
    assert.equal(clean.code, 0, clean.stderr + clean.stdout);
    assert.match(clean.stdout, /consistent: 5 names, 4 blobs/);

    // The damage: an object deleted, a refcount set wrong, an object's bytes replaced by
    // another content's (valid gzip, wrong hash), an object no record names.
    const lost = sha256(files['/lost']!);
    const bad = sha256(files['/bad']!);
    const two = sha256(files['/a/two']!);
    const stray = Buffer.from('an object nobody uploaded through ft-server');
    await tg.store.blobs.remove(lost);
    await tg.store.metadata.pool.query('UPDATE blobs SET refs = 7 WHERE digest = $1', [two]);
    await putObject(tg, bad, Buffer.from('not what the key says'));
    await putObject(tg, sha256(stray), stray);

    const before = await snapshot(tg);
    const check = await recover(['--check', ...tg.args]);
    assert.equal(check.code, 1, check.stderr);
    assert.match(check.stdout, /^ft-recover: inconsistent: /);
    assert.match(check.stdout, /1 names without a blob/);
    assert.match(check.stdout, /1 wrong refcounts/);
    assert.match(check.stdout, /1 blobs without a record/);
    assert.match(check.stdout, /0 corrupt/);
    assert.match(check.stderr, /\/lost points at blob/);
    const full = await recover(['--check', '--full', ...tg.args]);
    assert.equal(full.code, 1);
    assert.match(full.stdout, /1 corrupt/);
    assert.match(full.stderr, new RegExp(`blob ${bad} is corrupt`));
    assert.equal(await snapshot(tg), before, '--check changed the database');
    assert.equal(await tg.store.blobs.has(lost), false);

    const repair = await recover(tg.args);
    assert.equal(repair.code, 0, repair.stderr);
    assert.match(repair.stdout, /1 names without a blob removed/);
    assert.match(repair.stdout, /1 refcounts fixed/);
    assert.match(repair.stdout, /1 blobs without a record given one/);
    assert.equal(await refsOf(tg, two), 1);
    assert.equal(await refsOf(tg, sha256(stray)), 0);
    assert.equal(await refsOf(tg, lost), undefined, "the missing blob's record is dropped");

    const after = await recover(['--check', ...tg.args]);
    assert.equal(after.code, 0, after.stdout + after.stderr);
    assert.match(after.stdout, /consistent: 4 names, 3 blobs/);
    // The corrupt blob is left with its name (as the local ft-recover does): --full still says so.
    const stillBad = await recover(['--full', ...tg.args]);
    assert.equal(stillBad.code, 1);
    assert.match(stillBad.stdout, /1 corrupt/);

    for (const name of ['/a/one', '/a/two', '/same-as-one']) {
      const got = await getFile(url, name);
      assert.equal(got.status, 200, name);
      assert.deepEqual(got.body, files[name], name);
    }
    assert.equal((await getFile(url, '/lost')).status, 404);

    // The unreferenced blob is removed once it has been at refcount 0 past the grace period.
    await tg.store.metadata.pool.query(
      `UPDATE blobs SET zero_since = now() - interval '2 hours' WHERE digest = $1`,
      [sha256(stray)],
    );
    const past = await recover(['--check', ...tg.args]);
    assert.equal(past.code, 1);
    assert.match(past.stdout, /1 unreferenced blobs past the grace period/);
    const swept = await recover(tg.args);
    assert.equal(swept.code, 0, swept.stderr);
    assert.match(swept.stdout, /1 unreferenced blobs past the grace period removed/);
    assert.equal(await tg.store.blobs.has(sha256(stray)), false);
    assert.equal(await refsOf(tg, sha256(stray)), undefined);
    assert.equal((await recover(['--check', ...tg.args])).code, 0);
  });

  test('refuses an empty database, a bucket that does not exist (creating none), and a bucket that holds none of the blobs, changing nothing', async (t) => {
    const tg = await target(t);
    const url = await serve(t, tg);
    assert.equal((await putFile(url, '/kept', Buffer.from('kept'), V)).status, 200);
    const before = await snapshot(tg);
    const endpoint = ['--s3-endpoint', engines.swift.endpoint];

    const emptyDb = await engines.postgres.createDatabase();
    const noSchema = await recover(['--db', emptyDb, '--blobs', `s3://${tg.bucket}`, ...endpoint]);
    assert.equal(noSchema.code, 1);
    assert.match(noSchema.stderr, /no filetracker store/);

    const missing = freshBucket();
    const noBucket = await recover(['--db', tg.db, '--blobs', `s3://${missing}`, ...endpoint]);
    assert.equal(noBucket.code, 1);
    assert.match(noBucket.stderr, /does not exist/);
    await assert.rejects(
      S3BlobStore.open({
        bucket: missing,
        endpoint: engines.swift.endpoint,
        credentials: SWIFT_S3_CREDENTIALS,
        region: SWIFT_S3_REGION,
        tmpDir: '/nonexistent',
        createBucket: false,
      }),
      /does not exist/,
    );
    const probe = await target(t); // another store's bucket

    // Another store's bucket (exists, none of this database's blobs): a repair would
    // otherwise remove every name.
    const wrong = await recover(['--db', tg.db, '--blobs', `s3://${probe.bucket}`, ...endpoint]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /holds none of the first 1 blobs/);
    assert.equal(await snapshot(tg), before);
    assert.deepEqual((await getFile(url, '/kept')).body, Buffer.from('kept'));
  });

  test('a repair while the server takes writes keeps every acknowledged write, and the store checks clean after', async (t) => {
    const tg = await target(t);
    const url = await serve(t, tg);
    const acked = new Map<string, Buffer>();
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing && i < 400; i++) {
        // Every third content is shared with the name before: dedups race the repair too.
        const content = Buffer.from(`file ${i - (i % 3 === 2 ? 1 : 0)}`);
        const { status } = await putFile(url, `/w/${i}`, content, V + i);
        if (status === 200) acked.set(`/w/${i}`, content);
      }
    })();
    try {
      for (let round = 0; round < 3; round++) {
        const ran = await recover(tg.args);
        assert.equal(ran.code, 0, ran.stderr);
        assert.match(ran.stdout, / 0 names without a blob removed/);
      }
    } finally {
      writing = false;
      await writer;
    }
    assert.ok(acked.size > 0);
    for (const [name, content] of acked) {
      const got = await getFile(url, name);
      assert.equal(got.status, 200, name);
      assert.deepEqual(got.body, content, name);
    }
    const check = await recover(['--check', ...tg.args]);
    assert.equal(check.code, 0, check.stdout + check.stderr);
  });

  test('the object store client’s own warnings (an Expires header that is no date, from an endpoint in front of Swift) are on stderr, not dropped', async (t) => {
    const tg = await target(t);
    // A name, so that --full reads its blob (GetObject: the call whose Expires the SDK parses).
    assert.equal((await putFile(await serve(t, tg), '/warned', Buffer.from('x'), V)).status, 200);
    // Swift's answers, passed on with an Expires header the SDK cannot parse: it warns.
    const swift = new URL(engines.swift.endpoint);
    const odd = createServer((req, res) => {
      const up = request(
        {
          host: swift.hostname,
          port: swift.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, { ...answer.headers, expires: 'not a date' });
          answer.pipe(res);
        },
      );
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    odd.listen(0, '127.0.0.1');
    await new Promise((resolve) => odd.once('listening', resolve));
    t.after(() => {
      odd.closeAllConnections();
      odd.close();
    });
    const { port } = odd.address() as { port: number };
    const endpoint = tg.args.indexOf('--s3-endpoint') + 1;
    const args = tg.args.map((a, i) => (i === endpoint ? `http://127.0.0.1:${port}` : a));
    const ran = await recover(['--check', '--full', ...args]);
    assert.equal(ran.code, 0, ran.stdout + ran.stderr);
    assert.match(
      ran.stderr,
      /^ft-recover: object store client warning: AWS SDK Warning for S3Client::GetObjectCommand response parsing \(not a date\)/m,
    );
  });
});
