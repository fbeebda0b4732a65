/**
 * Fuzzed names and headers against a real ft-server: a few thousand random request paths
 * (percent-encodings, `..` in disguise, NUL, invalid and overlong UTF-8, long and deep
 * names, backslashes, stray `//`, unicode) and random header and date values, through raw
 * sockets and fetch. Nothing may be a 500, hang, kill the server, or touch a file outside
 * the store. The seed is printed; FT_FUZZ_SEED=N replays a run (FT_FUZZ_COUNT=N changes the
 * number of requests, 3000 by default).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { formatHttpDate } from '@filetracker/shared-protocol';
import { between, pick, prng } from './helpers/fault-prng.js';
import { inspectStore, snapshotTree } from './helpers/fault-store.js';
import { runRecover, sha256, SERVER_BIN } from './helpers/recover-store.js';
import { httpRequest, RawConnection } from './helpers/server-http.js';
import { startProcess, tempDir, type RunningProcess } from './helpers/server.js';

const SEED = Number(process.env.FT_FUZZ_SEED ?? randomBytes(4).readUInt32LE());
const COUNT = Number(process.env.FT_FUZZ_COUNT ?? 3000);
const CONCURRENCY = 8;
/** A response slower than this is a failure ("no hang"). */
const SLOW_MS = 3_000;
/** In fuzzed names, so a file created anywhere by mistake can be found. */
const MARKER = `fzq${(SEED >>> 0).toString(36)}`;

const rand = prng(SEED);
const chance = (p: number): boolean => rand() < p;

const TRAVERSAL = [
  '..',
  '.',
  '%2e%2e',
  '%2E%2E',
  '.%2e',
  '%2e.',
  '%2e',
  '...',
  '..;',
  '..%00',
  '%2e%2e%2f',
  '%252e%252e',
  '..\\',
  '..%5c',
  '..%5c..%5c',
  '%c0%ae%c0%ae',
  '%c0%2e',
  '%e0%80%ae',
  '%ef%bc%8e%ef%bc%8e',
  '%2F..%2F',
  '%2f..%2f..%2f',
  `..%2F..%2Fsentinel%2F${MARKER}`,
  `..%2f..%2f..%2f${MARKER}`,
  `%2e%2e/%2e%2e/sentinel/${MARKER}`,
  `.%2e/.%2e/${MARKER}`,
];
const CONTROL = ['%00', 'a%00b', '%0a', '%0d%0a', '%09', '%7f', '%1b', '%08'];
const BAD_UTF8 = [
  '%ff%fe',
  '%c0%ae',
  '%80',
  '%ed%a0%80',
  '%f4%90%80%80',
  '%f8%88%80%80%80',
  '%e2%82',
  '%c3',
];
const UNICODE = ['zażółć', '日本語', '🙂', 'e\u0301', '\u202e', 'Ω', '\ufeff', 'Ã©', '\u2028'];
const ODD = [
  '%',
  '%z',
  '%2',
  '?x=1',
  '#frag',
  ';',
  ' ',
  '%20',
  '+',
  '*',
  '\\',
  '\\\\',
  '"',
  '<',
  '>',
  '|',
  ':',
  '@',
  '~',
  "'",
  'CON',
  'nul',
  'links',
  'meta',
  'blobs',
  'ft-tmp',
  '%2F',
  '%2f%2f',
  '&',
];

function plain(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789_-.~';
  let s = chance(0.3) ? MARKER : '';
  for (let i = between(rand, 1, 10); i > 0; i--)
    s += alphabet[Math.floor(rand() * alphabet.length)];
  return s;
}

/** Percent-encodes some or all bytes of `s` (UTF-8), at random. */
function maybeEncode(s: string): string {
  if (!chance(0.5)) return s;
  return [...Buffer.from(s, 'utf8')]
    .map((b) => {
      if (b < 0x80 && !chance(0.3)) return String.fromCharCode(b);
      const h = b.toString(16).padStart(2, '0');
      return '%' + (chance(0.5) ? h.toUpperCase() : h);
    })
    .join('');
}

function component(): string {
  const r = rand();
  if (r < 0.45) return plain();
  if (r < 0.58) return pick(rand, TRAVERSAL);
  if (r < 0.63) return pick(rand, CONTROL);
  if (r < 0.68) return pick(rand, BAD_UTF8);
  if (r < 0.78) return maybeEncode(pick(rand, UNICODE));
  if (r < 0.82)
    return chance(0.5)
      ? 'a'.repeat(between(rand, 250, 310))
      : maybeEncode('é'.repeat(between(rand, 120, 160)));
  if (r < 0.95) return pick(rand, ODD) + (chance(0.5) ? plain() : '');
  return '';
}

