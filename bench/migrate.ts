import { createHash } from 'node:crypto';
import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { runChild } from './children.js';
import { LAST_MODIFIED_QUERY, VERSION, type BenchContext } from './context.js';
import { writeLargeFile, writeSmallTree } from './data.js';
import { migrateNotReady, runMigrate, type MigrateRun } from './ft-migrate.js';
import { tempDir } from './lifecycle.js';
import { emptySection, type Section, type Table } from './report.js';
import { run } from './proc.js';
import { BINS, shebangFlags, startFtServer } from './servers.js';
import { MiB, median, num, ratio, ratios, withRounds } from './stats.js';
import { bestOf, runLimitAtBest, variantName, type LimitRun } from './put-small.js';
import { runWrk, writeWrkScripts } from './wrk.js';

/** One run of child/store-put.ts. */
interface StorePutRun {
  files: number;
  ms: number;
  mainCpuMs: number;
}

/** ft-migrate's -j when none is given: read from its --help (the source of truth). */
async function defaultJobs(): Promise<number | undefined> {
  const r = await run(process.execPath, [BINS.migrate, '--help']);
  const m = /-j, --concurrency <N>[\s\S]*?default:\s*(\d+)/.exec(r.stdout);
  return m ? Number(m[1]) : undefined;
}

/** ft-migrate's default gzip level, from its --help (6, the Python client's, if absent). */
async function defaultGzipLevel(): Promise<number> {
  const r = await run(process.execPath, [BINS.migrate, '--help']);
  const m = /--gzip-level <N>[\s\S]*?default:\s*(\d+)/.exec(r.stdout);
  return m ? Number(m[1]) : 6;
}

/**
 * Writes the files of `tree` as a pool of gzip bodies at `level` (ft-migrate's), for the
 * bare store script and for wrk; returns its files and the tree's total size.
 */
async function poolOfTree(
  tree: string,
  names: string[],
  dir: string,
  level: number,
): Promise<{ index: string; bodies: string; logicalBytes: number }> {
  const index = path.join(dir, 'tree.idx');
  const bodies = path.join(dir, 'tree.bin');
  const out = await open(bodies, 'w');
  const lines: string[] = [];
  let offset = 0;
  let logicalBytes = 0;
  try {
    for (const name of names) {
      const data = await readFile(path.join(tree, name));
      logicalBytes += data.length;
      const gz = gzipSync(data, { level });
      await out.write(gz);
      const sha = createHash('sha256').update(data).digest('hex');
      lines.push(`/files/${name} ${sha} ${data.length} ${offset} ${gz.length}\n`);
      offset += gz.length;
    }
  } finally {
    await out.close();
  }
  await writeFile(index, lines.join(''));
  return { index, bodies, logicalBytes };
}

/** One ft-migrate run into a fresh ft-server whose store is in the temp dir (disk). */
async function migrateOnce(
  ctx: BenchContext,
  tree: string,
  work: string,
  tag: string,
  jobs: number | undefined,
): Promise<MigrateRun> {
  // The store is left to cleanup(), not removed here: see removeDir().
  const store = await tempDir('migrate-store');
  const ft = await startFtServer(store, path.join(work, `server-${tag}.log`));
  try {
    ctx.log(`migrate: ${tag}`);
    return await runMigrate(tree, ft.url, work, tag, jobs);
  } finally {
    await ft.stop();
  }
}

/**
 * ft-server's own PUT rate for the small tree's bodies over wrk with `jobs` connections,
 * into a fresh server: the figure beside ft-migrate's files/s for the target of issue 15
 * (ft-migrate costs almost nothing beside the server: >= 0.7x). Undefined without wrk.
 */
