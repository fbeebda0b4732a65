import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rm, stat, utimes } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import {
  openScaleOutStore,
  sweepStore,
  type BlobStore,
  type ScaleOutStore,
  type StagedBlob,
} from '@filetracker/server';
import {
  freshBucket,
  openTestScaleOutStore,
  scaleOutArgs,
  scaleOutMissing,
  startScaleOutEngines,
  SWIFT_S3_ENV,
  type ScaleOutEngines,
} from './helpers/scale-out.js';
import { startServer, tempDir } from './helpers/server.js';
import {
  deleteFile,
  getFile,
  listeningUrl,
  putFile,
  sha256,
  sleep,
  spawnBin,
  waitFor,
  type PutMode,
  type Spawned,
} from './helpers/store-traffic.js';

// The scale-out store's garbage collection (issue 14: "a sweep racing uploads of the same
// content never deletes a referenced blob"; one sweeper at a time, elected through the
// database; orphans of crashed uploads swept), on real PostgreSQL 15 and Swift 2.30.

const BIN = 'packages/server/bin/ft-server.mjs';
const V = 1_700_000_000;

const noEngines = await scaleOutMissing();

/** A body as an upload sends it to the blob port. */
const stageOf = (blobs: BlobStore, content: Buffer): Promise<StagedBlob> =>
  blobs.stage(Readable.from([content]), { gzip: false, write: true });

/** A PUT retried while it answers 503 (a blob it verified against was swept: "retry"). */
async function putUntilStored(
  url: string,
  name: string,
  content: Buffer,
  version: number,
  mode: PutMode,
  retried: { count: number },
): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const { status } = await putFile(url, name, content, version, mode);
    if (status === 200) return;
    assert.equal(status, 503, `PUT ${name} (${mode})`);
    assert.ok(attempt < 5, `PUT ${name} still 503 after ${attempt + 1} attempts`);
    retried.count++;
  }
}

/** The value of an unlabelled metric in a /metrics text. */
function metric(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  assert.ok(m, `${name} in /metrics`);
  return Number(m[1]);
}

interface SweeperView {
  leader: number;
  sweeps: number;
  swept: number;
}

async function sweeperOf(url: string): Promise<SweeperView> {
  const res = await fetch(`${url}/metrics`);
  assert.equal(res.status, 200);
  const text = await res.text();
  return {
    leader: metric(text, 'ft_sweeper_leader'),
    sweeps: metric(text, 'ft_sweeps_total'),
    swept: metric(text, 'ft_swept_blobs_total'),
  };
}

