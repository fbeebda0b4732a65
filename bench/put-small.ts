import path from 'node:path';
import { LAST_MODIFIED_QUERY, VERSION, type BenchContext } from './context.js';
import { tempDir } from './lifecycle.js';
import { buildPool } from './pool.js';
import { runChild } from './children.js';
import { emptySection, type Section } from './report.js';
import { startFtServer } from './servers.js';
import { median, num, ratio, ratios, withRounds } from './stats.js';
import { runWrk, writeWrkScripts, type WrkResult } from './wrk.js';

/**
 * How the bare store script (child/put-limit.ts) makes its calls: `async` on libuv's pool
 * of `threads` (UV_THREADPOOL_SIZE), or `sync` in `threads` worker threads.
 */
export interface LimitVariant {
  style: 'async' | 'sync';
  threads: number;
}

/** One run of the bare store script. */
export interface LimitRun {
  variant: LimitVariant;
  filesPerS: number;
  p50Ms: number;
  p99Ms: number;
}

export function variantName(v: LimitVariant): string {
  return v.style === 'async'
    ? `async calls, UV_THREADPOOL_SIZE=${v.threads}`
    : `sync calls in ${v.threads} worker threads`;
}

/**
 * The variants the bare store script is swept over at `concurrency` files at once: each
 * call style with each of `threads`, but no more threads than files in flight.
 */
function limitVariants(threads: readonly number[], concurrency: number): LimitVariant[] {
  return threads
    .filter((n) => n <= concurrency)
    .flatMap((n) => [
      { style: 'async' as const, threads: n },
      { style: 'sync' as const, threads: n },
    ]);
}

/** The run with the most files/s. */
export function bestOf(runs: readonly LimitRun[]): LimitRun {
  return runs.reduce((a, b) => (b.filesPerS > a.filesPerS ? b : a));
}

/**
 * Runs the bare store script (its own process) into a fresh directory: `concurrency` files
 * at once, the first `count` bodies of the pool or for `durationS`, whichever ends first.
 * Without `variant`, async calls on libuv's default pool (the environment's).
 */
export async function runPutLimit(
  args: { index: string; bodies: string; concurrency: number; count: number; durationS: number },
  variant?: LimitVariant,
): Promise<LimitRun> {
  const dir = await tempDir('put-limit');
  const out = await runChild<{
    files: number;
    ms: number;
    p50Ms: number;
    p99Ms: number;
    style: LimitVariant['style'];
    threads: number;
  }>(
    'put-limit',
    { dir, ...args, version: VERSION, ...variant },
    variant?.style === 'async'
      ? { env: { ...process.env, UV_THREADPOOL_SIZE: String(variant.threads) } }
      : {},
  );
  return {
    variant: { style: out.style, threads: out.threads },
    filesPerS: out.files / (out.ms / 1000),
    p50Ms: out.p50Ms,
    p99Ms: out.p99Ms,
  };
}

/**
 * One round of the bare store script at its best: while `sweep` is empty (round 1), every
 * variant of {@link limitVariants} in turn, kept in `sweep`; afterwards only the fastest
 * of `sweep`. Returns the round's fastest run; `log` is told each variant before it runs.
 */
export async function runLimitAtBest(
  args: { index: string; bodies: string; concurrency: number; count: number; durationS: number },
  threads: readonly number[],
  sweep: LimitRun[],
  log: (variant: LimitVariant) => void,
): Promise<LimitRun> {
  const first = sweep.length === 0;
  const tried = first ? limitVariants(threads, args.concurrency) : [bestOf(sweep).variant];
  const runs: LimitRun[] = [];
  for (const v of tried) {
    log(v);
    runs.push(await runPutLimit(args, v));
  }
  if (first) sweep.push(...runs);
  return bestOf(runs);
}

/**
 * Small-file PUT with many connections: wrk sends pre-built gzip bodies with the Python
 * client's headers, each under a new name, to a fresh ft-server; in the same round a bare
 * script does the file-system work of the same uploads (the machine's limit), at its best
 * (issue 19): round 1 sweeps its call style and thread count, later rounds run the fastest.
 */
