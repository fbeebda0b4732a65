import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { FiletrackerClient } from '@filetracker/shared-protocol';
import { inspectStore } from './helpers/fault-store.js';
import {
  makeFtRoot,
  runMigrate,
  smallTreeFiles,
  spawnMigrate,
  stateEntries,
  versionOf,
  waitFor,
  type TreeFile,
} from './helpers/migrate-tree.js';
import { SERVER_BIN, runRecover, sha256 } from './helpers/recover-store.js';
import { startProcess } from './helpers/server.js';

// ft-migrate --into writes the store directly (issue 15), with the store's own code. These
// check from outside that what is stored is exactly what the bytes say (ft-recover --full
// re-hashes every blob against its name; a real ft-server serves each name), also after a
// kill -9 in the middle of an import.

/** The counts of ft-recover's summary line (`0 dangling links, ...`). */
function recoverCounts(output: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const [, n, what] of output.matchAll(/(\d+) ([a-z/ -]+?)(?=,|$)/gm)) {
    counts[what!.trim()] = Number(n);
  }
  return counts;
}

/** Every file served by a real ft-server on `dir`: its ETag digest, size, version, bytes. */
async function assertStoredAsBytesSay(t: TestContext, dir: string, files: readonly TreeFile[]) {
  const server = await startProcess(SERVER_BIN, ['-d', dir, '-p', '0']);
  t.after(() => server.stop());
  const client = new FiletrackerClient(server.url);
  try {
    for (const file of files) {
      const stored = await client.getStored(`/${file.name}`);
      stored.data.resume();
      assert.equal(stored.digest, sha256(file.content), `digest of /${file.name}`);
      assert.equal(stored.logicalSize, file.content.length, `size of /${file.name}`);
      assert.equal(stored.version, versionOf(file), `version of /${file.name}`);
      const { data } = await client.getBuffer(`/${file.name}`);
      assert.ok(data.equals(file.content), `content of /${file.name}`);
    }
  } finally {
    client.close();
    await server.stop();
  }
}

/** ft-recover --check --full finds nothing to fix, and the store holds `count` names. */
async function assertChecksClean(store: string, count: number): Promise<void> {
  const check = await runRecover([store, '--check', '--full']);
  assert.equal(check.code, 0, check.stdout + check.stderr);
  const inspected = await inspectStore(store);
  assert.deepEqual(inspected.problems, []);
  assert.equal(inspected.links.size, count);
}

test('--into stores each small file under the digest and size of its own bytes: ft-server answers them and ft-recover --full re-hashes every blob clean', async (t) => {
  const repeated = Buffer.from('the same test input in two places\n');
  const files: TreeFile[] = [
    { name: 'a/empty', content: Buffer.alloc(0), mtime: 1_500_000_000 },
    { name: 'a/one.in', content: Buffer.from('1 2\n'), mtime: 1_500_000_100.5 },
    { name: 'a/same1.in', content: repeated, mtime: 1_500_000_200 },
    // The same content again: stored once, the second only read (a dedup).
    { name: 'b/same2.in', content: repeated, mtime: 1_500_000_300 },
    // Incompressible, just under and over the store's whole-body limit (64 KiB of gzip).
    { name: 'b/noise60k', content: randomBytes(60 * 1024), mtime: 1_500_000_400 },
    { name: 'b/noise70k', content: randomBytes(70 * 1024), mtime: 1_500_000_500 },
    ...smallTreeFiles(40, 'many'),
  ];
  const ftRoot = await makeFtRoot(t, files);
  const store = path.join(path.dirname(ftRoot), 'store');

  const run = await runMigrate(['./files', '--into', store, '-s'], { cwd: ftRoot });
  assert.equal(run.code, 0, run.stdout + run.stderr);
  await assertChecksClean(store, files.length);
  await assertStoredAsBytesSay(t, store, files);
});

test('kill -9 during --into: no name points at a missing or wrong blob; the same command then completes and, repaired, the store checks clean', async (t) => {
  const files = smallTreeFiles(1500, 'killed');
  const ftRoot = await makeFtRoot(t, files);
  const store = path.join(path.dirname(ftRoot), 'store');
  const statePath = path.join(ftRoot, 'state');
  const args = ['./files', '--into', store, '--state', statePath, '-j', '16', '-s'];

  const first = spawnMigrate(args, { cwd: ftRoot });
  await waitFor(async () => (await stateEntries(statePath)).length >= 50, 60_000, 'imports');
  first.child.kill('SIGKILL');
  const killed = await first.done;
  assert.equal(killed.signal, 'SIGKILL');

  // A crash may leave a staged upload in ft-tmp/ or a blob not yet named (the store's
  // contract), never a name without its blob or with other content.
  const check = await runRecover([store, '--check', '--full']);
  const counts = recoverCounts(check.stdout + check.stderr);
  assert.equal(counts['dangling links'], 0, check.stdout + check.stderr);
  assert.equal(counts['corrupt'], 0, check.stdout + check.stderr);

  const rerun = await runMigrate(args, { cwd: ftRoot });
  assert.equal(rerun.code, 0, rerun.stdout + rerun.stderr);
  // A reference count left too high by the crash (never too low) is ft-recover's to
  // repair, as the store's contract says; nothing else may need it.
  const repair = await runRecover([store, '-s']);
  assert.equal(repair.code, 0, repair.stdout + repair.stderr);
  await assertChecksClean(store, files.length);
  await assertStoredAsBytesSay(t, store, files.slice(0, 100));
});
