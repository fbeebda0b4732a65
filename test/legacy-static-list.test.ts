import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { formatHttpDate, nowVersion } from '@filetracker/shared-protocol';
import { httpRequest, rawGet, startLegacy, type LegacyProcess } from './helpers/legacy-static.js';
import { tempDir } from './helpers/server.js';

// Issue 17, item 5: ft-legacy-static lists a 1.x tree as ft-server lists its store, so
// ft-server in migration mode can merge it into its own listing.

const OLD = 1_500_000_000;
const FUTURE = nowVersion() + 100_000;

/** name -> mtime of the regular files of the tree. */
const FILES: Record<string, number> = {
  'top.txt': OLD,
  'a/one.in': OLD,
  'a/two.out': OLD + 10,
  'a/b/c/deep.txt': OLD + 20,
  'a/sp ace #hash ?q 50%.in': OLD,
  'zażółć/gęślą.txt': OLD,
  'later/future.txt': FUTURE,
};

function q(version: number): string {
  return '?last_modified=' + encodeURIComponent(formatHttpDate(version));
}

function lines(body: Buffer): string[] {
  return body.toString('utf8').split('\n').filter(Boolean).sort();
}

async function list(base: string, target: string): Promise<{ status: number; names: string[] }> {
  const res = await httpRequest(base, target);
  if (res.status === 200) {
    const text = res.body.toString('utf8');
    assert.ok(text === '' || text.endsWith('\n'), `every line of ${target} ends in \\n`);
    assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8');
  }
  return { status: res.status, names: lines(res.body) };
}

