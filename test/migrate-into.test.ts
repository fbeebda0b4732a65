import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { HOLDER_FILE } from '@filetracker/server';
import { FiletrackerClient } from '@filetracker/shared-protocol';
import type { MigrationSummary } from '@filetracker/migrate';
import { inspectStore, snapshotTree } from './helpers/fault-store.js';
import {
  legacyTreeFiles,
  makeFtRoot,
  runMigrate,
  smallTreeFiles,
  spawnMigrate,
  stateEntries,
  versionOf,
  waitFor,
  type TreeFile,
} from './helpers/migrate-tree.js';
import { SERVER_BIN, dumpMeta, editMeta, runRecover } from './helpers/recover-store.js';
import { startProcess, type RunningProcess } from './helpers/server.js';

type Report = MigrationSummary & { url: string };

async function readReport(file: string): Promise<Report> {
  return JSON.parse(await readFile(file, 'utf8')) as Report;
}

/** A real ft-server on `dir`, stopped after the test (or earlier by the caller). */
async function serveStore(t: TestContext, dir: string): Promise<RunningProcess> {
  const server = await startProcess(SERVER_BIN, ['-d', dir, '-p', '0']);
  t.after(() => server.stop());
  return server;
}

/** GETs every file from a real ft-server on `dir`: byte-exact, at its version. */
async function assertServed(t: TestContext, dir: string, files: readonly TreeFile[]) {
  const server = await serveStore(t, dir);
  const client = new FiletrackerClient(server.url);
  try {
    for (const file of files) {
      const { data, version } = await client.getBuffer(`/${file.name}`);
      assert.equal(version, versionOf(file), `version of /${file.name}`);
      assert.ok(data.equals(file.content), `content of /${file.name}`);
    }
  } finally {
    client.close();
    await server.stop();
  }
}

/** links/ and blobs/ as they are: proof that nothing was stored. */
function storeFiles(dir: string): Promise<string[]> {
  return snapshotTree(dir, ['meta']);
}

test('--into DIR imports a 1.x tree offline; ft-server then serves every file byte-exact at its version; a rerun is a no-op', async (t) => {
  const files = legacyTreeFiles();
  const ftRoot = await makeFtRoot(t, files);
  const store = path.join(path.dirname(ftRoot), 'ft_root_v2');
  const args = ['./files', '--into', store, '--report', 'report.json'];

  const first = await runMigrate(args, { cwd: ftRoot });
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, new RegExp(`^ft-migrate: uploaded ${files.length} files`, 'm'));
  const report = await readReport(path.join(ftRoot, 'report.json'));
  assert.equal(report.uploaded.files, files.length);
  assert.equal(report.url, store);
  // The store is consistent by its own invariants (links, blobs, refcounts, ft-tmp/ empty).
  assert.deepEqual((await inspectStore(store)).problems, []);
  await assertServed(t, store, files);

  const before = await storeFiles(store);
  const rerun = await runMigrate(args, { cwd: ftRoot });
  assert.equal(rerun.code, 0, rerun.stderr);
  const again = await readReport(path.join(ftRoot, 'report.json'));
  assert.equal(again.uploaded.files, 0);
  assert.equal(again.skipped.byReason['already-done'], files.length);
  assert.deepEqual(await storeFiles(store), before);

  // Without a state file each file is looked up in the store, as a HEAD would be.
  const stateless = await runMigrate([...args, '--no-state'], { cwd: ftRoot });
  assert.equal(stateless.code, 0, stateless.stderr);
  const looked = await readReport(path.join(ftRoot, 'report.json'));
  assert.equal(looked.skipped.byReason['already-there'], files.length);
  assert.deepEqual(await storeFiles(store), before);

  // A dry run on the store writes nothing and names only the file whose mtime moved.
  const touched = path.join(ftRoot, 'files', files[0]!.name);
  const later = files[0]!.mtime + 3600;
  await utimes(touched, later, later);
  const dry = await runMigrate([...args, '--dry-run'], { cwd: ftRoot });
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, new RegExp(`^would upload /${files[0]!.name} `, 'm'));
  assert.equal((await readReport(path.join(ftRoot, 'report.json'))).wouldUpload.files, 1);
  assert.deepEqual(await storeFiles(store), before);
});