async function serverPutRate(
  ctx: BenchContext,
  pool: { index: string; bodies: string },
  work: string,
  jobs: number,
  tag: string,
): Promise<{ reqPerS: number; errors: number } | undefined> {
  const wrk = ctx.tools.wrk;
  if (!wrk) return undefined;
  const scripts = await writeWrkScripts(work);
  const store = await tempDir('migrate-wrk-store');
  const ft = await startFtServer(store, path.join(work, `server-wrk-${tag}.log`));
  try {
    ctx.log(`migrate: ft-server PUT rate over wrk, ${jobs} connections (${tag})`);
    const r = await runWrk(wrk, {
      url: ft.url,
      script: scripts.put,
      scriptArgs: [pool.index, pool.bodies, LAST_MODIFIED_QUERY],
      connections: jobs,
      durationS: ctx.config.put.durationS,
    });
    return { reqPerS: r.reqPerS, errors: r.errors };
  } finally {
    await ft.stop();
  }
}

/**
 * ft-migrate's start-up: runs on an empty tree (no TTY, plain output, a state file in the
 * work dir) into a running ft-server, beside `node -e 0` for the machine's own start-up;
 * target <= 0.25 s (issue 15: Python's migrator starts in 0.16 s).
 */
async function startupTable(ctx: BenchContext, into: Section, work: string): Promise<Table> {
  const runs = ctx.config.migrate.startupRuns;
  const empty = path.join(work, 'empty');
  await mkdir(empty, { recursive: true });
  const store = await tempDir('migrate-startup-store');
  const ft = await startFtServer(store, path.join(work, 'server-startup.log'));
  const migrateMs: number[] = [];
  const nodeMs: number[] = [];
  try {
    ctx.log(`migrate: start-up on an empty tree, ${runs} runs`);
    for (let i = 0; i < runs; i++) {
      const r = await run(
        process.execPath,
        [
          ...shebangFlags(BINS.migrate),
          BINS.migrate,
          empty,
          ft.url,
          '--state',
          path.join(work, `state-startup-${i}`),
        ],
        { cwd: work, env: { ...process.env, CI: '1' }, timeoutMs: 60_000 },
      );
      if (r.code !== 0)
        throw new Error(`ft-migrate on an empty tree exited ${r.code}: ${r.stderr}`);
      migrateMs.push(r.ms);
      nodeMs.push((await run(process.execPath, ['-e', '0'])).ms);
    }
  } finally {
    await ft.stop();
  }
  const startS = median(migrateMs) / 1000;
  into.targets.push({
    what: 'ft-migrate start-up, empty tree, no TTY',
    ratio: startS,
    target: 0.25,
    atMost: true,
    shown: `${startS.toFixed(2)} s`,
    targetShown: '<= 0.25 s',
  });
  return {
    caption: `Start-up on an empty tree (median of ${runs} runs)`,
    head: ['what', 'ms median (runs)'],
    rows: [
      ['ft-migrate EMPTY URL --state FILE (no TTY)', withRounds(migrateMs)],
      ['node -e 0 (the floor)', withRounds(nodeMs)],
    ],
  };
}

/**
 * ft-migrate on a tree of many small files and on a few large ones: files/s and MiB/s
 * against the limits of the same work (the bare store script; the gzip + SHA-256
 * pipeline), for several -j values and gzip levels, to choose the defaults.
 */
