/**
 * Power-loss durability, proven by the order of ft-server's own system calls (issue 16,
 * item 8): ft-server runs under strace, and for every request it acknowledged the trace
 * must show that each entry it renamed into (or removed from) the store was made durable
 * before the answer's first byte was written:
 * - a blob's bytes (O_SYNC or an fsync of the temp file) before its rename into blobs/;
 * - every rename into blobs/ or links/, and every unlink from links/, followed by an fsync
 *   of that directory, started after the rename ended and ended before the answer;
 * - the blob durable (its directory's fsync ended) before the link that names it is
 *   renamed into links/, and the blob's refcount record durable (LevelDB's log written
 *   and fdatasynced) before that rename too.
 * A process kill cannot tell any of this (the page cache survives it); a power cut can.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, realpath, rm } from 'node:fs/promises';
import { request } from 'node:http';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { formatHttpDate } from '@filetracker/shared-protocol';
import { startProcess, tempDir } from './helpers/server.js';

const SERVER_BIN = 'packages/server/bin/ft-server.mjs';
const TRACED = 'openat,write,writev,fsync,fdatasync,rename,renameat,renameat2,unlink,unlinkat';

const strace = await promisify(execFile)('strace', ['-V'], { timeout: 10_000 }).then(
  () => undefined,
  (err: Error) => `strace is not installed (apt-get install strace): ${err.message}`,
);

/** One system call from the trace: the lines where it started and where it returned. */
interface Call {
  name: string;
  args: string;
  ret: string;
  start: number;
  end: number;
}

/** strace -f output, with calls split across threads (`<unfinished ...>`) joined. */
function parseTrace(text: string): Call[] {
  const calls: Call[] = [];
  const pending = new Map<string, { name: string; args: string; start: number }>();
  text.split('\n').forEach((line, i) => {
    let m = /^(\d+)\s+<\.\.\. (\w+) resumed>(.*)\) += (.*)$/.exec(line);
    if (m) {
      const open = pending.get(m[1]!);
      pending.delete(m[1]!);
      if (open && open.name === m[2]) {
        calls.push({
          name: open.name,
          args: open.args + m[3],
          ret: m[4]!,
          start: open.start,
          end: i,
        });
      }
      return;
    }
    m = /^(\d+)\s+(\w+)\((.*) <unfinished \.\.\.>$/.exec(line);
    if (m) {
      pending.set(m[1]!, { name: m[2]!, args: m[3]!, start: i });
      return;
    }
    m = /^(\d+)\s+(\w+)\((.*)\) += (.*)$/.exec(line);
    if (m) calls.push({ name: m[2]!, args: m[3]!, ret: m[4]!, start: i, end: i });
  });
  return calls;
}

/** The quoted path arguments of a call, in order. */
function quoted(args: string): string[] {
  return [...args.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!);
}

/** The path strace -y shows for a call's first argument (an fd): `25</a/b>` -> `/a/b`. */
function fdPath(args: string): string | undefined {
  return /^\d+<([^>]*)>/.exec(args)?.[1];
}

const ok = (c: Call): boolean => c.ret.startsWith('0') || /^\d+/.test(c.ret);

interface Acked {
  method: 'PUT' | 'DELETE';
  name: string;
  /** The blob's digest (PUT), to find its rename into blobs/ and its record's write. */
  digest?: string;
  localPort: number;
}