test('--into stores each blob at --gzip-level: small files gzipped whole, a large one streamed', async (t) => {
  // Text that gzips very differently at levels 1 and 9; one file past the 1 MiB that
  // ft-migrate reads whole.
  const line = (i: number): string => `${i} ${(i * 7919) % 104729} ${'ab'.repeat(i % 13)}\n`;
  const text = (lines: number): Buffer =>
    Buffer.from(Array.from({ length: lines }, (_, i) => line(i)).join(''));
  const files: TreeFile[] = [
    { name: 'small.txt', content: text(2000), mtime: 1_500_000_000.5 },
    { name: 'large.txt', content: text(150_000), mtime: 1_500_000_001.5 },
  ];
  assert.ok(files[1]!.content.length > 1024 * 1024);
  const ftRoot = await makeFtRoot(t, files);
  const blobsAt = async (level: number): Promise<Map<string, Buffer>> => {
    const store = path.join(path.dirname(ftRoot), `store-${level}`);
    const args = ['./files', '--into', store, '--no-state', '--gzip-level', String(level)];
    const run = await runMigrate(args, { cwd: ftRoot });
    assert.equal(run.code, 0, run.stderr);
    const blobs = new Map<string, Buffer>();
    for (const file of files) {
      const digest = createHash('sha256').update(file.content).digest('hex');
      blobs.set(file.name, await readFile(path.join(store, 'blobs', digest.slice(0, 2), digest)));
    }
    return blobs;
  };
  const [fast, small] = [await blobsAt(1), await blobsAt(9)];
  for (const file of files) {
    const [one, nine] = [fast.get(file.name)!, small.get(file.name)!];
    assert.deepEqual(gunzipSync(one), file.content, `${file.name} at level 1`);
    assert.deepEqual(gunzipSync(nine), file.content, `${file.name} at level 9`);
    assert.ok(nine.length < one.length, `${file.name}: ${nine.length} vs ${one.length}`);
  }
  // A small file is gzipped in one call: byte for byte zlib's own at that level.
  assert.deepEqual(fast.get('small.txt'), gzipSync(files[0]!.content, { level: 1 }));
  assert.deepEqual(small.get('small.txt'), gzipSync(files[0]!.content, { level: 9 }));
});

test('--into keeps a newer version the store holds, as a PUT does: skipped as server-newer, the store unchanged', async (t) => {
  const files = smallTreeFiles(5, 'newer');
  const ftRoot = await makeFtRoot(t, files);
  const store = path.join(path.dirname(ftRoot), 'store');
  // With a state file, so that the changed file is put (not first looked up) and the
  // store's own answer decides.
  const args = ['./files', '--into', store, '--report', 'report.json', '--state', 'state'];
  assert.equal((await runMigrate(args, { cwd: ftRoot })).code, 0);

  const target = files[2]!;
  const newer = versionOf(target) + 1000;
  const server = await serveStore(t, store);
  const client = new FiletrackerClient(server.url);
  try {
    await client.put(`/${target.name}`, Buffer.from('written by a client\n'), { version: newer });
  } finally {
    client.close();
    await server.stop();
  }
  // The local copy moves, but stays older than the store's.
  const local = path.join(ftRoot, 'files', target.name);
  await writeFile(local, 'changed in the old tree\n');
  await utimes(local, newer - 10, newer - 10);

  const run = await runMigrate(args, { cwd: ftRoot });
  assert.equal(run.code, 0, run.stderr);
  const report = await readReport(path.join(ftRoot, 'report.json'));
  assert.equal(report.skipped.byReason['server-newer'], 1);
  assert.equal(report.skipped.byReason['already-done'], files.length - 1);
  const kept = { ...target, content: Buffer.from('written by a client\n'), mtime: newer };
  await assertServed(t, store, [...files.filter((f) => f !== target), kept]);
});

