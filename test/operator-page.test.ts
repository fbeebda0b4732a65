/**
 * Issue 17, item 8: the operator's page (a browser's GET / on ft-server) and ft-migrate's
 * HTML report, each loaded in a real headless Chromium (Debian's, through playwright-core):
 * the figures shown are the ones /metrics and the JSON report give, and the page makes no
 * request off the server.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, test } from 'node:test';
import { encodeName, formatHttpDate } from '@filetracker/shared-protocol';
import type { Page } from 'playwright-core';
import { browserMissing, openBrowser, type TestBrowser } from './helpers/browser.js';
import { httpRequest } from './helpers/legacy-static.js';
import { metrics } from './helpers/server-http.js';
import { makeFtRoot, runMigrate } from './helpers/migrate-tree.js';
import { startProcess, startServer, tempDir, type RunningProcess } from './helpers/server.js';

const skip = await browserMissing();
if (skip !== undefined) console.error(`operator-page tests skipped: ${skip}`);

/** What a browser sends for a page (Chromium's Accept on navigation). */
const BROWSER_ACCEPT =
  'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8';

const V = 1_700_000_000;

function q(version: number): string {
  return '?last_modified=' + encodeURIComponent(formatHttpDate(version));
}

async function put(base: string, name: string, body: string, version = V): Promise<void> {
  const res = await fetch(base + '/files' + encodeName(name) + q(version), {
    method: 'PUT',
    body,
  });
  assert.equal(res.status, 200, `PUT ${name}`);
}

async function get(base: string, name: string, method = 'GET'): Promise<number> {
  const res = await fetch(base + '/files' + encodeName(name), { method, redirect: 'manual' });
  await res.arrayBuffer();
  return res.status;
}

async function text(page: Page, selector: string): Promise<string> {
  return ((await page.locator(selector).textContent()) ?? '').trim();
}

/** The shown count of one row of the requests table. */
function requestCell(endpoint: string, method: string, cell = 'total'): string {
  return `#requests tr[data-endpoint="${endpoint}"][data-method="${method}"] td[data-cell="${cell}"]`;
}

/** Waits until the text of `selector` is `expected` (the page reads every 5 s). */
async function waitText(page: Page, selector: string, expected: string): Promise<void> {
  await page.waitForFunction(
    ([sel, want]) =>
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      ((globalThis as any).document.querySelector(sel)?.textContent ?? '').trim() === want,
    [selector, expected] as const,
    { timeout: 20_000 },
  );
}

/** Loads `url` and waits for the page's first read of the server. */
async function loadPage(browser: TestBrowser, url: string): Promise<void> {
  const res = await browser.page.goto(url);
  assert.equal(res?.status(), 200);
  await browser.page.waitForFunction(
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    () => (globalThis as any).document.getElementById('updated').textContent !== 'never',
    undefined,
    { timeout: 20_000 },
  );
}

/** Every request the browser made went to `origin` (and there were some). */
function assertOnlyTo(browser: TestBrowser, origin: string): void {
  const urls = browser.requests.map((r) => r.url());
  assert.ok(urls.length >= 4, `the page made requests: ${urls.join(' ')}`);
  for (const url of urls) assert.equal(new URL(url).origin, origin, `request to ${url}`);
  for (const p of ['/', '/healthz', '/status', '/metrics']) {
    assert.ok(
      urls.some((u) => new URL(u).pathname === p),
      `${p} requested: ${urls.join(' ')}`,
    );
  }
}

/** ft-server as an operator runs it, over a store in a temp dir (`dir`); stopped after `t`. */
async function startFtServer(t: {
  after(fn: () => Promise<unknown>): void;
}): Promise<RunningProcess & { dir: string }> {
  const dir = await tempDir();
  t.after(() => rm(dir, { recursive: true, force: true }));
  const server = await startProcess('packages/server/bin/ft-server.mjs', [
    '--dir',
    dir,
    '--port',
    '0',
  ]);
  t.after(() => server.stop());
  return Object.assign(server, { dir });
}