export async function benchPutSmall(ctx: BenchContext): Promise<Section> {
  const { config, tools } = ctx;
  const cfg = config.put;
  const section = emptySection('Small-file PUT');
  const variants = (c: number): LimitVariant[] => limitVariants(cfg.limitThreads, c);
  const sweepCount = cfg.connections.reduce((a, c) => a + variants(c).length, 0);
  const sweepExtraS = (sweepCount - cfg.connections.length) * cfg.durationS;
  const threadList = cfg.limitThreads.join(', ');
  section.method.push(
    `Bodies: ${cfg.pool} distinct files of 1-10 KiB of contest-like text, gzipped at level ` +
      '6, sent as the Python client sends them: `PUT /files/NAME?last_modified=...` with ' +
      '`Content-Encoding: gzip`, `SHA256-Checksum`, `Logical-Size` and `Content-Length`, ' +
      `each under its own name (100 per directory). Load: \`wrk -t1 -cN ` +
      `-d${cfg.durationS}s\` with a Lua script sending the pre-built requests, against a ` +
      'fresh ft-server (store in the temp dir, so every upload is fsynced to the disk) ' +
      'in each round.',
    `Limit: a bare Node script (a separate process) that does only the file-system work of ` +
      `the same uploads for ${cfg.durationS} s, as many at once as wrk has connections: ` +
      'write the gzip to tmp/ durably (O_SYNC, as ft-server does), rename into ' +
      'blobs/xx/digest and fsync that directory, symlink in tmp/, lutimes, rename into ' +
      'links/ and fsync that directory (the durability ft-server gives an acknowledged ' +
      'PUT, with its group commit of directory fsyncs: one fsync of a directory at a time, ' +
      'shared by every rename into it made before it began; no HTTP, no hashing, no ' +
      'database). Its files/s is the limit, at the script\u2019s best: ' +
      `in round 1 it runs in ${sweepCount} variants, each ${cfg.durationS} s into a fresh ` +
      'directory, and the fastest at each connection count is the limit (named in the ' +
      'table): two call styles, async calls (callbacks on libuv\u2019s thread pool, as ' +
      'ft-server makes them) with UV_THREADPOOL_SIZE set to each of ' +
      `${threadList}, and sync calls in as many worker_threads, each storing one file at a ` +
      'time with the whole sequence in the thread (its directory fsyncs shared with the ' +
      'other threads through shared memory); thread counts above the connections are ' +
      'skipped, since no more files are ever in flight. ' +
      (cfg.rounds > 1
        ? `Rounds 2-${cfg.rounds} run only the variant fastest in round 1, so the sweep ` +
          `adds ${sweepExtraS} s of measuring to the run (${sweepCount} variants x ` +
          `${cfg.durationS} s instead of ${cfg.connections.length} x ${cfg.durationS} s, in ` +
          'round 1 only), plus each extra variant\u2019s start-up. '
        : `The sweep adds ${sweepExtraS} s of measuring to the run, plus each extra ` +
          'variant\u2019s start-up. ') +
      'Latency: wrk\u2019s p50 and p99 per request for ft-server; for the script, the ' +
      'p50 and p99 of each file\u2019s time to the end of its last directory fsync (what ' +
      'an acknowledged PUT waits for) from when one of as many clients as connections, ' +
      'each sending its next file when its last one ends (as wrk does), would have sent ' +
      'it: with fewer threads than connections (sync calls), that counts the wait for a ' +
      'thread, as a request waits in a server; otherwise it is the time from the open of ' +
      'its tmp file. ' +
      '\u201cvs limit\u201d is the median of the per-round ratios to the script at its best ' +
      '(for latency, above 1x is slower than the limit). ft-server runs as deployed, with ' +
      'libuv\u2019s default pool unless the bench\u2019s environment sets ' +
      'UV_THREADPOOL_SIZE. The bench does not run the Python server, so its ratio to ' +
      'Python (issue 19) is not measured here. Each round\u2019s store stays until the end ' +
      'of the run: on ext4 without a journal, removing it would slow the next rounds\u2019 ' +
      'file creation for minutes.',
  );
  if (!tools.wrk) {
    section.skipped.push(`the whole section: ${tools.missing.wrk}`);
    for (const c of cfg.connections) {
      section.targets.push({
        what: `PUT small, ft-server / bare-script-at-its-best files/s, ${c} connections`,
        ratio: NaN,
        target: 0.5,
      });
    }
    return section;
  }
  // `work` and the rounds' stores are left to cleanup(), not removed here: see removeDir().
  const work = await tempDir('put');
  const pool = { index: path.join(work, 'pool.idx'), bodies: path.join(work, 'pool.bin') };
  ctx.log(`put-small: building ${cfg.pool} bodies`);
  await buildPool(pool, cfg.pool, config.get.minBytes, config.get.maxBytes);
  const scripts = await writeWrkScripts(work);

  const results = new Map(
    cfg.connections.map((c) => [
      c,
      { server: [] as WrkResult[], limit: [] as LimitRun[], sweep: [] as LimitRun[] },
    ]),
  );
  for (let round = 0; round < cfg.rounds; round++) {
    for (const c of cfg.connections) {
      const r = results.get(c)!;
      const steps = [
        async (): Promise<void> => {
          ctx.log(`put-small: round ${round + 1}, ${c} connections, ft-server`);
          const dir = await tempDir('put-store');
          const ft = await startFtServer(dir, path.join(work, `server-${c}-${round}.log`));
          try {
            r.server.push(
              await runWrk(tools.wrk!, {
                url: ft.url,
                script: scripts.put,
                scriptArgs: [pool.index, pool.bodies, LAST_MODIFIED_QUERY],
                connections: c,
                durationS: cfg.durationS,
              }),
            );
          } finally {
            await ft.stop();
          }
        },
        async (): Promise<void> => {
          r.limit.push(
            await runLimitAtBest(
              { ...pool, concurrency: c, count: cfg.pool, durationS: cfg.durationS },
              cfg.limitThreads,
              r.sweep,
              (v) =>
                ctx.log(
                  `put-small: round ${round + 1}, ${c} at once, bare store script, ${variantName(v)}`,
                ),
            ),
          );
        },
      ];
      if (round % 2 === 1) steps.reverse();
      for (const step of steps) await step();
    }
  }

  const rows: string[][] = [];
  const sweepRows: string[][] = [];
  for (const [c, { server, limit, sweep }] of results) {
    const rps = server.map((r) => r.reqPerS);
    const rel = median(
      ratios(
        rps,
        limit.map((l) => l.filesPerS),
      ),
    );
    const errors = server.reduce((a, r) => a + r.errors, 0);
    const best = bestOf(sweep);
    const latency = (pick: (x: { p50Ms: number; p99Ms: number }) => number): string[] => [
      num(median(server.map(pick))),
      ratio(median(ratios(server.map(pick), limit.map(pick)))),
    ];
    const [p50, p50Rel] = latency((x) => x.p50Ms);
    const [p99, p99Rel] = latency((x) => x.p99Ms);
    rows.push(
      [
        `ft-server, ${c} connections`,
        withRounds(rps),
        `${rel.toFixed(2)}x`,
        p50!,
        p50Rel!,
        p99!,
        p99Rel!,
        String(errors),
      ],
      [
        `bare store script at its best, ${c} at once: ${variantName(best.variant)}`,
        withRounds(limit.map((l) => l.filesPerS)),
        '1.00x',
        num(median(limit.map((l) => l.p50Ms))),
        '1.00x',
        num(median(limit.map((l) => l.p99Ms))),
        '1.00x',
        '',
      ],
    );
    for (const run of sweep) {
      sweepRows.push([
        String(c),
        variantName(run.variant),
        num(run.filesPerS),
        num(run.p50Ms),
        num(run.p99Ms),
        run === best ? 'fastest: the limit' : '',
      ]);
    }
    section.targets.push({
      what: `PUT small, ft-server / bare-script-at-its-best files/s, ${c} connections`,
      ratio: rel,
      target: 0.5,
    });
    if (errors > 0)
      section.notes.push(`ft-server, ${c} connections: ${errors} errors or non-2xx answers.`);
    const most = Math.max(...server.map((r) => r.requests));
    if (most > cfg.pool) {
      section.notes.push(
        `A round at ${c} connections sent ${most} PUTs, more than the ${cfg.pool} distinct ` +
          'bodies: the rest replaced names with the same content (cheaper than new files).',
      );
    }
  }
  section.tables.push({
    head: [
      'what',
      'files/s median (rounds)',
      'files/s vs limit',
      'p50 ms',
      'p50 vs limit',
      'p99 ms',
      'p99 vs limit',
      'errors',
    ],
    rows,
  });
  section.tables.push({
    caption:
      `The bare store script\u2019s sweep (round 1, ${cfg.durationS} s each, a fresh ` +
      'directory each; per-file latency as in a closed loop of as many clients as files at ' +
      'once, see above)',
    head: ['clients (connections)', 'call style, threads', 'files/s', 'p50 ms', 'p99 ms', ''],
    rows: sweepRows,
  });
  return section;
}