function name(): string {
  if (chance(0.03)) {
    const depth = between(rand, 150, 200);
    return Array.from({ length: depth }, () => (chance(0.1) ? component() : 'd')).join('/');
  }
  const parts = Array.from({ length: between(rand, 1, 5) }, component);
  let s = parts.join(chance(0.1) ? '//' : '/');
  if (chance(0.1)) s += '/';
  return s;
}

const ENDPOINTS = [
  '/files/',
  '/files/',
  '/files/',
  '/files/',
  '/files/',
  '/files/',
  '/list/',
  '/list/',
  '//files/',
  '/ft//files/',
  '/FILES/',
  '/version/',
  '/status/',
  '/',
  '/files%2f',
  '/%66iles/',
  '\\files\\',
  '/files/./',
  '/list',
];

const JUNK_DATES = [
  '-1',
  '1e3',
  '99999999999999999999',
  'now',
  '',
  'Wed, 31 Feb 2020 00:00:00 GMT',
  'Thu, 01 Jan 1970 00:00:00 GMT',
  '%ff',
  '%00',
  '%E2%98%83',
  'Mon, 1 Jan 2001 25:00:00 GMT',
  '1 Jan 2001 00:00 +99999',
  '0000-00-00',
  'Jan',
  ' ',
  ',,,',
  'Wed,',
  '1 2 3 4 5',
  'a b c d e',
  'Tue, 19 Jan 2038 03:14:08 GMT',
  'Fri, 13 Dec 1901 20:45:52 GMT',
  '1 Jan 275761 00:00:00 GMT',
  '31 Dec -1 00:00:00 GMT',
  '01 Jan 2001 00:00:00.5 GMT',
  '01-Jan-01 00:00:00 GMT',
  'Sun Nov  6 08:49:37 1994',
  '2001-01-01T00:00:00Z',
];

function query(): string {
  const r = rand();
  const params: string[] = [];
  if (r < 0.5) {
    // Valid: within what ext4 holds (see the out-of-range test below).
    const version = between(rand, 0, 2_000_000_000);
    params.push(
      `last_modified=${encodeURIComponent(formatHttpDate(version)).replace(/%20/g, chance(0.5) ? '+' : '%20')}`,
    );
  } else if (r < 0.85) {
    const junk = pick(rand, JUNK_DATES);
    params.push(
      `last_modified=${chance(0.5) ? encodeURIComponent(junk) : junk.replace(/ /g, '+')}`,
    );
  }
  if (chance(0.05)) params.push(`last_modified=${pick(rand, JUNK_DATES).replace(/ /g, '+')}`);
  if (chance(0.05)) params.push(`${plain()}=${pick(rand, ODD)}`);
  return params.length ? '?' + params.join('&') : chance(0.1) ? '?' : '';
}

const hex = (n: number): string =>
  randomBytesFrom(Math.ceil(n / 2))
    .toString('hex')
    .slice(0, n);
