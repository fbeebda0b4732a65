/**
 * A store whose files refuse us (issue 16, item 10): owned by another user, or immutable
 * (`chattr +i`, which stops root too, as a read-only mount would). Start-up names the file,
 * the error and the fix on one line. Needs root (to run a child as another user) and chattr
 * support; elsewhere the tests are skipped with the reason.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { openStore } from '@filetracker/server';
import { RECOVER_BIN, runBin, SERVER_BIN } from './helpers/recover-store.js';
import { tempDir } from './helpers/server.js';

const run = promisify(execFile);
/** `nobody` on Debian and most others; any uid that owns nothing of the store will do. */
const OTHER_USER = { uid: 65534, gid: 65534 };

const oneLine = (text: string): boolean => text.trim().length > 0 && !text.trim().includes('\n');

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A temp dir removed after the test, once the immutable flag of `flagged` (in it) is cleared. */
async function scratch(t: TestContext, flagged: string[] = []): Promise<string> {
  const dir = await tempDir('ft-perm-');
  t.after(async () => {
    await Promise.all(
      flagged.map((f) => path.join(dir, f)).map((f) => run('chattr', ['-i', f]).catch(() => {})),
    );
    await rm(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Sets the immutable flag; false (the test skipped, with the reason) where chattr cannot. */
async function makeImmutable(t: TestContext, file: string): Promise<boolean> {
  try {
    await run('chattr', ['+i', file], { timeout: 10_000 });
    return true;
  } catch (err) {
    const reason = `chattr +i is not supported here (${(err as Error).message.split('\n')[0]})`;
    t.diagnostic(reason);
    t.skip(reason);
    return false;
  }
}

/**
 * A store made by root, as a first run of ft-server or ft-recover as root leaves it, that
 * `OTHER_USER` can reach but not write; undefined (the test skipped) when not root.
 */
async function rootOwnedStore(t: TestContext): Promise<string | undefined> {
  if (process.getuid?.() !== 0) {
    const reason = 'needs root, to run ft-server as another user than the store owner';
    t.diagnostic(reason);
    t.skip(reason);
    return undefined;
  }
  const dir = await scratch(t);
  await chmod(dir, 0o755);
  await (await openStore(dir)).close();
  return dir;
}

for (const [program, bin, args] of [
  ['ft-server', SERVER_BIN, (dir: string) => ['-d', dir, '-p', '0']],
  ['ft-recover', RECOVER_BIN, (dir: string) => [dir]],
] as const) {
  test(`${program} run as another user than the store's owner exits 1 with one line naming meta/LOCK, "permission denied" and a chown -R hint`, async (t) => {
    const dir = await rootOwnedStore(t);
    if (dir === undefined) return;
    const entries = await readdir(dir);
    const res = await runBin(bin, args(dir), 20_000, OTHER_USER);
    t.diagnostic(res.stderr.trim());
    assert.equal(res.code, 1);
    assert.ok(oneLine(res.stderr), `stderr: ${JSON.stringify(res.stderr)}`);
    assert.match(res.stderr, /meta\/LOCK: permission denied/);
    assert.match(res.stderr, new RegExp(`chown -R \\S+ ${escape(dir)}`));
    assert.deepEqual(await readdir(dir), entries);
  });

  test(`${program} on a store whose meta/LOCK is immutable exits 1 with one line naming meta/LOCK, "operation not permitted" and a chattr -i hint`, async (t) => {
    const dir = await scratch(t, ['meta/LOCK']);
    const lock = path.join(dir, 'meta', 'LOCK');
    await (await openStore(dir)).close();
    if (!(await makeImmutable(t, lock))) return;
    const res = await runBin(bin, args(dir));
    t.diagnostic(res.stderr.trim());
    assert.equal(res.code, 1);
    assert.ok(oneLine(res.stderr), `stderr: ${JSON.stringify(res.stderr)}`);
    assert.match(res.stderr, /meta\/LOCK: operation not permitted/);
    assert.match(res.stderr, /chattr -i/);
    await assert.rejects(openStore(dir), { name: 'StoreOpenError', code: 'PERMISSION' });
  });
}

test('ft-server on a new store in an immutable DIR exits 1 with one line naming the directory it could not make and "operation not permitted"', async (t) => {
  const dir = await scratch(t, ['.']);
  if (!(await makeImmutable(t, dir))) return;
  const res = await runBin(SERVER_BIN, ['-d', dir, '-p', '0']);
  t.diagnostic(res.stderr.trim());
  assert.equal(res.code, 1);
  assert.ok(oneLine(res.stderr), `stderr: ${JSON.stringify(res.stderr)}`);
  // blobs/, links/ and ft-tmp/ are made at once: any may be the one named.
  assert.match(res.stderr, /mkdir (blobs|links|ft-tmp): operation not permitted/);
  assert.match(res.stderr, /chattr -i/);
});