function send(
  url: string,
  method: 'PUT' | 'DELETE',
  name: string,
  version: number,
  body?: { data: Buffer; headers: Record<string, string> },
): Promise<{ status: number; localPort: number }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}/files${name}?last_modified=${encodeURIComponent(formatHttpDate(version))}`,
      // One connection per request: the client's port names the answer in the trace.
      { method, agent: false, headers: body?.headers ?? {} },
      (res) => {
        const localPort = res.socket.localPort!;
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode!, localPort }));
      },
    );
    req.on('error', reject);
    req.end(body?.data);
  });
}

test(
  'every acknowledged PUT and DELETE made its renames and unlinks durable (file, then directory fsync) before answering',
  { skip: strace, timeout: 120_000 },
  async (t) => {
    const dir = await realpath(await tempDir('ft-durable-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const traceFile = path.join(dir, 'trace.txt');
    const store = path.join(dir, 'store');
    const server = await startProcess(SERVER_BIN, ['-d', store, '-p', '0'], {}, [
      'strace',
      '-f',
      '-qq',
      '-yy',
      '-s',
      '4096',
      '-e',
      `trace=${TRACED}`,
      '-o',
      traceFile,
    ]);
    const nodePid = Number(
      /"pid":(\d+)/.exec(server.lines.find((l) => l.includes('listening'))!)![1],
    );
    t.after(() => server.stop('SIGKILL'));

    const version = 1_700_000_000;
    const acked: Acked[] = [];
    const contents = Array.from({ length: 12 }, (_, i) => `content ${i}\n`.repeat(50 + i * 30));
    // 48 PUTs, 8 at once: new names in new and shared directories, identical content under
    // several names (dedup: no blob rename, a refcount added), gzip bodies with the Python
    // client's headers and plain ones (streamed), then overwrites and deletes.
    const jobs: (() => Promise<void>)[] = [];
    for (let i = 0; i < 48; i++) {
      const content = Buffer.from(contents[i % contents.length]!);
      const digest = createHash('sha256').update(content).digest('hex');
      const name = `/d${i % 5}/s${i % 3}/f${i}.txt`;
      const gzip = i % 2 === 0;
      const body: { data: Buffer; headers: Record<string, string> } = gzip
        ? {
            data: gzipSync(content),
            headers: {
              'Content-Encoding': 'gzip',
              'SHA256-Checksum': digest,
              'Logical-Size': String(content.length),
            },
          }
        : { data: content, headers: {} };
      jobs.push(async () => {
        const r = await send(server.url, 'PUT', name, version, body);
        assert.equal(r.status, 200, `PUT ${name}`);
        acked.push({ method: 'PUT', name, digest, localPort: r.localPort });
      });
    }
    const runAll = async (list: (() => Promise<void>)[]): Promise<void> => {
      let next = 0;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < list.length) await list[next++]!();
        }),
      );
    };
    await runAll(jobs);
    const later: (() => Promise<void>)[] = [];
    for (let i = 0; i < 16; i++) {
      const name = `/d${i % 5}/s${i % 3}/f${i}.txt`;
      if (i % 2 === 0) {
        const content = Buffer.from(`overwritten ${i}\n`.repeat(40));
        const digest = createHash('sha256').update(content).digest('hex');
        later.push(async () => {
          const r = await send(server.url, 'PUT', name, version + 1, {
            data: content,
            headers: {},
          });
          assert.equal(r.status, 200, `PUT ${name} again`);
          acked.push({ method: 'PUT', name, digest, localPort: r.localPort });
        });
      } else {
        later.push(async () => {
          const r = await send(server.url, 'DELETE', name, version + 1);
          assert.equal(r.status, 200, `DELETE ${name}`);
          acked.push({ method: 'DELETE', name, localPort: r.localPort });
        });
      }
    }
    await runAll(later);

    process.kill(nodePid, 'SIGTERM');
    assert.equal(await server.exited, 0);
    const calls = parseTrace(await readFile(traceFile, 'utf8'));

    // Client port -> the start of each answer's first write on it, in trace order. A port
    // can serve several requests one after another (the kernel reuses a closed client
    // port, more so with other suites running), so each acked request takes the next
    // answer of its port: requests on one port never overlap, and `acked` is in the
    // order their answers ended.
    const answers = new Map<number, number[]>();
    for (const c of calls) {
      if (c.name !== 'write' && c.name !== 'writev') continue;
      const m = /^\d+<TCP:\[[^\]]*:\d+->[^\]]*:(\d+)\]>, \[?\{?(?:iov_base=)?"HTTP\/1\.1/.exec(
        c.args,
      );
      if (!m) continue;
      const port = Number(m[1]);
      answers.set(port, [...(answers.get(port) ?? []), c.start]);
    }
    const dirFsyncs = calls.filter((c) => c.name === 'fsync' && ok(c));
    const durableIn = (dirPath: string, after: number, before: number): Call | undefined =>
      dirFsyncs.find((f) => fdPath(f.args) === dirPath && f.start > after && f.end < before);
    const lastBefore = (pred: (c: Call) => boolean, before: number): Call | undefined =>
      calls.filter((c) => pred(c) && c.end < before).at(-1);

    // Each new blob's rename; a dedup hit finds the rename of the upload that stored it.
    const blobRenames = new Set<Call>();
    for (const a of acked) {
      const answer = answers.get(a.localPort)?.shift();
      assert.ok(answer !== undefined, `no answer to ${a.method} ${a.name} in the trace`);
      const link = path.join(store, 'links', a.name);
      if (a.method === 'DELETE') {
        const unlink = lastBefore(
          (c) => c.name.startsWith('unlink') && quoted(c.args).includes(link) && ok(c),
          answer,
        );
        assert.ok(unlink, `DELETE ${a.name}: no unlink of its link before the answer`);
        assert.ok(
          durableIn(path.dirname(link), unlink.end, answer),
          `DELETE ${a.name}: its unlink was not followed by an fsync of ${path.dirname(link)} before the answer`,
        );
        continue;
      }
      const linkRename = lastBefore(
        (c) => c.name.startsWith('rename') && quoted(c.args)[1] === link && ok(c),
        answer,
      );
      assert.ok(linkRename, `PUT ${a.name}: no rename of its link before the answer`);
      assert.ok(
        durableIn(path.dirname(link), linkRename.end, answer),
        `PUT ${a.name}: the rename of its link was not followed by an fsync of its directory before the answer`,
      );
      // The refcount record: LevelDB's log written with the digest's key, then fdatasynced,
      // both before the link was renamed into place.
      const recordDurable = calls.some(
        (w) =>
          w.name === 'write' &&
          w.end < linkRename.start &&
          /\/meta\/\d+\.log>/.test(w.args) &&
          w.args.includes(`b:${a.digest}`) &&
          calls.some(
            (c) =>
              (c.name === 'fdatasync' || c.name === 'fsync') &&
              fdPath(c.args) === fdPath(w.args) &&
              c.start > w.end &&
              c.end < linkRename.start &&
              ok(c),
          ),
      );
      assert.ok(
        recordDurable,
        `PUT ${a.name}: its refcount record was not durable before its link`,
      );
      const blob = path.join(store, 'blobs', a.digest!.slice(0, 2), a.digest!);
      const blobRename = lastBefore(
        (c) => c.name.startsWith('rename') && quoted(c.args)[1] === blob && ok(c),
        linkRename.start,
      );
      assert.ok(blobRename, `PUT ${a.name}: its blob was never renamed into blobs/`);
      blobRenames.add(blobRename);
      const upload = quoted(blobRename.args)[0]!;
      const bytesDurable = calls.some(
        (c) =>
          c.end < blobRename.start &&
          ok(c) &&
          ((c.name === 'openat' && quoted(c.args).includes(upload) && c.args.includes('O_SYNC')) ||
            ((c.name === 'fsync' || c.name === 'fdatasync') && fdPath(c.args) === upload)),
      );
      assert.ok(bytesDurable, `PUT ${a.name}: the blob's bytes were not durable before its rename`);
      assert.ok(
        durableIn(path.dirname(blob), blobRename.end, linkRename.start),
        `PUT ${a.name}: the blob's rename was not followed by an fsync of its directory before the link was renamed`,
      );
    }
    // The trace saw the work it judges: every distinct content's blob (both body kinds).
    assert.equal(blobRenames.size, contents.length + 8, 'renames of new blobs in the trace');
    assert.equal(acked.length, 64);
  },
);
