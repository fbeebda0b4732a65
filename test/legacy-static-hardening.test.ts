import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { startLegacy, type LegacyProcess } from './helpers/legacy-static.js';

// Issue 16: a primary that crashed on EPIPE sending to a dead worker.

/** Long enough for a loaded machine; a hang shows as this, not as a stuck test. */
const ANSWER_MS = 15_000;

interface Tree {
  dir: string;
  root: string;
  files: string;
  outside: string;
}

/** FT_ROOT with files/ in a temp dir, an `outside` directory beside it; removed after `t`. */
async function makeTree(t: TestContext): Promise<Tree> {
  const dir = await mkdtemp(join(tmpdir(), 'ft-legacy-hardening-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const root = join(dir, 'ft_root');
  const files = join(root, 'files');
  const outside = join(dir, 'outside');
  await mkdir(files, { recursive: true });
  await mkdir(outside);
  await writeFile(join(files, 'plain.txt'), 'plain\n');
  return { dir, root, files, outside };
}

async function start(t: TestContext, args: string[]): Promise<LegacyProcess> {
  const proc = await startLegacy(['--port', '0', ...args]);
  t.after(() => proc.kill());
  return proc;
}

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 10_000) {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('the primary of --workers N survives sending to a worker that is gone', () => {
  test('a /status asked while another worker dies unnoticed is answered, and the primary stays', async (t) => {
    const tree = await makeTree(t);
    // Two rounds: each sets up the same order of events, the second after a restart.
    for (let round = 0; round < 2; round++) {
      const proc = await start(t, ['--root', tree.root, '--workers', '2']);
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      t.after(() => agent.destroy());
      const onKept = (path: string) =>
        new Promise<number>((resolve, reject) => {
          const req = get(`${proc.url}${path}`, { agent }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          });
          req.on('error', reject);
          req.setTimeout(ANSWER_MS, () => req.destroy(new Error(`no answer to ${path}`)));
        });
      // A kept-alive connection stays with the worker that took it: find out which one.
      assert.equal(await onKept('/files/plain.txt'), 200);
      await waitFor(() => proc.lines.some((l) => l.msg === 'request'));
      const holder = proc.lines.find((l) => l.msg === 'request')!.pid as number;
      const other = proc.workers.find((pid) => pid !== holder)!;
      // With the primary stopped, the holder's `status?` waits in its channel; then the
      // other worker dies. Resumed, the primary reads the `status?` before the end of the
      // dead worker's channel and asks that worker too: EPIPE, which crashed it.
      proc.child.kill('SIGSTOP');
      t.after(() => proc.child.kill('SIGCONT'));
      const status = onKept('/status');
      await new Promise((resolve) => setTimeout(resolve, 300));
      process.kill(other, 'SIGKILL');
      await new Promise((resolve) => setTimeout(resolve, 300));
      proc.child.kill('SIGCONT');
      assert.equal(await status, 200);
      await waitFor(() => proc.lines.some((l) => l.msg === 'worker died; starting another'));
      assert.equal(proc.child.exitCode, null);
      assert.equal(await onKept('/files/plain.txt'), 200);
      agent.destroy();
      proc.child.kill('SIGTERM');
      assert.equal(await proc.exited, 0);
      assert.equal(proc.stderr(), '');
    }
  });

  test('SIGTERM while a replacement worker is still starting stops it too, and exits 0', async (t) => {
    const tree = await makeTree(t);
    const proc = await start(t, ['--root', tree.root, '--workers', '2']);
    const pid = proc.child.pid!;
    const childrenFile = `/proc/${pid}/task/${pid}/children`;
    if (!existsSync(childrenFile)) {
      t.skip('no /proc/PID/task/PID/children to see the new worker by');
      return;
    }
    const children = () =>
      readFileSync(childrenFile, 'utf8').split(' ').filter(Boolean).map(Number);
    process.kill(proc.workers[0]!, 'SIGKILL');
    // The replacement is forked a second later; signal as soon as its process exists,
    // while Node is still loading it, long before it listens.
    let fresh: number | undefined;
    const end = Date.now() + ANSWER_MS;
    while (fresh === undefined && Date.now() < end) {
      fresh = children().find((p) => !proc.workers.includes(p));
      if (fresh === undefined) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.ok(fresh !== undefined, 'no replacement worker started');
    proc.workers.push(fresh); // for proc.kill() in t.after
    proc.child.kill('SIGTERM');
    const code = await Promise.race([
      proc.exited,
      new Promise((resolve) => setTimeout(() => resolve('still running'), ANSWER_MS)),
    ]);
    assert.equal(code, 0);
  });
});
