/**
 * Crash safety (DESIGN.md invariant 4): a real ft-server under a load of parallel PUTs and
 * DELETEs is killed with SIGKILL at a random moment, then ft-recover repairs the store and
 * a restarted server must show every acknowledged write.
 *
 * Rounds: 12 by default (about 15 s); FT_CRASH_ROUNDS=N runs N, about 1.5 s each (e.g.
 * FT_CRASH_ROUNDS=200 for a soak of about five minutes). FT_CRASH_SEED replays the random choices of a run (printed as a
 * diagnostic; timing still differs from run to run).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { rm } from 'node:fs/promises';
import { after, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { FiletrackerClient, encodeName, formatHttpDate } from '@filetracker/shared-protocol';
import {
  CrashHistory,
  describe,
  sameState,
  showState,
  type NameState,
  type Op,
} from './helpers/fault-history.js';
import { prng } from './helpers/fault-prng.js';
import { inspectStore } from './helpers/fault-store.js';
import { runRecover, SERVER_BIN } from './helpers/recover-store.js';
import { startProcess, tempDir, type RunningProcess } from './helpers/server.js';

const ROUNDS = Number(process.env.FT_CRASH_ROUNDS ?? 12);
const SEED = Number(process.env.FT_CRASH_SEED ?? randomBytes(4).readUInt32LE());
const IN_FLIGHT = 16;
/** Names at depths 1-3 (relative link targets differ by depth), one with non-ASCII. */
const NAMES = Array.from({ length: 20 }, (_, i) => {
  const n = String(i).padStart(2, '0');
  return i % 5 === 0 ? `/crash/deep/er/n${n}` : i % 3 === 0 ? `/crash/d${i % 2}/n${n}` : `/c-${n}`;
}).map((n, i) => (i === 7 ? `${n} zażółć` : n));

const rand = prng(SEED);
/** Shared contents (deduplicated blobs with several references), 0 B to 800 KB. */
const SHARED = [0, 200, 5_000, 60_000, 300_000, 800_000].map((size, i) => {
  const buf = Buffer.alloc(size);
  for (let j = 0; j < size; j++) buf[j] = Math.floor(rand() * 256) ^ i;
  return buf;
});

/**
 * Content unique to a PUT: `name@version` repeated, so a read names its PUT. Shared contents
 * cannot; their reads are told apart by version, which is unique per name in a run.
 */