function randomBytesFrom(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

interface FuzzRequest {
  via: 'raw' | 'fetch';
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer | undefined;
  chunked: boolean;
}

function request(): FuzzRequest {
  const r = rand();
  const method =
    r < 0.35
      ? 'PUT'
      : r < 0.6
        ? 'GET'
        : r < 0.72
          ? 'HEAD'
          : r < 0.87
            ? 'DELETE'
            : pick(rand, ['POST', 'OPTIONS', 'PATCH', 'PROPFIND', 'TRACE', 'get', 'MKCOL']);
  const content = randomBytesFrom(chance(0.2) ? 0 : between(rand, 1, 3000));
  const headers: Record<string, string> = {};
  let body: Buffer | undefined;
  if (method === 'PUT' || (method !== 'GET' && method !== 'HEAD' && chance(0.3))) {
    body = content;
    const g = rand();
    if (g < 0.25) {
      body = gzipSync(content);
      headers['Content-Encoding'] = 'gzip';
    } else if (g < 0.3) {
      body = gzipSync(content).subarray(0, between(rand, 0, 20));
      headers['Content-Encoding'] = 'gzip';
    } else if (g < 0.4) {
      headers['Content-Encoding'] = pick(rand, [
        'GZIP',
        ' gzip ',
        'x-gzip',
        'deflate',
        'br',
        'gzip, identity',
        '',
        'identity',
        'gzip;q=1',
        '\tgzip',
        'gzip\u00e9',
      ]);
    }
    if (chance(0.4)) {
      headers['SHA256-Checksum'] = pick(rand, [
        sha256(content),
        sha256(content).toUpperCase(),
        ` ${sha256(content)} `,
        hex(63),
        hex(65),
        'zz'.repeat(32),
        '',
        sha256(Buffer.from('other')),
        `${sha256(content)},${sha256(content)}`,
      ]);
    }
    if (chance(0.4)) {
      headers['Logical-Size'] = pick(rand, [
        String(content.length),
        String(content.length + 1),
        '-1',
        '1e3',
        '99999999999999999999',
        '',
        ' 5 ',
        '0x10',
        '1.0',
        '+1',
        '9007199254740993',
        'NaN',
      ]);
    }
  }
  if (chance(0.3))
    headers['Accept-Encoding'] = pick(rand, [
      'gzip',
      'gzip;q=0',
      '*',
      '*;q=0, identity',
      'deflate',
      '',
      'gzip, deflate',
      'GZIP;Q=0.5',
      'x-gzip',
    ]);
  if (chance(0.1))
    headers['If-None-Match'] = pick(rand, ['*', '"x"', `"${hex(64)}"`, 'W/"a", "b"', '']);
  if (chance(0.05)) headers['X-Junk'] = pick(rand, ['\u00ff\u00fe', 'a'.repeat(5000), '%00']);
  return {
    via: chance(0.5) ? 'raw' : 'fetch',
    method,
    path: pick(rand, ENDPOINTS) + name() + query(),
    headers,
    body,
    chunked: body !== undefined && chance(0.15),
  };
}

interface Outcome {
  status: number | 'no-answer' | 'client-refused' | 'timeout' | 'error';
  ms: number;
  exception?: string;
  detail?: string;
}

async function sendRaw(port: number, req: FuzzRequest): Promise<Outcome> {
  const head = [
    `${req.method} ${req.path} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    'Connection: close',
  ];
  for (const [k, v] of Object.entries(req.headers)) head.push(`${k}: ${v}`);
  let body: Buffer = Buffer.alloc(0);
  if (req.body !== undefined) {
    if (req.chunked) {
      head.push('Transfer-Encoding: chunked');
      body = Buffer.concat([
        Buffer.from(`${req.body.length.toString(16)}\r\n`),
        req.body,
        Buffer.from(req.body.length ? '\r\n0\r\n\r\n' : '\r\n'),
      ]);
    } else {
      head.push(`Content-Length: ${req.body.length}`);
      body = req.body;
    }
  }
  // The request line goes as UTF-8 bytes (raw non-ASCII), header values as latin-1.
  const [line, ...rest] = head;
  const bytes = Buffer.concat([
    Buffer.from(line! + '\r\n', 'utf8'),
    Buffer.from(rest.join('\r\n') + '\r\n\r\n', 'latin1'),
    body,
  ]);
  const started = Date.now();
  const conn = await RawConnection.open(port);
  try {
    await conn.write(bytes).catch(() => {});
    const res = await conn.readResponse({ head: req.method === 'HEAD', timeoutMs: 5_000 });
    const ms = Date.now() - started;
    if (!res) return { status: 'no-answer', ms };
    return { status: res.status, ms, exception: res.headers['x-exception'] };
  } catch (err) {
    const ms = Date.now() - started;
    return {
      status: /timed out/.test((err as Error).message) ? 'timeout' : 'error',
      ms,
      detail: (err as Error).message,
    };
  } finally {
    conn.destroy();
  }
}

async function sendFetch(base: string, req: FuzzRequest): Promise<Outcome> {
  const started = Date.now();
  let res: Response;
  try {
    res = await fetch(base + req.path, {
      method: req.method,
      headers: req.headers,
      body: req.body,
      signal: AbortSignal.timeout(5_000),
      redirect: 'manual',
    });
  } catch (err) {
    const e = err as Error;
    if (e.name === 'TimeoutError') return { status: 'timeout', ms: Date.now() - started };
    // fetch refuses some methods, header values and URLs itself: nothing was sent.
    if (e instanceof TypeError && !/fetch failed/.test(e.message)) {
      return { status: 'client-refused', ms: 0, detail: e.message };
    }
    return {
      status: 'error',
      ms: Date.now() - started,
      detail: `${e.message} ${String((e.cause as Error | undefined)?.message)}`,
    };
  }
  try {
    await res.arrayBuffer();
  } catch {
    // A body that fails to decode (odd Content-Encoding on our side) is not the point here.
  }
  return {
    status: res.status,
    ms: Date.now() - started,
    exception: res.headers.get('x-exception') ?? undefined,
  };
}

let parent: string;
let store: string;
let server: RunningProcess | undefined;

before(async () => {
  parent = await tempDir('ft-fault-fuzz-');
  store = path.join(parent, 'store');
  // Sentinels where an escape from links/ would land: ../, ../../sentinel.
  await mkdir(path.join(parent, 'sentinel', 'links'), { recursive: true });
  await writeFile(path.join(parent, 'sentinel', 'keep.txt'), 'sentinel\n');
  await writeFile(path.join(parent, 'sentinel', 'links', 'x'), 'sentinel\n');
  await writeFile(path.join(parent, 'outside.txt'), 'outside\n');
});

after(async () => {
  await server?.stop('SIGKILL');
  await rm(parent, { recursive: true, force: true });
});

const markerEntries = async (dir: string): Promise<string[]> =>
  (await readdir(dir).catch(() => [] as string[])).filter((e) => e.includes(MARKER));

test(
  `${COUNT} fuzzed requests: no 500, no hang, the server survives, nothing is written outside its directory`,
  { timeout: 240_000 },
  async (t) => {
    t.diagnostic(`seed ${SEED} (FT_FUZZ_SEED=${SEED} to replay), marker ${MARKER}`);
    const outsideBefore = await snapshotTree(parent, ['store']);
    const cwd = process.cwd();
    assert.deepEqual([...(await markerEntries(tmpdir())), ...(await markerEntries(cwd))], []);

    server = await startProcess(SERVER_BIN, ['-d', store, '-p', '0']);
    const port = Number(new URL(server.url).port);
    const requests = Array.from({ length: COUNT }, request);
    const outcomes: Outcome[] = new Array(COUNT);
    let next = 0;
    const started = Date.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < requests.length) {
          const i = next++;
          const req = requests[i]!;
          outcomes[i] =
            req.via === 'raw' ? await sendRaw(port, req) : await sendFetch(server!.url, req);
        }
      }),
    );
    const elapsed = Date.now() - started;

    const histogram = new Map<string, number>();
    for (const o of outcomes)
      histogram.set(String(o.status), (histogram.get(String(o.status)) ?? 0) + 1);
    const slowest = Math.max(...outcomes.map((o) => o.ms));
    t.diagnostic(
      `${COUNT} requests in ${elapsed} ms, slowest ${slowest} ms; statuses ${[...histogram]
        .sort()
        .map(([s, n]) => `${s}:${n}`)
        .join(' ')}`,
    );

    const reasons = new Map<string, number>();
    for (const o of outcomes) {
      if (o.status !== 400) continue;
      const why = (o.exception ?? '(no X-Exception: refused by the HTTP parser)').replace(
        /".*/,
        '"…',
      );
      reasons.set(why, (reasons.get(why) ?? 0) + 1);
    }
    t.diagnostic(
      `400s: ${[...reasons]
        .sort((a, b) => b[1] - a[1])
        .map(([w, n]) => `${n} ${w}`)
        .join('; ')}`,
    );

    const show = (i: number): string => {
      const r = requests[i]!;
      const o = outcomes[i]!;
      return `${r.via} ${r.method} ${r.path.slice(0, 200)}${r.path.length > 200 ? `…(${r.path.length})` : ''} ${JSON.stringify(r.headers).slice(0, 200)} body ${r.body?.length ?? '-'}${r.chunked ? ' chunked' : ''} -> ${o.status} ${o.exception ?? o.detail ?? ''}`;
    };
    const bad = outcomes.flatMap((o, i) =>
      o.status === 500 || (typeof o.status === 'number' && o.status > 500) ? [i] : [],
    );
    for (const i of bad.slice(0, 10)) t.diagnostic(`5xx: ${show(i)}`);
    const broken = outcomes.flatMap((o, i) =>
      ['no-answer', 'timeout', 'error'].includes(String(o.status)) ? [i] : [],
    );
    for (const i of broken.slice(0, 10)) t.diagnostic(`no answer: ${show(i)}`);

    assert.equal(server.child.exitCode, null, 'the server is still running');
    assert.equal((await httpRequest(server.url, '/version')).status, 200, 'and still answers');
    assert.deepEqual(bad.map(show), [], 'no request is answered with a 5xx');
    assert.deepEqual(broken.map(show), [], 'every request is answered');
    assert.ok(slowest < SLOW_MS, `every answer within ${SLOW_MS} ms (slowest ${slowest} ms)`);

    assert.equal(await server.stop(), 0, 'the server stops cleanly');
    server = undefined;
    const check = await runRecover(['--check', store]);
    assert.equal(check.code, 0, `ft-recover --check: ${check.stdout}${check.stderr}`);
    const inspection = await inspectStore(store);
    assert.deepEqual(inspection.problems, []);
    t.diagnostic(`${inspection.links.size} names stored`);
    assert.deepEqual(
      (await readdir(store)).sort(),
      ['blobs', 'ft-store-id', 'ft-tmp', 'links', 'meta'],
      'nothing but the store layout in the store',
    );
    assert.deepEqual(
      await snapshotTree(parent, ['store']),
      outsideBefore,
      'nothing outside the store changed',
    );
    assert.deepEqual(
      [...(await markerEntries(tmpdir())), ...(await markerEntries(cwd))],
      [],
      'no fuzzed name appeared in the temp dir or the working dir',
    );
  },
);

test(
  'PUT of a name nested 1400 levels deep is refused with a 4xx, not a 500',
  { timeout: 30_000 },
  async (t) => {
    const dir = await tempDir('ft-fault-deep-');
    t.after(() => rm(dir, { recursive: true, force: true }));
    const proc = await startProcess(SERVER_BIN, ['-d', dir, '-p', '0']);
    t.after(() => proc.stop('SIGKILL'));
    // Each component is 1 byte, so the link's path fits PATH_MAX (4096) but its relative
    // target (`../` per level + blobs/xx/<sha256>) does not.
    const deep = '/x'.repeat(1400);
    const date = encodeURIComponent(formatHttpDate(1_700_000_000));
    const res = await httpRequest(proc.url, `/files${deep}?last_modified=${date}`, {
      method: 'PUT',
      body: 'deep\n',
    });
    t.diagnostic(
      `PUT /files${'/x'.repeat(3)}…(1400 levels): ${res.status} ${String(res.headers['x-error-code'])}`,
    );
    assert.ok(
      res.status >= 400 && res.status < 500,
      `expected a 4xx, got ${res.status} ${String(res.headers['x-error-code'])}`,
    );
    assert.equal((await httpRequest(proc.url, `/files${deep}`)).status, 404);
  },
);

test(
  'a PUT whose version the file system cannot hold is refused, or reads back with the version it answered after a restart',
  { timeout: 30_000 },
  async (t) => {
    const dir = await tempDir('ft-fault-date-');
    t.after(() => rm(dir, { recursive: true, force: true }));
    // ext4 (the usual store) holds mtimes from 1901-12-13 to 2446-05-10.
    const cases = [
      { name: '/far-future', date: 'Wed, 01 Jan 3000 00:00:00 GMT' },
      { name: '/far-past', date: 'Wed, 01 Jan 1800 00:00:00 GMT' },
      // Just outside 1970-2038, where the server reads the mtime back to check it.
      { name: '/before-1970', date: 'Wed, 31 Dec 1969 23:59:59 GMT' },
      { name: '/after-2038', date: 'Tue, 19 Jan 2038 03:14:08 GMT' },
    ];
    let proc = await startProcess(SERVER_BIN, ['-d', dir, '-p', '0']);
    t.after(() => proc.stop('SIGKILL'));
    const answered = new Map<string, string | undefined>();
    for (const c of cases) {
      const res = await httpRequest(
        proc.url,
        `/files${c.name}?last_modified=${encodeURIComponent(c.date)}`,
        { method: 'PUT', body: 'x' },
      );
      assert.ok(
        res.status === 200 || (res.status >= 400 && res.status < 500),
        `PUT ${c.name}: ${res.status}`,
      );
      if (res.status === 200) answered.set(c.name, res.headers['last-modified']);
    }
    assert.equal(await proc.stop(), 0);
    proc = await startProcess(SERVER_BIN, ['-d', dir, '-p', '0']);
    const after: string[] = [];
    for (const [name, lastModified] of answered) {
      const res = await httpRequest(proc.url, `/files${name}`, { method: 'HEAD' });
      after.push(
        `${name}: PUT answered ${lastModified}, HEAD after restart ${String(res.headers['last-modified'])}`,
      );
      t.diagnostic(after.at(-1)!);
    }
    for (const [name, lastModified] of answered) {
      const res = await httpRequest(proc.url, `/files${name}`, { method: 'HEAD' });
      assert.equal(
        res.headers['last-modified'],
        lastModified,
        `${name}: the version answered is the version kept`,
      );
    }
  },
);