describe('the operator page of ft-server (GET / from a browser)', { skip }, () => {
  test('a non-HTML request for / is still 400 Unknown endpoint; text/html gets the page', async (t) => {
    const server = await startFtServer(t);
    const cases: [string, string, Record<string, string>][] = [
      ['GET', '/', {}],
      ['GET', '/', { Accept: '*/*' }],
      ['GET', '/', { Accept: 'application/json' }],
      ['GET', '/', { Accept: 'text/html;q=0, */*' }],
      ['HEAD', '/', { Accept: BROWSER_ACCEPT }],
      ['POST', '/', { Accept: BROWSER_ACCEPT }],
      ['GET', '//', { Accept: BROWSER_ACCEPT }],
      ['GET', '/index.html', { Accept: BROWSER_ACCEPT }],
    ];
    for (const [method, p, headers] of cases) {
      const res = await httpRequest(server.url, p, { method, headers });
      const what = `${method} ${p} ${JSON.stringify(headers)}`;
      assert.equal(res.status, 400, what);
      assert.equal(res.headers['x-error-code'], 'UNKNOWN_ENDPOINT', what);
    }
    const page = await httpRequest(server.url, '/', { headers: { Accept: BROWSER_ACCEPT } });
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    assert.match(String(page.headers['content-security-policy']), /connect-src 'self'/);
    assert.match(page.body.toString(), /^<!doctype html>/i);
  });

  test('shows store size, dedup and request counts as /metrics has them, from the server only', async (t) => {
    const server = await startFtServer(t);
    // Content gzip cannot shrink below 1 KiB (hex of random bytes), stored once for three
    // names: two dedup hits.
    const same = randomBytes(2000).toString('hex');
    await put(server.url, '/a/one.txt', same);
    await put(server.url, '/a/two.txt', same);
    await put(server.url, '/a/three.txt', same);
    await put(server.url, '/b/other.txt', 'other content, '.repeat(100));
    assert.equal(await get(server.url, '/a/one.txt'), 200);
    assert.equal(await get(server.url, '/b/other.txt', 'HEAD'), 200);
    assert.equal(await get(server.url, '/no/such.txt'), 404);

    const browser = await openBrowser();
    t.after(() => browser.close());
    const { page } = browser;
    await loadPage(browser, server.url + '/');

    const m = await metrics(server.url);
    assert.equal(m('ft_dedup_hits_total'), 2);
    // Each hit saved the blob's size on disk (the link resolves to the one blob file).
    const blobSize = (await stat(path.join(server.dir, 'links', 'a', 'one.txt'))).size;
    assert.ok(blobSize > 1024 && blobSize < 1024 * 1024, `blob of ${blobSize} bytes`);
    assert.equal(m('ft_dedup_saved_bytes_total'), 2 * blobSize);
    assert.equal(await text(page, '#dedup-saved'), String(2 * blobSize));
    assert.equal(
      await text(page, '#dedup-saved-human'),
      `${((2 * blobSize) / 1024).toFixed(1)} KiB`,
    );
    assert.equal(await text(page, '#blob-bytes'), String(m('ft_blob_bytes')));
    assert.ok(m('ft_blob_bytes') > 0);
    assert.equal(await text(page, '#blobs'), String(m('ft_blobs')));
    assert.equal(await text(page, '#dedup-hits'), String(m('ft_dedup_hits_total')));
    assert.equal(
      await text(page, '#stored-puts'),
      String(m('ft_http_requests_total', { endpoint: 'files', method: 'PUT', status: '200' })),
    );
    assert.equal(await text(page, '#dedup-share'), '50.0%');
    for (const method of ['PUT', 'GET', 'HEAD']) {
      const shown = await text(page, requestCell('files', method));
      const counted = m('ft_http_requests_total', { endpoint: 'files', method });
      assert.equal(shown, String(counted), `files ${method}`);
    }
    assert.equal(await text(page, requestCell('files', 'GET', '4xx')), '1');
    assert.equal(await text(page, '#health-state'), 'ok');
    assert.equal(await text(page, '#health-text'), '200: ok');
    assert.equal(await page.locator('#migration').isVisible(), false);

    // It reads again by itself: a new upload shows without a reload, with a rate.
    await put(server.url, '/c/new.txt', 'new');
    await waitText(page, requestCell('files', 'PUT'), '5');
    assert.match(await text(page, requestCell('files', 'PUT', 'rate')), /^\d+\.\d\d$/);
    assert.match(await text(page, '#requests-rate'), /^\d+\.\d\d$/);

    assertOnlyTo(browser, server.url);
  });

  test('in migration mode shows the fallback, its redirects and tombstones, and a dead fallback as degraded', async (t) => {
    const root = await tempDir('ft-legacy-');
    t.after(() => rm(root, { recursive: true, force: true }));
    for (const name of ['old/a.txt', 'old/b.txt']) {
      const file = path.join(root, 'files', name);
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, `legacy ${name}\n`);
      await utimes(file, V - 1000, V - 1000);
    }
    const legacy = await startProcess('packages/legacy-static/bin/ft-legacy-static.mjs', [
      '--root',
      root,
      '--port',
      '0',
    ]);
    t.after(() => legacy.stop());
    const server = await startServer({
      fallbackUrl: legacy.url,
      fallbackProbeIntervalMs: 100,
      fallbackTimeoutMs: 300,
    });
    t.after(() => server.close());
    assert.equal(await get(server.url, '/old/a.txt'), 307);
    assert.equal(await get(server.url, '/old/a.txt', 'HEAD'), 307);
    const del = await fetch(server.url + '/files/old/b.txt' + q(V), { method: 'DELETE' });
    assert.equal(del.status, 200);
    await put(server.url, '/new.txt', 'held here');
    assert.equal(await get(server.url, '/new.txt'), 200);

    const browser = await openBrowser();
    t.after(() => browser.close());
    const { page } = browser;
    await loadPage(browser, server.url + '/');
    assert.equal(await page.locator('#migration').isVisible(), true);
    await waitText(page, '#fallback-state', 'up');
    const m = await metrics(server.url);
    assert.equal(m('ft_tombstones'), 1);
    assert.equal(await text(page, '#tombstones'), String(m('ft_tombstones')));
    const redirects = m('ft_http_requests_total', { endpoint: 'files', status: '307' });
    assert.equal(redirects, 2);
    assert.equal(await text(page, '#redirects'), String(redirects));
    assert.equal(await text(page, '#redirect-share'), '66.7%');
    assert.equal(await text(page, '#fallback-url'), legacy.url);
    assert.equal(await text(page, '#health-state'), 'ok');

    // The fallback goes away: the page says so, and the store's health stays 200.
    await legacy.stop();
    await waitText(page, '#fallback-state', 'down');
    await waitText(page, '#health-state', 'degraded');
    assert.match(await text(page, '#health-text'), /^200: ok\ndegraded: fallback /);
    assert.notEqual(await text(page, '#fallback-error'), 'none');

    assertOnlyTo(browser, server.url);
  });
});

