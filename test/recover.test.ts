import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  lstat,
  mkdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  unlink,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { decodeDoubleEncoded, MetaDb } from '@filetracker/server';
import {
  doubleEncode,
  dumpMeta,
  editMeta,
  getFile,
  listAll,
  makePythonStore,
  putFile,
  runBin,
  runRecover,
  SERVER_BIN,
  sha256,
  snapshotTree,
  writeBlob,
  type PythonFile,
} from './helpers/recover-store.js';
import { startProcess, startServer, tempDir } from './helpers/server.js';

const exists = (p: string): Promise<boolean> =>
  lstat(p).then(
    () => true,
    () => false,
  );

/** A temp dir removed after the test. */
async function storeDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await tempDir('ft-recover-');
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('decodeDoubleEncoded', () => {
  test('turns the Python server on-disk form back into the real name', () => {
    assert.equal(doubleEncode('zażółć'), 'za\u00c5\u00bc\u00c3\u00b3\u00c5\u0082\u00c4\u0087');
    assert.equal(decodeDoubleEncoded(doubleEncode('zażółć')), 'zażółć');
    assert.equal(decodeDoubleEncoded(doubleEncode('gęś.txt')), 'gęś.txt');
  });

  test('leaves ASCII, real UTF-8 and non-UTF-8 latin-1 names alone', () => {
    assert.equal(decodeDoubleEncoded('plain.txt'), undefined);
    assert.equal(decodeDoubleEncoded('zażółć'), undefined); // ż > U+00FF
    assert.equal(decodeDoubleEncoded('café'), undefined); // é alone is not UTF-8
  });
});