describe('ft-legacy-static GET /list', () => {
  let root: string;
  let outside: string;
  let legacy: LegacyProcess;

  before(async () => {
    root = await tempDir('ft-legacy-list-');
    outside = await tempDir('ft-outside-');
    const files = path.join(root, 'files');
    for (const [name, mtime] of Object.entries(FILES)) {
      const p = path.join(files, name);
      await mkdir(path.dirname(p), { recursive: true });
      await writeFile(p, `content of ${name}`);
      await utimes(p, mtime, mtime);
    }
    await mkdir(path.join(files, 'empty'));
    // Links: one to a file inside (served, so listed), one to a file outside FT_ROOT and
    // one to a directory (neither listed), a FIFO and a name that is not UTF-8 (404 on GET).
    await writeFile(path.join(outside, 'secret'), 'outside');
    await symlink('../top.txt', path.join(files, 'a', 'inside-link'));
    await symlink(path.join(outside, 'secret'), path.join(files, 'a', 'outside-link'));
    await symlink('..', path.join(files, 'a', 'parent-link'));
    execFileSync('mkfifo', [path.join(files, 'a', 'fifo')]);
    await writeFile(Buffer.from(path.join(files, 'a', 'latin1-\xe9.txt'), 'latin1'), 'x');
    legacy = await startLegacy(['--root', root, '--port', '0']);
  });

  after(async () => {
    await legacy?.kill();
    await rm(root, { recursive: true, force: true });
    await rm(outside, { recursive: true, force: true });
  });

  test('lists every served file under a directory, recursively, relative to it', async () => {
    const far = q(FUTURE + 1);
    assert.deepEqual((await list(legacy.url, '/list/a' + far)).names, [
      'b/c/deep.txt',
      'inside-link',
      'one.in',
      'sp ace #hash ?q 50%.in',
      'two.out',
    ]);
    assert.deepEqual((await list(legacy.url, '/list/a/b' + far)).names, ['c/deep.txt']);
    assert.deepEqual(
      (await list(legacy.url, '/list/' + encodeURIComponent('zażółć') + far)).names,
      ['gęślą.txt'],
    );
    const all = (await list(legacy.url, '/list' + far)).names;
    assert.deepEqual(all, [...Object.keys(FILES), 'a/inside-link'].sort());
  });

  test("the path grammar is ft-server's: /list/, //list, a prefix before //, %2F, a trailing /", async () => {
    const far = q(FUTURE + 1);
    const whole = (await list(legacy.url, '/list' + far)).names;
    assert.equal(whole.length, Object.keys(FILES).length + 1);
    assert.deepEqual((await list(legacy.url, '/list/' + far)).names, whole);
    assert.deepEqual((await list(legacy.url, '//list/' + far)).names, whole);
    const deep = (await list(legacy.url, '/list/a/b' + far)).names;
    assert.deepEqual(deep, ['c/deep.txt']);
    for (const target of ['/ft//list/a/b', '/list/a%2Fb', '/list/a/./b/', '//list/a/b/']) {
      assert.deepEqual((await list(legacy.url, target + far)).names, deep, target);
    }
  });

  test('only versions <= the cutoff, inclusive; no cutoff is now, hiding future mtimes', async () => {
    assert.deepEqual((await list(legacy.url, '/list/a' + q(OLD - 1))).names, []);
    assert.deepEqual((await list(legacy.url, '/list/a' + q(OLD))).names, [
      'inside-link',
      'one.in',
      'sp ace #hash ?q 50%.in',
    ]);
    assert.deepEqual((await list(legacy.url, '/list/a' + q(OLD + 10))).names, [
      'inside-link',
      'one.in',
      'sp ace #hash ?q 50%.in',
      'two.out',
    ]);
    assert.deepEqual((await list(legacy.url, '/list/later')).names, []);
    assert.deepEqual((await list(legacy.url, '/list/later?last_modified=')).names, []);
    assert.deepEqual((await list(legacy.url, '/list/later' + q(FUTURE))).names, ['future.txt']);
  });

  test('an empty directory is 200 with an empty body; HEAD is 200 without one', async () => {
    const res = await httpRequest(legacy.url, '/list/empty');
    assert.equal(res.status, 200);
    assert.equal(res.body.length, 0);
    const head = await httpRequest(legacy.url, '/list/a', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
  });

  test('a missing directory or a file is 400 NOT_A_DIRECTORY, as on ft-server', async () => {
    for (const target of ['/list/nowhere', '/list/top.txt', '/list/a/one.in', '/list/a/fifo']) {
      const res = await httpRequest(legacy.url, target);
      assert.equal(res.status, 400, target);
      assert.equal(res.headers['x-error-code'], 'NOT_A_DIRECTORY', target);
    }
  });

  test('a link out of FT_ROOT is neither listed nor listable', async () => {
    await symlink(outside, path.join(root, 'files', 'escape'));
    const all = (await list(legacy.url, '/list' + q(FUTURE + 1))).names;
    assert.ok(!all.some((n) => n.includes('secret') || n.includes('outside')), all.join(','));
    const res = await httpRequest(legacy.url, '/list/escape');
    assert.equal(res.status, 400);
    assert.equal(res.headers['x-error-code'], 'NOT_A_DIRECTORY');
  });

  test('bad input is 400 with a code: "..", bytes that are not UTF-8, NUL, an unparsable date', async () => {
    for (const target of ['/list/a/../..', '/list/..%2F..']) {
      const res = await rawGet(legacy.url, target);
      assert.equal(res.status, 400, target);
      assert.match(res.raw, /X-Error-Code: BAD_PATH/, target);
    }
    for (const target of ['/list/%FF', '/list/a%00b']) {
      const res = await httpRequest(legacy.url, target);
      assert.equal(res.status, 400, target);
      assert.equal(res.headers['x-error-code'], 'BAD_PATH', target);
    }
    const date = await httpRequest(legacy.url, '/list/a?last_modified=not+a+date');
    assert.equal(date.status, 400);
    assert.equal(date.headers['x-error-code'], 'BAD_DATE');
  });

  test('a listing of more names than one batch has each exactly once', async () => {
    const dir = path.join(root, 'files', 'many');
    const names: string[] = [];
    for (let i = 0; i < 300; i++) {
      const name = `d${i % 7}/f${i}`;
      await mkdir(path.join(dir, `d${i % 7}`), { recursive: true });
      await writeFile(path.join(dir, name), String(i));
      names.push(name);
    }
    const res = await httpRequest(legacy.url, '/list/many');
    assert.equal(res.status, 200);
    const got = res.body.toString('utf8').split('\n').filter(Boolean);
    assert.equal(got.length, 300);
    assert.deepEqual(got.sort(), names.sort());
  });
});