describe('the scale-out sweeper (real PostgreSQL and Swift)', { skip: noEngines }, () => {
  let engines: ScaleOutEngines;
  before(async () => {
    engines = await startScaleOutEngines();
  });
  after(() => engines?.close());

  it('sweeps with no grace period racing deletes and re-uploads of the same content never remove a blob a name uses', async (t) => {
    const ft = await startServer<ScaleOutStore>({
      open: (dir) => openTestScaleOutStore(engines, dir),
    });
    t.after(() => ft.close());
    const { metadata, blobs } = ft.store;

    // Sweeps back to back for the whole test: blobs at refcount 0 go at once, and every
    // blob in the bucket is an orphan candidate (staging is left alone: uploads in flight).
    let sweeping = true;
    let sweeps = 0;
    const removed = { blobs: 0, orphanBlobs: 0 };
    const sweeper = (async () => {
      while (sweeping) {
        const counts = await sweepStore(metadata, blobs, {
          graceSeconds: 0,
          stagingGraceSeconds: 3600,
        });
        sweeps++;
        removed.blobs += counts.blobs;
        removed.orphanBlobs += counts.orphanBlobs;
      }
    })();
    t.after(async () => {
      sweeping = false;
      await sweeper.catch(() => {});
    });

    const NAMES = 6;
    const MODES: PutMode[] = ['gzip-hints', 'plain', 'plain-checksum', 'gzip'];
    const retried = { count: 0 };
    const deadline = Date.now() + 45_000;
    let rounds = 0;
    const contents = new Map<string, Buffer>();
    for (; rounds < 12 && Date.now() < deadline; rounds++) {
      const version = V + 10 * rounds;
      await Promise.all(
        Array.from({ length: NAMES }, async (_, k) => {
          const name = `/gc/n${k}`;
          const content = randomBytes(1024 + 4096 * k);
          await putUntilStored(ft.url, name, content, version, 'plain', retried);
          // Its only name deleted: the blob's refcount is 0 and the sweeps take it...
          assert.equal(await deleteFile(ft.url, name, version), 200);
          // ...while the same content is uploaded again, under the name and a twin.
          const mode = MODES[(k + rounds) % MODES.length]!;
          const twinMode = MODES[(k + rounds + 1) % MODES.length]!;
          await Promise.all([
            putUntilStored(ft.url, name, content, version + 1, mode, retried),
            putUntilStored(ft.url, `/gc/twin${k}`, content, version + 1, twinMode, retried),
          ]);
          contents.set(name, content);
          contents.set(`/gc/twin${k}`, content);
        }),
      );
      // Every name's blob is there and reads back byte for byte, while sweeps go on.
      for (const [name, content] of contents) {
        assert.equal(await blobs.has(sha256(content)), true, `blob of ${name}, round ${rounds}`);
        const got = await getFile(ft.url, name);
        assert.equal(got.status, 200, `${name}, round ${rounds}`);
        assert.ok(got.body.equals(content), `${name} reads back byte-exact, round ${rounds}`);
      }
    }
    sweeping = false;
    await sweeper;
    // One more sweep once quiet: what the names use stays, everything else is gone.
    await sweepStore(metadata, blobs, { graceSeconds: 0 });
    const used = new Set([...contents.values()].map((c) => sha256(c)));
    const listed: string[] = [];
    for await (const digest of blobs.digests()) listed.push(digest);
    for (const digest of used) assert.equal(await blobs.has(digest), true, digest);
    // Asked of each object, not of the listing: Swift's listings may lag deletes.
    for (const digest of listed.filter((d) => !used.has(d))) {
      assert.equal(await blobs.has(digest), false, `unused blob ${digest} swept`);
    }
    const records = await metadata.pool.query<{ digest: string; refs: string }>(
      'SELECT digest, refs FROM blobs',
    );
    assert.deepEqual(new Set(records.rows.map((r) => r.digest)), used);
    assert.ok(
      records.rows.every((r) => r.refs === '2'),
      'each content named twice',
    );
    for (const [name, content] of contents) {
      assert.ok((await getFile(ft.url, name)).body.equals(content), name);
    }
    assert.ok(rounds >= 3, `${rounds} rounds`);
    assert.ok(removed.blobs > 0, 'the sweeps removed blobs at refcount 0 meanwhile');
    t.diagnostic(
      `${rounds} rounds, ${sweeps} sweeps, ${removed.blobs} blobs and ${removed.orphanBlobs} orphans removed, ${retried.count} PUTs answered 503 and retried`,
    );
  });

  it('one of two processes sweeps at a time, and when it is killed the other takes over', async (t) => {
    const db = await engines.postgres.createDatabase();
    const args = [
      '-p',
      '0',
      ...scaleOutArgs(engines, db, freshBucket()),
      '--sweep-interval',
      '0.5',
      '--sweep-grace',
      '1',
    ];
    const spawn = (): Spawned => {
      const proc = spawnBin(BIN, args, { env: { ...process.env, ...SWIFT_S3_ENV } });
      t.after(() => proc.kill());
      return proc;
    };
    const procs = [spawn(), spawn()];
    const urls = await Promise.all(procs.map((p) => listeningUrl(() => p.stdoutLines, p, 60_000)));

    const views = (): Promise<SweeperView[]> => Promise.all(urls.map((u) => sweeperOf(u)));
    const leaderIndex = await waitFor(
      'a sweeper to be elected',
      async () => {
        const v = await views();
        assert.ok(v[0]!.leader + v[1]!.leader <= 1, 'never two sweepers');
        const i = v.findIndex((x) => x.leader === 1);
        return i < 0 ? undefined : { i };
      },
      20_000,
    );
    const leader = leaderIndex.i;
    const follower = 1 - leader;

    // For a while: the same one sweeps, over and over; the other never does.
    const first = await views();
    for (let i = 0; i < 6; i++) {
      await sleep(500);
      const v = await views();
      assert.equal(v[leader]!.leader, 1);
      assert.equal(v[follower]!.leader, 0);
      assert.equal(v[follower]!.sweeps, 0, 'the follower does not sweep');
    }
    assert.ok((await views())[leader]!.sweeps > first[leader]!.sweeps, 'the leader sweeps');

    // A blob no name uses, made through the follower, is removed by the leader.
    const content = Buffer.from('unused soon');
    assert.equal((await putFile(urls[follower]!, '/sw/a', content, V)).status, 200);
    assert.equal(await deleteFile(urls[follower]!, '/sw/a', V), 200);
    await waitFor(
      'the leader to sweep the unused blob',
      async () => {
        return (await sweeperOf(urls[leader]!)).swept >= 1;
      },
      20_000,
    );

    // The leader dies without a word: its session ends, and the lock with it.
    const killedAt = performance.now();
    await procs[leader]!.kill('SIGKILL');
    await waitFor(
      'the other process to become the sweeper',
      async () => (await sweeperOf(urls[follower]!)).leader === 1,
      20_000,
    );
    const takeoverMs = performance.now() - killedAt;
    const prior = await sweeperOf(urls[follower]!);
    const kept = Buffer.from('still named');
    assert.equal((await putFile(urls[follower]!, '/sw/kept', kept, V)).status, 200);
    assert.equal(
      (await putFile(urls[follower]!, '/sw/b', Buffer.from('unused too'), V)).status,
      200,
    );
    assert.equal(await deleteFile(urls[follower]!, '/sw/b', V), 200);
    await waitFor(
      'the new sweeper to sweep',
      async () => {
        const v = await sweeperOf(urls[follower]!);
        return v.sweeps > prior.sweeps && v.swept >= 1;
      },
      20_000,
    );
    assert.ok((await getFile(urls[follower]!, '/sw/kept')).body.equals(kept));
    t.diagnostic(`the follower took over ${Math.round(takeoverMs)} ms after the SIGKILL`);
  });

  const layouts = [
    {
      name: 'a bucket (Swift): staging keys and blob objects by LastModified',
      open: (dir: string) => openTestScaleOutStore(engines, dir),
      /** Makes what was made so far older than the grace period: time passes. */
      age: async (_items: Aged[], graceSeconds: number) => sleep((graceSeconds + 2) * 1000),
    },
    {
      name: '-d DIR: ft-tmp/ and blobs/ files by mtime',
      open: async (dir: string) =>
        openScaleOutStore({ db: await engines.postgres.createDatabase(), dir, poolSize: 8 }),
      /** Makes the files older than the grace period: their mtime set back. */
      age: async (items: Aged[], graceSeconds: number) => {
        const then = new Date(Date.now() - (graceSeconds + 60) * 1000);
        for (const item of items) await utimes(item.file!, then, then);
      },
    },
  ];
  interface Aged {
    file?: string | undefined;
  }

  for (const layout of layouts) {
    it(`orphans older than the grace period are removed, younger ones kept: ${layout.name}`, async (t) => {
      const GRACE = 4;
      const ft = await startServer<ScaleOutStore>({ open: layout.open });
      t.after(() => ft.close());
      const { metadata, blobs } = ft.store;
      const local = !('client' in blobs);
      const fileOf = (digest: string): string => `${ft.dir}/blobs/${digest.slice(0, 2)}/${digest}`;

      // A named file, and the leftovers of two crashed uploads: one staged and never
      // committed, one whose blob was committed but never its record.
      const named = Buffer.from('a file with a name');
      assert.equal((await putFile(ft.url, '/o/named', named, V)).status, 200);
      const oldStaged = await stageOf(blobs, randomBytes(3000));
      const oldOrphan = await stageOf(blobs, randomBytes(3000));
      await blobs.commit(oldOrphan);
      await layout.age(
        local
          ? [
              { file: oldStaged.location },
              { file: fileOf(oldOrphan.digest) },
              { file: fileOf(sha256(named)) },
            ]
          : [],
        GRACE,
      );
      // The same, younger than the grace period.
      const youngStaged = await stageOf(blobs, randomBytes(3000));
      const youngOrphan = await stageOf(blobs, randomBytes(3000));
      await blobs.commit(youngOrphan);

      const counts = await sweepStore(metadata, blobs, { graceSeconds: GRACE });
      assert.deepEqual(counts, { blobs: 0, orphanBlobs: 1, orphanStaging: 1 });
      assert.equal(await blobs.has(oldOrphan.digest), false, 'old orphan blob removed');
      assert.equal(await blobs.has(youngOrphan.digest), true, 'young orphan blob kept');
      assert.equal(await blobs.has(sha256(named)), true, 'a named blob is never an orphan');
      assert.ok((await getFile(ft.url, '/o/named')).body.equals(named));
      // The young staged upload can still be committed; the old one is gone.
      await blobs.commit(youngStaged);
      assert.equal(await blobs.has(youngStaged.digest), true);
      if (local) {
        await assert.rejects(stat(oldStaged.location!), { code: 'ENOENT' });
      } else {
        await assert.rejects(blobs.commit(oldStaged), /gone/);
      }
      assert.equal(await blobs.has(oldStaged.digest), false);
    });
  }
});

describe('ft-server sweeper flags', () => {
  it('--sweep-interval and --sweep-grace without --db are a usage error (exit 2)', async (t) => {
    const dir = await tempDir('ft-sweep-cli-');
    t.after(() => rm(dir, { recursive: true, force: true }));
    const env = { ...process.env };
    delete env.FT_DB;
    const proc = spawnBin(BIN, ['-d', dir, '-p', '0', '--sweep-grace', '60'], { env });
    const { code } = await proc.exited;
    assert.equal(code, 2, proc.stderr());
    assert.match(proc.stderr(), /^error: --sweep-interval and --sweep-grace need --db/m);
  });
});