describe('ft-recover', () => {
  test('--check passes a consistent store, finds every kind of damage without changing anything, and ft-recover repairs it', async (t) => {
    const dir = await storeDir(t);
    const files: Record<string, [string, number]> = {
      '/a.txt': ['alpha', 1_000_000],
      '/dir/b.txt': ['beta', 2_000_000],
      '/dir/sub/c.txt': ['alpha', 3_000_000], // same blob as /a.txt: refs 2
      '/d.txt': ['delta', 4_000_000],
      '/gone.txt': ['gone', 5_000_000],
    };
    let server = await startProcess(SERVER_BIN, ['-d', dir, '-p', '0']);
    try {
      for (const [name, [content, version]] of Object.entries(files)) {
        await putFile(server.url, name, Buffer.from(content), version);
      }
    } finally {
      assert.equal(await server.stop(), 0);
    }

    const clean = await runRecover([dir, '--check']);
    assert.equal(clean.code, 0, clean.stdout + clean.stderr);

    // Damage of every kind ft-recover knows.
    const alpha = sha256('alpha');
    await unlink(path.join(dir, 'blobs', sha256('gone').slice(0, 2), sha256('gone')));
    await symlink(`../blobs/00/${'0'.repeat(64)}`, path.join(dir, 'links', 'dangling'));
    await symlink('/etc/passwd', path.join(dir, 'links', 'dir', 'outside'));
    await writeFile(path.join(dir, 'links', 'dir', 'regular.txt'), 'not a link');
    await editMeta(dir, async (meta) => {
      const record = await meta.getBlob(alpha);
      assert.equal(record?.refs, 2);
      await meta.putBlob(alpha, { ...record, refs: 5 });
      await meta.deleteBlob(sha256('delta'));
    });
    const orphan = await writeBlob(dir, Buffer.from('orphan'));
    await writeFile(path.join(dir, 'ft-tmp', 'upload-leftover'), 'half an upload');

    const treeBefore = await snapshotTree(dir, ['meta']);
    const metaBefore = await dumpMeta(dir);
    const found = await runRecover([dir, '--check']);
    assert.equal(found.code, 1, found.stdout + found.stderr);
    assert.match(found.stdout, /inconsistent/);
    assert.match(found.stdout, /3 dangling links/);
    assert.match(found.stdout, /1 orphan blobs/);
    assert.match(found.stdout, /1 wrong refcounts/);
    assert.deepEqual(await snapshotTree(dir, ['meta']), treeBefore);
    assert.deepEqual(await dumpMeta(dir), metaBefore);

    const fixed = await runRecover([dir]);
    assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
    assert.match(
      fixed.stdout,
      /^ft-recover: 4 links, 3 blobs, .*3 dangling links removed.*1 orphan blobs removed.*1 refcounts fixed.*0 corrupt$/m,
    );
    const again = await runRecover([dir, '--check']);
    assert.equal(again.code, 0, again.stdout + again.stderr);

    assert.equal(await exists(path.join(dir, 'links', 'dir', 'regular.txt')), false);
    assert.equal(await exists(path.join(dir, 'links', 'dangling')), false);
    assert.equal(await exists(path.join(dir, 'blobs', orphan.slice(0, 2), orphan)), false);
    assert.equal(await exists(path.join(dir, 'ft-tmp', 'upload-leftover')), false);
    const meta = new Map(await dumpMeta(dir));
    assert.equal(JSON.parse(meta.get(`b:${alpha}`)!).refs, 2);
    assert.equal(meta.has(`b:${sha256('gone')}`), false);

    server = await startProcess(SERVER_BIN, ['-d', dir, '-p', '0']);
    try {
      for (const [name, [content, version]] of Object.entries(files)) {
        const got = await getFile(server.url, name);
        if (name === '/gone.txt') {
          assert.equal(got.status, 404);
          continue;
        }
        assert.equal(got.status, 200, name);
        assert.equal(got.body.toString(), content, name);
        assert.equal(got.version, version, name);
      }
      assert.equal((await getFile(server.url, '/d.txt', 'HEAD')).logicalSize, '5');
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });

  test('--full finds a blob whose content does not hash to its name, reports it, leaves it and exits 1', async (t) => {
    const dir = await storeDir(t);
    const app = await startServer({ dir });
    try {
      await putFile(app.url, '/good.txt', Buffer.from('good content'), 1_000);
      await putFile(app.url, '/bad.txt', Buffer.from('original content'), 2_000);
    } finally {
      await app.close();
    }
    const bad = sha256('original content');
    const badBlob = path.join(dir, 'blobs', bad.slice(0, 2), bad);
    await writeFile(badBlob, gzipSync(Buffer.from('tampered content')));
    const good = sha256('good content');
    await editMeta(dir, async (meta) => {
      const record = await meta.getBlob(good);
      await meta.putBlob(good, { ...record!, logicalSize: 999 });
    });

    // Without --full the blob is not read: nothing to see.
    const quick = await runRecover([dir, '--check']);
    assert.equal(quick.code, 0, quick.stdout + quick.stderr);

    const check = await runRecover([dir, '--check', '--full']);
    assert.equal(check.code, 1);
    assert.match(check.stderr, new RegExp(bad));

    const full = await runRecover([dir, '-f', '-s']);
    assert.equal(full.code, 1);
    assert.match(full.stderr, new RegExp(bad));
    assert.match(full.stderr, /1 corrupt/);
    assert.equal(full.stdout, '');
    assert.equal(await exists(badBlob), true);
    assert.equal(await exists(path.join(dir, 'links', 'bad.txt')), true);
    const meta = new Map(await dumpMeta(dir));
    assert.equal(JSON.parse(meta.get(`b:${good}`)!).logicalSize, 'good content'.length);
  });

  test('adopts a store made by the Python 2.x server in place', async (t) => {
    const dir = await storeDir(t);
    const big = randomBytes(4_300_000); // incompressible: too big to trust the gzip ISIZE
    const files: PythonFile[] = [
      { name: '/top.txt', content: Buffer.from('top level\n'), version: 1_500_000_001 },
      { name: '/p/same.txt', content: Buffer.from('top level\n'), version: 1_500_000_002 },
      { name: '/p/q/deep.txt', content: Buffer.from('three deep\n'), version: 1_500_000_003 },
      {
        name: '/p/abs.txt',
        content: Buffer.from('absolute target\n'),
        version: 1_500_000_004,
        absolute: true,
      },
      {
        name: '/zażółć/gęś.txt',
        content: Buffer.from('non-ASCII name\n'),
        version: 1_500_000_005,
        doubleEncoded: true,
      },
      { name: '/empty', content: Buffer.alloc(0), version: 1_500_000_006 },
      { name: '/big.bin', content: big, version: 1_500_000_007 },
      { name: '/kept.txt', content: Buffer.from('x'.repeat(100_000)), version: 1_500_000_008 },
    ];
    await makePythonStore(dir, files);
    const pythonOnly = async (): Promise<Map<string, string>> =>
      snapshotTree(dir, ['links', 'blobs', 'meta', 'ft-tmp', 'ft-store-id']);
    const dbBefore = await pythonOnly();

    const refused = await runBin(SERVER_BIN, ['-d', dir, '-p', '0']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /ft-recover/);

    const check = await runRecover([dir, '--check']);
    assert.equal(check.code, 1);
    assert.equal(await exists(path.join(dir, 'meta')), false);

    const adopted = await runRecover([dir]);
    assert.equal(adopted.code, 0, adopted.stdout + adopted.stderr);
    assert.match(adopted.stdout, /8 links, 7 blobs/);
    assert.equal(await exists(path.join(dir, 'links', doubleEncode('zażółć'))), false);
    assert.equal(await exists(path.join(dir, 'ft-tmp', 'meta-adopt')), false);
    const abs = sha256('absolute target\n');
    assert.equal(
      await readlink(path.join(dir, 'links', 'p', 'abs.txt')),
      `../../blobs/${abs.slice(0, 2)}/${abs}`,
    );
    assert.deepEqual(await pythonOnly(), dbBefore);
    const recheck = await runRecover([dir, '--check']);
    assert.equal(recheck.code, 0, recheck.stdout + recheck.stderr);

    const server = await startProcess(SERVER_BIN, ['-d', dir, '-p', '0']);
    try {
      for (const f of files) {
        const got = await getFile(server.url, f.name);
        assert.equal(got.status, 200, f.name);
        assert.ok(got.body.equals(f.content), f.name);
        assert.equal(got.version, f.version, f.name);
        const head = await getFile(server.url, f.name, 'HEAD');
        assert.equal(head.logicalSize, String(f.content.length), f.name);
      }
      assert.deepEqual(await listAll(server.url), files.map((f) => f.name.slice(1)).sort());
      // The adopted store got its identity at its first open (issue 18).
      const status = (await (await fetch(server.url + '/status')).json()) as { storeId: string };
      assert.equal(status.storeId, (await readFile(path.join(dir, 'ft-store-id'), 'utf8')).trim());
    } finally {
      assert.equal(await server.stop(), 0);
    }
    assert.deepEqual(await pythonOnly(), dbBefore);
  });

  test('adoption leaves a double-encoded name whose real name is taken, with a warning', async (t) => {
    const dir = await storeDir(t);
    await makePythonStore(dir, [
      { name: '/żółw', content: Buffer.from('real'), version: 1_000 },
      { name: '/żółw', content: Buffer.from('encoded'), version: 2_000, doubleEncoded: true },
    ]);
    const run = await runRecover([dir]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stderr, /not renaming/);
    assert.equal(await exists(path.join(dir, 'links', 'żółw')), true);
    assert.equal(await exists(path.join(dir, 'links', doubleEncode('żółw'))), true);
    assert.equal((await runRecover([dir, '--check'])).code, 0);
  });

  test('a resumed adoption does not decode a name it already renamed', async (t) => {
    const dir = await storeDir(t);
    // The real name `Ã©` itself reads as double-encoded `é`: only the marker the first run
    // wrote before renaming it tells the two apart.
    await makePythonStore(dir, [
      { name: '/Ã©', content: Buffer.from('renamed before the crash'), version: 1_000 },
      {
        name: '/zażółć',
        content: Buffer.from('not yet renamed'),
        version: 2_000,
        doubleEncoded: true,
      },
    ]);
    await mkdir(path.join(dir, 'ft-tmp'));
    const adoptDb = await MetaDb.open(path.join(dir, 'ft-tmp', 'meta-adopt'));
    await adoptDb.db.put('a:Ã©', '1');
    await adoptDb.close();

    const run = await runRecover([dir]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.equal(await exists(path.join(dir, 'links', 'Ã©')), true);
    assert.equal(await exists(path.join(dir, 'links', 'é')), false);
    assert.equal(await exists(path.join(dir, 'links', 'zażółć')), true);
    assert.deepEqual(
      (await dumpMeta(dir)).filter(([k]) => k.startsWith('a:')),
      [],
    );
  });

  test('refuses a store a running ft-server holds, at once, naming its pid, and the server keeps serving', async (t) => {
    const dir = await storeDir(t);
    const server = await startProcess(SERVER_BIN, ['-d', dir, '-p', '0']);
    try {
      await putFile(server.url, '/held.txt', Buffer.from('held'), 1_000);
      for (const args of [[dir], [dir, '--check'], [dir, '--purge-tombstones']]) {
        const run = await runRecover(args);
        assert.equal(run.code, 1, args.join(' '));
        assert.match(run.stderr, /in use by a running ft-server/);
        assert.match(run.stderr, new RegExp(`\\(pid ${server.child.pid}\\)`));
        assert.ok(run.ms < 5_000, `took ${run.ms} ms`);
      }
      const got = await getFile(server.url, '/held.txt');
      assert.equal(got.status, 200);
      assert.equal(got.body.toString(), 'held');
      await putFile(server.url, '/after.txt', Buffer.from('after'), 2_000);
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });

  test('--purge-tombstones (or a unique prefix of it) removes every tombstone and nothing else', async (t) => {
    const dir = await storeDir(t);
    const app = await startServer({ dir });
    try {
      await putFile(app.url, '/kept.txt', Buffer.from('kept'), 1_000);
    } finally {
      await app.close();
    }
    await editMeta(dir, async (meta) => {
      await meta.putTombstone('/old/one', 100);
      await meta.putTombstone('/two', 200);
    });
    const plain = await runRecover([dir]);
    assert.equal(plain.code, 0);
    assert.equal((await dumpMeta(dir)).filter(([k]) => k.startsWith('t:')).length, 2);

    const conflict = await runRecover([dir, '--check', '--purge-tombstones']);
    assert.equal(conflict.code, 2, 'a usage error');

    const run = await runRecover([dir, '--purge']);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /2 tombstones purged/);
    const meta = await dumpMeta(dir);
    assert.deepEqual(
      meta.filter(([k]) => k.startsWith('t:')),
      [],
    );
    assert.equal(JSON.parse(new Map(meta).get(`b:${sha256('kept')}`)!).refs, 1);
  });

  test('a file in blobs/ anywhere but where its digest puts it is a stray: counted, then removed, the blob beside it kept', async (t) => {
    const dir = await storeDir(t);
    await makePythonStore(dir, [{ name: '/kept.txt', content: Buffer.from('kept'), version: 1 }]);
    assert.equal((await runRecover([dir])).code, 0);
    const digest = sha256('kept');
    const other = sha256('misplaced');
    const wrongPrefix = other.startsWith('00') ? 'ff' : '00';
    const strays = [
      `${wrongPrefix}/${other}`, // a whole blob under another prefix
      `${digest.slice(0, 3)}/${digest}`, // under a three-digit prefix
      digest, // straight in blobs/
      `${digest.slice(0, 2)}/${digest.toUpperCase()}`,
      `${digest.slice(0, 2)}/${digest}.part`,
    ];
    for (const stray of strays) {
      await mkdir(path.join(dir, 'blobs', path.dirname(stray)), { recursive: true });
      await writeFile(path.join(dir, 'blobs', stray), gzipSync('misplaced'));
    }

    const before = await snapshotTree(dir, ['meta']);
    const check = await runRecover([dir, '--check']);
    assert.equal(check.code, 1, check.stdout + check.stderr);
    assert.match(check.stdout, /1 links, 1 blobs, .*5 stray files in blobs\//);
    assert.deepEqual(await snapshotTree(dir, ['meta']), before);

    const fixed = await runRecover([dir]);
    assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
    assert.match(fixed.stdout, /1 links, 1 blobs, .*5 stray files removed from blobs\//);
    for (const stray of strays) {
      assert.equal(await exists(path.join(dir, 'blobs', stray)), false, stray);
    }
    assert.equal(await exists(path.join(dir, 'blobs', digest.slice(0, 2), digest)), true);
    const again = await runRecover([dir, '--check']);
    assert.equal(again.code, 0, again.stdout + again.stderr);
  });

  test('refuses a directory that holds no store and creates nothing there', async (t) => {
    const dir = await storeDir(t);
    await mkdir(path.join(dir, 'unrelated'));
    const run = await runRecover([dir]);
    assert.equal(run.code, 1);
    assert.deepEqual([...(await snapshotTree(dir)).keys()], ['unrelated']);
    const missing = await runRecover([path.join(dir, 'nope')]);
    assert.equal(missing.code, 1);
    assert.equal((await stat(dir)).isDirectory(), true);
  });

  test('--help explains every option and exits 0', async () => {
    const run = await runRecover(['--help']);
    assert.equal(run.code, 0);
    for (const flag of ['--silent', '--full', '--check', '--purge-tombstones']) {
      assert.match(run.stdout, new RegExp(flag));
    }
  });

  test('a bad command line (unknown option, no DIR, --check with --purge-tombstones) exits 2 and touches nothing', async (t) => {
    const dir = await storeDir(t);
    await mkdir(path.join(dir, 'unrelated'));
    for (const args of [[dir, '--bogus'], [], [dir, '--check', '--purge-tombstones']]) {
      const run = await runRecover(args);
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, /ft-recover --help/);
    }
    assert.deepEqual([...(await snapshotTree(dir)).keys()], ['unrelated']);
  });
});