test('--into after an online start: a name deleted during it (a tombstone) is not brought back; an older tombstone is cleared', async (t) => {
  const files = smallTreeFiles(4, 'tomb');
  const ftRoot = await makeFtRoot(t, files);
  const store = path.join(path.dirname(ftRoot), 'store');
  const [deleted, newer] = [files[1]!, files[2]!];
  // The store as an online migration leaves it: some files in, tombstones of two names
  // clients deleted meanwhile (one at the legacy file's version, one older than it).
  const first = await runMigrate(
    ['./files', '--into', store, '--exclude', 'f1.txt', '--exclude', 'f2.txt'],
    {
      cwd: ftRoot,
    },
  );
  assert.equal(first.code, 0, first.stderr);
  await editMeta(store, async (meta) => {
    await meta.putTombstone(`/${deleted.name}`, versionOf(deleted));
    await meta.putTombstone(`/${newer.name}`, versionOf(newer) - 1);
  });

  const run = await runMigrate(['./files', '--into', store, '--report', 'report.json'], {
    cwd: ftRoot,
  });
  assert.equal(run.code, 0, run.stderr);
  const report = await readReport(path.join(ftRoot, 'report.json'));
  assert.equal(report.skipped.byReason['deleted-on-server'], 1);
  assert.deepEqual(
    report.skippedFiles.map((f) => [f.name, f.reason]),
    [[`/${deleted.name}`, 'deleted-on-server']],
  );
  assert.equal(report.uploaded.files, 1);
  const tombstones = (await dumpMeta(store)).filter(([key]) => key.startsWith('t:'));
  assert.deepEqual(tombstones, [[`t:/${deleted.name}`, String(versionOf(deleted))]]);
  assert.ok(!(await inspectStore(store)).links.has(`/${deleted.name}`));
  await assertServed(
    t,
    store,
    files.filter((f) => f !== deleted),
  );
});

test('--into a store a running ft-server holds: one line naming its pid, exit 1, the store untouched', async (t) => {
  const files = smallTreeFiles(10, 'held');
  const ftRoot = await makeFtRoot(t, files);
  const store = path.join(path.dirname(ftRoot), 'store');
  assert.equal((await runMigrate(['./files', '--into', store], { cwd: ftRoot })).code, 0);
  // More to import, so that an import that went ahead would show.
  await writeFile(path.join(ftRoot, 'files', 'new.txt'), 'new\n');

  const server = await serveStore(t, store);
  const before = await storeFiles(store);
  for (const extra of [[], ['--dry-run']]) {
    const run = await runMigrate(['./files', '--into', store, ...extra], { cwd: ftRoot });
    assert.equal(run.code, 1, run.stderr);
    assert.equal(
      run.stderr,
      `ft-migrate: the store ${store} is in use by a running ft-server, ft-recover or ft-migrate --into ` +
        `(pid ${server.child.pid}); stop it first\n`,
    );
    assert.equal(run.stdout, '');
  }
  assert.deepEqual(await storeFiles(store), before);
  await server.stop();
});

test('SIGINT during --into: exit 130, the store closed and consistent; the same command then completes', async (t) => {
  const files = smallTreeFiles(1500, 'sigint');
  const ftRoot = await makeFtRoot(t, files);
  const store = path.join(path.dirname(ftRoot), 'store');
  const statePath = path.join(ftRoot, 'state');
  const args = ['./files', '--into', store, '--state', statePath, '-j', '4'];

  const first = spawnMigrate(args, { cwd: ftRoot });
  await waitFor(async () => (await stateEntries(statePath)).length >= 50, 30_000, 'imports');
  first.child.kill('SIGINT');
  const stopped = await first.done;
  assert.equal(stopped.code, 130, stopped.stderr);
  assert.match(stopped.stderr, /stopped early/);
  const saved = (await stateEntries(statePath)).length;
  assert.ok(saved < files.length, `interrupted after ${saved} files`);

  // Closed, not left to the exit: the store forgets its holder only when it is closed.
  await assert.rejects(stat(path.join(store, 'meta', HOLDER_FILE)), { code: 'ENOENT' });
  // Unlocked and consistent: ft-recover opens it (it takes the same lock) and finds nothing.
  const check = await runRecover([store, '--check']);
  assert.equal(check.code, 0, check.stdout + check.stderr);
  assert.deepEqual((await inspectStore(store)).problems, []);

  const rerun = await runMigrate([...args, '--report', 'report.json'], { cwd: ftRoot });
  assert.equal(rerun.code, 0, rerun.stderr);
  const report = await readReport(path.join(ftRoot, 'report.json'));
  assert.equal(report.skipped.byReason['already-done'], saved);
  assert.equal(report.uploaded.files, files.length - saved);
  const recheck = await runRecover([store, '--check']);
  assert.equal(recheck.code, 0, recheck.stdout + recheck.stderr);
  const inspected = await inspectStore(store);
  assert.deepEqual(inspected.problems, []);
  assert.equal(inspected.links.size, files.length);
  const verify = await runMigrate(['./files', '--into', store, '--verify=digest'], {
    cwd: ftRoot,
  });
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  assert.match(verify.stdout, new RegExp(`${files.length} identical, 0 differ`));
});