describe('ft-migrate --report writes an HTML report beside the JSON', { skip }, () => {
  test('report.html opened from disk shows the JSON figures, failures and skips by reason', async (t) => {
    const ftRoot = await makeFtRoot(t, [
      { name: 'a.txt', content: Buffer.from('first\n'), mtime: V },
      { name: 'sub/b.txt', content: Buffer.from('second file\n'), mtime: V + 1 },
      { name: 'sub/c.txt', content: Buffer.alloc(5000, 'c'), mtime: V + 2 },
    ]);
    const files = path.join(ftRoot, 'files');
    await symlink('a.txt', path.join(files, 'link-to-a'));
    // A name no filetracker can hold: a failure with its bytes escaped (\xe9).
    await writeFile(Buffer.from(path.join(files, 'caf\xe9 <b>.txt'), 'latin1'), 'latin1 name');
    const server = await startServer();
    t.after(() => server.close());

    const run = await runMigrate(['./files', server.url, '--report', 'report.json'], {
      cwd: ftRoot,
    });
    assert.equal(run.code, 1, run.stderr);
    const report = JSON.parse(await readFile(path.join(ftRoot, 'report.json'), 'utf8')) as {
      processed: { files: number; bytes: number };
      uploaded: { files: number; bytes: number };
      skipped: { files: number; bytes: number; byReason: Record<string, number> };
      failed: { files: number; bytes: number };
      notUtf8: number;
      throughput: { filesPerSecond: number; mibPerSecond: number };
      failures: { path: string; code: string; reason: string }[];
    };
    assert.equal(report.uploaded.files, 3);
    assert.equal(report.failed.files, 1);
    assert.equal(report.skipped.byReason.symlink, 1);

    const browser = await openBrowser();
    t.after(() => browser.close());
    const { page } = browser;
    const url = pathToFileURL(path.join(ftRoot, 'report.html')).href;
    await page.goto(url);
    const fig = (name: string): Promise<string> => text(page, `[data-figure="${name}"]`);
    for (const key of ['processed', 'uploaded', 'skipped', 'failed'] as const) {
      assert.equal(await fig(`${key}-files`), String(report[key].files), `${key} files`);
      assert.equal(await fig(`${key}-bytes`), String(report[key].bytes), `${key} bytes`);
    }
    assert.equal(await fig('not-utf8'), String(report.notUtf8));
    for (const [reason, n] of Object.entries(report.skipped.byReason)) {
      const shown = page.locator(`[data-figure="skipped-${reason}"]`);
      if (n === 0) assert.equal(await shown.count(), 0, reason);
      else assert.equal(await fig(`skipped-${reason}`), String(n), reason);
    }
    const rate = Number(await fig('files-per-second'));
    assert.ok(Math.abs(rate - report.throughput.filesPerSecond) <= 0.005, `${rate}`);
    const failure = report.failures[0]!;
    assert.equal(failure.code, 'NOT_UTF8');
    const row = page.locator('#failures tbody tr');
    assert.equal(await row.count(), 1);
    // The name as the JSON has it (bytes escaped), shown as text, never as markup.
    assert.equal(await text(page, '#failures tbody tr .path'), failure.path);
    assert.ok((await text(page, '#failures tbody tr')).includes(failure.reason));
    assert.equal(await page.locator('#failures b').count(), 0);

    const urls = browser.requests.map((r) => r.url());
    assert.deepEqual(urls, [url], 'the report loads nothing but itself');
  });
});