function uniqueContent(name: string, version: number): Buffer {
  const line = `${name}@${version}\n`;
  return Buffer.from(line.repeat(1 + Math.floor(rand() * 200)));
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

type Mode = 'gzip-hints' | 'plain' | 'plain-checksum' | 'chunked-gzip';
const MODES: Mode[] = ['gzip-hints', 'plain', 'plain-checksum', 'chunked-gzip'];

/** One request; resolves with the status and Last-Modified, rejects on a cut connection. */
function send(
  agent: http.Agent,
  port: number,
  op: Op,
  mode: Mode,
): Promise<{ status: number; version: number | undefined }> {
  const path =
    '/files' +
    encodeName(op.name) +
    '?last_modified=' +
    encodeURIComponent(formatHttpDate(op.version));
  const headers: Record<string, string | number> = {};
  let body: Buffer | undefined;
  if (op.kind === 'put') {
    const content = op.content!;
    body = content;
    if (mode === 'gzip-hints' || mode === 'chunked-gzip') {
      body = gzipSync(content, { level: 1 });
      headers['Content-Encoding'] = 'gzip';
      headers['SHA256-Checksum'] = sha256(content);
    }
    if (mode === 'gzip-hints') headers['Logical-Size'] = content.length;
    if (mode === 'plain-checksum') headers['SHA256-Checksum'] = sha256(content);
    if (mode === 'chunked-gzip') headers['Transfer-Encoding'] = 'chunked';
    else headers['Content-Length'] = body.length;
  }
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: op.kind === 'put' ? 'PUT' : 'DELETE',
        headers,
        agent,
        timeout: 15_000,
      },
      (res) => {
        res.resume();
        res.on('error', reject);
        res.on('end', () => {
          const lm = res.headers['last-modified'];
          resolve({
            status: res.statusCode!,
            version: lm === undefined ? undefined : Date.parse(lm) / 1000,
          });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    if (body && mode === 'chunked-gzip') {
      // Two chunks, so a kill can land between them.
      const half = Math.floor(body.length / 2);
      req.write(body.subarray(0, half));
      req.end(body.subarray(half));
    } else {
      req.end(body);
    }
  });
}

interface RoundLoad {
  sent: number;
  answered: number;
  cut: number;
  unexpected: string[];
}

/** Runs the load against `server` and SIGKILLs it after `killAfterMs`. */
async function loadAndKill(
  server: RunningProcess,
  history: CrashHistory,
  nextVersion: () => number,
  killAfterMs: number,
): Promise<RoundLoad> {
  const port = Number(new URL(server.url).port);
  const agent = new http.Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
  const result: RoundLoad = { sent: 0, answered: 0, cut: 0, unexpected: [] };
  let stopping = false;
  const worker = async (): Promise<void> => {
    while (!stopping) {
      const name = NAMES[Math.floor(rand() * NAMES.length)]!;
      const kind = rand() < 0.7 ? 'put' : 'delete';
      // Mostly increasing versions; one op in ten is stale, to exercise "newer wins".
      const version = nextVersion() - (rand() < 0.1 ? 1 + Math.floor(rand() * 40) : 0);
      const content =
        kind === 'put'
          ? rand() < 0.5
            ? SHARED[Math.floor(rand() * SHARED.length)]!
            : uniqueContent(name, version)
          : undefined;
      const mode = MODES[Math.floor(rand() * MODES.length)]!;
      const op = history.send({ name, kind, version, content });
      result.sent++;
      try {
        const answer = await send(agent, port, op, mode);
        history.answer(op, answer.status, answer.version);
        result.answered++;
        const ok = answer.status === 200 || (kind === 'delete' && answer.status === 404);
        if (!ok)
          result.unexpected.push(`${kind} ${name} v${version} (${mode}) -> ${answer.status}`);
      } catch {
        result.cut++;
      }
    }
  };
  const workers = Array.from({ length: IN_FLIGHT }, () => worker());
  await new Promise((r) => setTimeout(r, killAfterMs));
  stopping = true;
  server.child.kill('SIGKILL');
  await server.exited;
  await Promise.all(workers);
  agent.destroy();
  return result;
}

/** Reads what a name holds through the typed client: null when absent. */
async function read(client: FiletrackerClient, name: string): Promise<NameState> {
  try {
    const { data, version } = await client.getBuffer(name);
    return { version, content: data };
  } catch (err) {
    if ((err as { status?: number }).status === 404) return null;
    throw err;
  }
}

const dir = await tempDir('ft-fault-crash-');
let server: RunningProcess | undefined;
after(async () => {
  await server?.stop('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

test(
  `after SIGKILL under load (${ROUNDS} rounds), ft-recover repairs the store and every acknowledged write survives`,
  { timeout: 30_000 + ROUNDS * 15_000 },
  async (t) => {
    t.diagnostic(`seed ${SEED} (FT_CRASH_SEED to replay), ${ROUNDS} rounds`);
    let version = 1_600_000_000;
    const nextVersion = (): number => version++;
    /** What each name held after the last round's recovery (all absent at first). */
    const known = new Map<string, NameState>(NAMES.map((n) => [n, null]));
    const checkCodes: number[] = [];
    server = await startProcess(SERVER_BIN, ['-d', dir, '-p', '0']);

    for (let round = 1; round <= ROUNDS; round++) {
      const history = new CrashHistory();
      const killAfterMs = 50 + Math.floor(rand() * 350);
      const load = await loadAndKill(server, history, nextVersion, killAfterMs);
      server = undefined;
      assert.deepEqual(load.unexpected, [], `round ${round}: unexpected answers before the kill`);

      const check = await runRecover(['--check', dir]);
      checkCodes.push(check.code ?? -1);
      const firstLines = (check.stdout + check.stderr).trim().split('\n').slice(-3).join(' | ');
      const repair = await runRecover([dir]);
      assert.equal(repair.code, 0, `round ${round}: ft-recover DIR: ${repair.stderr}`);
      const recheck = await runRecover(['--check', dir]);
      assert.equal(
        recheck.code,
        0,
        `round ${round}: ft-recover --check after repair: ${recheck.stdout}${recheck.stderr}`,
      );
      const inspection = await inspectStore(dir);
      assert.deepEqual(
        inspection.problems,
        [],
        `round ${round}: store inconsistent after ft-recover`,
      );

      server = await startProcess(SERVER_BIN, ['-d', dir, '-p', '0']);
      const client = new FiletrackerClient(server.url, { retries: 0 });
      try {
        for (const name of NAMES) {
          const observed = await read(client, name);
          const allowed = history.outcomes(name, known.get(name)!);
          assert.ok(
            allowed.some((s) => sameState(s, observed)),
            `round ${round}: ${name} holds ${showState(observed)}; allowed: ` +
              `${allowed.map(showState).join(', ')}; from ${showState(known.get(name)!)} ` +
              `through ${describe(history.ops(name))}`,
          );
          if (observed !== null && !SHARED.some((s) => s.equals(observed.content))) {
            assert.ok(
              observed.content.toString().startsWith(`${name}@${observed.version}\n`),
              `round ${round}: ${name}: content is not the one its version was written with`,
            );
          }
          assert.equal(
            inspection.links.get(name)?.version,
            observed?.version,
            `round ${round}: ${name}: links/ and GET disagree`,
          );
          known.set(name, observed);
        }
        const listed: string[] = [];
        for await (const line of client.list('/')) listed.push('/' + line);
        assert.deepEqual(
          listed.sort(),
          NAMES.filter((n) => known.get(n) !== null).sort(),
          `round ${round}: /list shows exactly the present names`,
        );
      } finally {
        client.close();
      }
      t.diagnostic(
        `round ${round}: kill at ${killAfterMs} ms; ${load.sent} ops sent, ${load.answered} answered, ` +
          `${load.cut} cut off; --check before repair exit ${check.code} (${firstLines}); ` +
          `${inspection.links.size} names, ${inspection.blobs.size} blobs after`,
      );
    }
    t.diagnostic(
      `--check before repair: exit 1 in ${checkCodes.filter((c) => c === 1).length} of ${ROUNDS} rounds, exit 0 in ${checkCodes.filter((c) => c === 0).length}`,
    );
    assert.ok(
      checkCodes.every((c) => c === 0 || c === 1),
      `ft-recover --check exits 0 or 1: ${checkCodes.join(',')}`,
    );
  },
);