test('--dry-run and --verify --into a directory without a store create nothing', async (t) => {
  const files = smallTreeFiles(20, 'dry');
  const ftRoot = await makeFtRoot(t, files);
  const store = path.join(path.dirname(ftRoot), 'not-yet');

  const dry = await runMigrate(['./files', '--into', store, '--dry-run'], { cwd: ftRoot });
  assert.equal(dry.code, 0, dry.stderr);
  assert.equal(dry.stdout.match(/^would upload /gm)?.length, files.length);
  const verify = await runMigrate(['./files', '--into', store, '--verify'], { cwd: ftRoot });
  assert.equal(verify.code, 1, verify.stderr);
  assert.match(verify.stdout, new RegExp(`0 identical, ${files.length} differ`));
  await assert.rejects(stat(store), { code: 'ENOENT' });
});

test('--from URL and --from-store DIR copy a 2.x store --into another, each file at its version', async (t) => {
  const files = legacyTreeFiles();
  const ftRoot = await makeFtRoot(t, files);
  const work = path.dirname(ftRoot);
  const source = path.join(work, 'source');
  assert.equal((await runMigrate(['./files', '--into', source], { cwd: ftRoot })).code, 0);

  const fromStore = path.join(work, 'from-store');
  const copied = await runMigrate(['--from-store', source, '--into', fromStore], { cwd: work });
  assert.equal(copied.code, 0, copied.stderr);
  assert.match(copied.stdout, new RegExp(`^ft-migrate: uploaded ${files.length} files`, 'm'));
  // The same blobs: the stored gzip passed through unchanged.
  assert.deepEqual(
    [...(await inspectStore(fromStore)).blobs].sort(),
    [...(await inspectStore(source)).blobs].sort(),
  );
  await assertServed(t, fromStore, files);

  const server = await serveStore(t, source);
  const fromUrl = path.join(work, 'from-url');
  const viaHttp = await runMigrate(['--from', server.url, '--into', fromUrl], { cwd: work });
  await server.stop();
  assert.equal(viaHttp.code, 0, viaHttp.stderr);
  assert.deepEqual((await inspectStore(fromUrl)).problems, []);
  await assertServed(t, fromUrl, files);

  const same = await runMigrate(['--from-store', source, '--into', source], { cwd: work });
  assert.equal(same.code, 1);
  assert.match(same.stderr, /^ft-migrate: --from-store .* and --into .* are the same store/);
});

test('--into with a target URL, or without FILES, is a usage error (exit 2) with a one-line reason', async (t) => {
  const ftRoot = await makeFtRoot(t, smallTreeFiles(1, 'usage'));
  const store = path.join(path.dirname(ftRoot), 'store');
  const both = await runMigrate(['./files', '--into', store, 'http://127.0.0.1:9'], {
    cwd: ftRoot,
  });
  assert.equal(both.code, 2);
  assert.match(
    both.stderr,
    /^error: --into .* and the target URL http:\/\/127\.0\.0\.1:9 exclude each other: give one$/m,
  );
  const none = await runMigrate(['--into', store], { cwd: ftRoot });
  assert.equal(none.code, 2);
  assert.match(none.stderr, /^error: with --into give FILES alone \(got 0 arguments\)$/m);
  await assert.rejects(stat(store), { code: 'ENOENT' });
});