export async function benchMigrate(ctx: BenchContext): Promise<Section> {
  const { config } = ctx;
  const cfg = config.migrate;
  const section = emptySection('ft-migrate');
  const largeSize = `${cfg.largeBytes / MiB} MiB`;
  section.method.push(
    `Trees in the temp dir (disk): ${cfg.smallFiles} files of 1-10 KiB of contest-like ` +
      `text (100 per directory), and ${cfg.largeFiles} files of ${largeSize}. Each run: ` +
      '`ft-migrate TREE URL -s -j N --state FILE --report FILE` into a fresh ft-server ' +
      '(store in the temp dir); time from process start to exit, so startup and the walk ' +
      'count.',
    'Limits, measured in the same run: files/s of the bare write/fsync/rename script ' +
      `(see Small-file PUT; ${config.put.durationS} s) on the small tree\u2019s own gzip ` +
      'bodies (at ft-migrate\u2019s default level) at the same -j, at its best: round 1 ' +
      'runs it in every call style and thread count of Small-file PUT\u2019s sweep (thread ' +
      'counts up to -j) and later rounds run the fastest, named in its own table (the ' +
      'limit is what the machine can do, not what libuv\u2019s default pool of 4 threads ' +
      'allows); ft-server\u2019s own PUT rate ' +
      `for the same bodies over wrk (${config.put.durationS} s, as many connections as -j, a ` +
      'fresh ft-server), what ft-migrate would reach if it cost nothing; MiB/s of ' +
      'the pipeline (one process reads, SHA-256s and gzips each file in turn, at the level ' +
      'shown).',
    'Offline import (issue 15, item 2): `ft-migrate TREE --into DIR -s -j N --state FILE ' +
      '--report FILE` on the same small tree into a fresh store directory in the temp dir ' +
      '(no server: ft-migrate opens the store with ft-server\u2019s store code), at the ' +
      'same -j values, timed the same way; its files/s beside the bare store script\u2019s ' +
      'at its best at the same -j (the same figure as the HTTP row\u2019s). Target: >= 0.7x ' +
      'of it. Beside it, the store\u2019s own put path: a script (its own process) calls ' +
      'ft-server\u2019s `Store.put` for each of the same gzip bodies, digest and size ' +
      'claimed as a client claims them, -j at once, into a fresh store: the verify, ' +
      'durable write, renames, directory fsyncs, LevelDB reference count and link of a ' +
      'PUT or of --into, with no HTTP and no 1.x file read, hashed or gzipped. Its ' +
      'files/s is what --into would reach if its own work cost nothing.',
    `On the small tree, ${config.rounds} round(s) at each -j: in each, one after another, ` +
      'the bare store script, ft-migrate into ft-server, ft-server over wrk (at the -j ' +
      'values compared with it), ft-migrate --into and Store.put in-process. A ratio is ' +
      'taken between figures of one round, and the median of the rounds\u2019 ratios is ' +
      'the figure and the verdict: ' +
      'the machine\u2019s speed drifts between runs minutes apart by more than the margins.',
  );
  const notReady = await migrateNotReady();
  if (notReady) {
    section.skipped.push(`the whole section: ${notReady}`);
    return section;
  }
  // `work` (the trees) is left to cleanup(), like the stores: see removeDir().
  const work = await tempDir('migrate');
  const defJobs = await defaultJobs();
  const defLevel = await defaultGzipLevel();
  const levels = [...new Set([...cfg.gzipLevels, defLevel])].sort((a, b) => a - b);
  const jobs = [...new Set([...cfg.jobs, ...(defJobs !== undefined ? [defJobs] : [])])].sort(
    (a, b) => a - b,
  );

  // Small files.
  const small = path.join(work, 'small');
  ctx.log(`migrate: writing ${cfg.smallFiles} small files`);
  const names = await writeSmallTree(small, cfg.smallFiles, 1024, 10 * 1024, VERSION);
  const { logicalBytes: smallBytes, ...pool } = await poolOfTree(small, names, work, defLevel);
  const rows: string[][] = [];
  const levelRows: string[][] = [];
  const serverRows: string[][] = [];
  const sweepRows: string[][] = [];
  const storeRows: string[][] = [];
  /** MiB/s of the pipeline at each level over `files`, with a row per level. */
  const pipelines = async (
    what: string,
    files: { listFile: string } | { files: string[] },
    count: number,
  ): Promise<Map<number, number>> => {
    const mibs = new Map<number, number>();
    for (const level of levels) {
      const p = await runChild<{ bytes: number; gzipBytes: number; ms: number }>('pipeline', {
        ...files,
        level,
      });
      mibs.set(level, p.bytes / MiB / (p.ms / 1000));
      levelRows.push([
        `${what}, level ${level}`,
        num(p.bytes / MiB / (p.ms / 1000)),
        num(count / (p.ms / 1000)),
        (p.bytes / p.gzipBytes).toFixed(2),
      ]);
    }
    return mibs;
  };
  const smallList = path.join(work, 'small.list');
  await writeFile(smallList, names.map((n) => `${path.join(small, n)}\n`).join(''));
  const smallPipe = await pipelines('small tree', { listFile: smallList }, names.length);
  const pipe = smallPipe.get(defLevel) ?? NaN;
  const rounds = config.rounds;
  for (const j of jobs) {
    // Each round runs the five side by side, one after another: the bare store script,
    // ft-migrate into ft-server, ft-server over wrk, ft-migrate --into and Store.put
    // in-process. A ratio is only taken within a round; the tables and the targets give
    // the median of the rounds.
    const limits: number[] = [];
    const sweep: LimitRun[] = [];
    const viaHttp: MigrateRun[] = [];
    const viaWrk: { reqPerS: number; errors: number }[] = [];
    const intos: MigrateRun[] = [];
    const storePuts: StorePutRun[] = [];
    const withWrk = cfg.wrkJobs.includes(j);
    for (let round = 1; round <= rounds; round++) {
      const tag = rounds > 1 ? `j${j}-r${round}` : `j${j}`;
      // The bare script at its best: round 1 sweeps its variants, later rounds run the
      // fastest of round 1.
      const limit = await runLimitAtBest(
        { ...pool, concurrency: j, count: names.length, durationS: config.put.durationS },
        config.put.limitThreads,
        sweep,
        (v) => ctx.log(`migrate: ${tag}, bare store script, ${variantName(v)}`),
      );
      limits.push(limit.filesPerS);
      viaHttp.push(await migrateOnce(ctx, small, work, `small-${tag}`, j));
      const rate = withWrk ? await serverPutRate(ctx, pool, work, j, tag) : undefined;
      if (rate) viaWrk.push(rate);
      // Offline import (issue 15, item 2): the same tree with --into a fresh store, no server.
      ctx.log(`migrate: small-into-${tag}`);
      const into = await runMigrate(
        small,
        { into: await tempDir('migrate-into-store') },
        work,
        `small-into-${tag}`,
        j,
      );
      intos.push(into);
      // The store's own put path on the same bodies: the part of --into that is not
      // ft-migrate's.
      ctx.log(`migrate: ${tag}, Store.put in-process`);
      storePuts.push(
        await runChild<StorePutRun>('store-put', {
          dir: await tempDir('migrate-store-put'),
          ...pool,
          concurrency: j,
          count: names.length,
          version: VERSION,
        }),
      );
    }
    const filesPerS = (runs: MigrateRun[]): number[] =>
      runs.map((r) => names.length / (r.ms / 1000));
    const httpFps = filesPerS(viaHttp);
    const intoFps = filesPerS(intos);
    section.targets.push({
      what: `ft-migrate --into / bare store script files/s, small tree, -j ${j}`,
      ratio: median(ratios(intoFps, limits)),
      target: 0.7,
    });
    if (withWrk) {
      const what = `ft-migrate / ft-server PUT over wrk files/s, small tree, -j ${j}`;
      if (viaWrk.length === 0) {
        ctx.log(`migrate: no wrk, so no ft-server PUT rate at -j ${j}`);
        section.targets.push({ what, ratio: NaN, target: 0.7 });
        serverRows.push([String(j), withRounds(httpFps), '', '', '']);
      } else {
        const wrkRates = viaWrk.map((w) => w.reqPerS);
        const vsWrk = median(ratios(httpFps, wrkRates));
        section.targets.push({ what, ratio: vsWrk, target: 0.7 });
        serverRows.push([
          String(j),
          withRounds(httpFps),
          withRounds(wrkRates),
          ratio(vsWrk),
          viaWrk.map((w) => String(w.errors)).join(', '),
        ]);
      }
    }
    const row = (what: string, runs: MigrateRun[], fps: number[]): string[] => {
      const mibs = runs.map((r) => smallBytes / MiB / (r.ms / 1000));
      const outcomes = [...new Set(runs.map((r) => `${r.uploadedFiles}/${r.failedFiles}`))];
      return [
        what,
        withRounds(fps),
        withRounds(limits),
        ratio(median(ratios(fps, limits))),
        num(median(mibs)),
        ratio(median(mibs) / pipe),
        num(Math.max(...runs.map((r) => r.maxRssKiB)) / 1024),
        outcomes.join(', '),
      ];
    };
    const storeFps = storePuts.map((r) => r.files / (r.ms / 1000));
    storeRows.push([
      String(j),
      withRounds(limits),
      withRounds(storeFps),
      ratio(median(ratios(storeFps, limits))),
      num(median(storePuts.map((r) => (r.mainCpuMs * 1000) / r.files))),
      withRounds(intoFps),
      ratio(median(ratios(intoFps, limits))),
      ratio(median(ratios(intoFps, storeFps))),
    ]);
    const fastest = bestOf(sweep);
    for (const r of sweep) {
      sweepRows.push([
        String(j),
        variantName(r.variant),
        num(r.filesPerS),
        r === fastest ? 'fastest: the limit' : '',
      ]);
    }
    const def = j === defJobs ? ' (default)' : '';
    rows.push(
      row(`${cfg.smallFiles} small, -j ${j}${def}`, viaHttp, httpFps),
      row(`${cfg.smallFiles} small, --into DIR, -j ${j}${def}`, intos, intoFps),
    );
  }

  // Large files.
  const large = path.join(work, 'large');
  ctx.log(`migrate: writing ${cfg.largeFiles} files of ${largeSize}`);
  await mkdir(large);
  const largeFiles = Array.from({ length: cfg.largeFiles }, (_, i) =>
    path.join(large, `big${i}.bin`),
  );
  for (const f of largeFiles) await writeLargeFile(f, cfg.largeBytes);
  const largeBytes = cfg.largeFiles * cfg.largeBytes;
  const largePipe = await pipelines('large files', { files: largeFiles }, largeFiles.length);
  for (const j of cfg.largeJobs) {
    const r = await migrateOnce(ctx, large, work, `large-j${j}`, j);
    const mibs = largeBytes / MiB / (r.ms / 1000);
    const pipe = largePipe.get(defLevel) ?? NaN;
    rows.push([
      `${cfg.largeFiles} x ${largeSize}, -j ${j}`,
      num(cfg.largeFiles / (r.ms / 1000)),
      '',
      '',
      num(mibs),
      ratio(mibs / pipe),
      num(r.maxRssKiB / 1024),
      `${r.uploadedFiles}/${r.failedFiles}`,
    ]);
  }
  section.tables.push({
    caption:
      config.rounds > 1
        ? `ft-migrate runs (small tree: median of ${config.rounds} rounds, each run in ` +
          'parentheses, ratios the median of the per-round ratios, peak RSS the highest; ' +
          'large files: one run each)'
        : 'ft-migrate runs (one each)',
    head: [
      'tree, -j',
      'files/s',
      'bare store files/s (same -j)',
      'vs bare',
      'MiB/s',
      `vs pipeline (level ${defLevel}, ft-migrate's default)`,
      'peak RSS MiB',
      'uploaded/failed',
    ],
    rows,
  });
  if (serverRows.length > 0) {
    section.tables.push({
      caption:
        'ft-migrate against ft-server\u2019s own PUT rate (wrk, same gzip bodies, connections = -j)',
      head: ['-j', 'ft-migrate files/s', 'ft-server over wrk files/s', 'vs wrk', 'wrk errors'],
      rows: serverRows,
    });
  }
  section.tables.push({
    caption:
      '--into against the store\u2019s own put path (Store.put in-process on the same gzip ' +
      'bodies: no HTTP, no 1.x files) and the bare store script at its best, small tree',
    head: [
      '-j',
      'bare store script files/s',
      'Store.put files/s',
      'Store.put vs bare',
      'Store.put main-thread CPU us/file',
      '--into files/s',
      '--into vs bare',
      '--into vs Store.put',
    ],
    rows: storeRows,
  });
  section.tables.push({
    caption: 'The bare store script in round 1, small tree, by -j (its limit: the fastest)',
    head: ['-j', 'call style, threads', 'files/s', ''],
    rows: sweepRows,
  });
  section.tables.push(await startupTable(ctx, section, work));
  section.tables.push({
    caption: 'Pipeline limit by gzip level (one process, files in turn)',
    head: ['tree, gzip level', 'MiB/s', 'files/s', 'compression ratio'],
    rows: levelRows,
  });
  return section;
}
