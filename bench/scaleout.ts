import { readFile, mkdir, writeFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { LAST_MODIFIED_QUERY, VERSION, type BenchContext } from './context.js';
import { curlGet, curlPut } from './curl.js';
import { writeLargeFile, writeSmallTree } from './data.js';
import { enginesMissing, serverDependency, startEngines, type Engines } from './engines.js';
import { pwrite, sha256File, tag, tagMember, writeCurlBody } from './large.js';
import { tempDir } from './lifecycle.js';
import { buildPool } from './pool.js';
import { cpuShares, runOk, type Running } from './proc.js';
import { emptySection, type Section, type TargetCheck } from './report.js';
import { seedServer } from './seed.js';
import { startFtServer, startScaleOutFtServer } from './servers.js';
import { MiB, median, num, ratio, ratios, withRounds } from './stats.js';
import { getLoad, runWrk, writeWrkScripts, type WrkResult } from './wrk.js';

const TITLE = 'Scale-out (PostgreSQL + S3)';
const PSQL = '/usr/lib/postgresql/15/bin/psql';

/** The three ways a small request is served, side by side in each round. */
const SETUPS = ['local', 'scale-out, 1 process', 'scale-out, 2 processes'] as const;
type Setup = (typeof SETUPS)[number];

/** The part of the S3 SDK (ft-server's own, @aws-sdk/client-s3) the bare calls use. */
interface S3Sdk {
  S3Client: new (config: object) => S3ClientLike;
  CreateBucketCommand: new (input: object) => object;
  PutObjectCommand: new (input: object) => object;
  GetObjectCommand: new (input: object) => object;
  CopyObjectCommand: new (input: object) => object;
}
interface S3ClientLike {
  send(command: object): Promise<{ Body?: AsyncIterable<Uint8Array> }>;
  destroy(): void;
}
/** The part of pg (ft-server's client) the bare round trips use. */
interface PgModule {
  Client: new (config: { connectionString: string }) => {
    connect(): Promise<void>;
    query(sql: string): Promise<unknown>;
    end(): Promise<void>;
  };
}

/** Two wrk runs at once (one per port) as one: req/s and counts summed, latency the worse. */
function summed(rs: WrkResult[]): WrkResult {
  const total = (f: (r: WrkResult) => number): number => rs.reduce((a, r) => a + f(r), 0);
  const worst = (f: (r: WrkResult) => number): number => Math.max(...rs.map(f));
  return {
    requests: total((r) => r.requests),
    durationS: worst((r) => r.durationS),
    reqPerS: total((r) => r.reqPerS),
    bytes: total((r) => r.bytes),
    errors: total((r) => r.errors),
    statusErrors: total((r) => r.statusErrors),
    p50Ms: worst((r) => r.p50Ms),
    p90Ms: worst((r) => r.p90Ms),
    p99Ms: worst((r) => r.p99Ms),
    maxMs: worst((r) => r.maxMs),
  };
}

/** Milliseconds of `fn`. */
async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

async function drain(body: AsyncIterable<Uint8Array> | undefined): Promise<number> {
  let n = 0;
  for await (const chunk of body ?? []) n += chunk.length;
  return n;
}

/**
 * GETs every name once, `concurrency` at once (as the Python client asks: gzip), so that
 * the process has each small blob in its memory cache; a timed warm-up at this backend's
 * rate on a busy machine reads only some of them.
 */
async function readAll(url: string, names: readonly string[], concurrency = 8): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < names.length) {
      const name = names[next++]!;
      const res = await fetch(`${url}/files/${name}`, {
        headers: { 'Accept-Encoding': 'gzip, deflate' },
      });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`warm-up GET /files/${name} answered ${res.status}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

/** The readers' name looks of a scale-out process and the statements that made them. */
async function lookupCounts(url: string): Promise<{ names: number; statements: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const value = (name: string): number => {
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    if (line === undefined) throw new Error(`${url}/metrics has no ${name}`);
    return Number(line.slice(name.length + 1));
  };
  return {
    names: value('ft_db_name_lookups_total'),
    statements: value('ft_db_name_lookup_statements_total'),
  };
}

/** The processes whose CPU the section reports during its runs (cores: 1 = a whole core). */
const CPU_GROUPS = {
  'Swift (proxy, object, container, account servers)': (c: string) => c.startsWith('swift-'),
  PostgreSQL: (c: string) => c === 'postgres',
  'node (ft-server processes; the bench waits)': (c: string) => c === 'node',
};
/** The column of the whole machine's busy cores (every process and the kernel). */
const MACHINE = 'whole machine (every process and the kernel)';
type CpuGroup = keyof typeof CPU_GROUPS | typeof MACHINE;

/**
 * The section's targets. `putMachine`: the machine's busy cores in the 1-process PUT runs,
 * shown beside the PUT ratio: with the machine's cores already busy, a second process has
 * nothing to run on.
 */
function targetList(ratios: Partial<Record<string, number>>, putMachine = NaN): TargetCheck[] {
  return [
    {
      what: 'GET small (warm cache), scale-out 1 process / local req/s',
      ratio: ratios.get ?? NaN,
      target: 0.5,
    },
    {
      what: 'GET small (warm cache), scale-out 2 processes / 1 process req/s',
      ratio: ratios.get2 ?? NaN,
      target: 1,
      above: true,
    },
    {
      what: 'PUT small, scale-out 2 processes / 1 process files/s',
      ratio: ratios.put2 ?? NaN,
      target: 1,
      above: true,
      ...(Number.isNaN(putMachine)
        ? {}
        : {
            shown: `${(ratios.put2 ?? NaN).toFixed(3)}x (the machine ${putMachine.toFixed(2)} of 2 cores busy with 1 process)`,
          }),
    },
  ];
}

/**
 * The scale-out backend (issue 14): small GET and PUT through one and two ft-server
 * processes on one PostgreSQL 15 and one Swift (S3 API), beside ft-server on a local store,
 * one large upload and download, and what bounds them: the database statements per request
 * and the latency of the engines' bare calls, measured in the same rounds.
 */
export async function benchScaleOut(ctx: BenchContext): Promise<Section> {
  const { config, tools } = ctx;
  const cfg = config.scaleout;
  const c = cfg.connections;
  const section = emptySection(TITLE);
  const largeText = `${cfg.largeBytes / MiB} MiB`;
  section.method.push(
    'Engines: a throwaway PostgreSQL 15 (fsync off, as the tests run it) and a one-node ' +
      'OpenStack Swift 2.30 with its S3 API, both on loopback, started by the test ' +
      'helpers\u2019 starters (test/helpers/postgres.ts, swift.ts; the bench loads them ' +
      'compiled from test/dist/helpers/). Servers: ft-server `-d DIR` (local store: blobs ' +
      'and LevelDB in the temp dir) and two ft-server processes on two ports with the ' +
      'same `--db URL --blobs s3://BUCKET --s3-endpoint URL` (one store), all logging a ' +
      'line per request to a file (-L), as deployed. The engines share the 2 cores with ' +
      'the servers and wrk, as they would not in a deployment.',
    `Small GET: ${cfg.files} files of ${config.get.minBytes / 1024}-` +
      `${config.get.maxBytes / 1024} KiB uploaded to the local store and (through one ` +
      'process) to the scale-out store as the Python client does, then each server warmed ' +
      `up for ${cfg.warmupS} s (every name read once: small blobs are then in each ` +
      `process\u2019s memory cache), then \`wrk -t1 -c${c} -d${cfg.durationS}s\` cycling ` +
      'through the names on the local server, on one scale-out process, and on both ' +
      `scale-out processes at once (one wrk per port, -c${c / 2} each, so the same ${c} ` +
      'connections in all; req/s summed, latency the slower port\u2019s). The order ' +
      'rotates between rounds. Then `wrk -c1` on the local server and on one scale-out ' +
      'process: the time of one GET alone, without the queueing of many connections.',
    `Small PUT: the put section\u2019s bodies (1-10 KiB gzip at level 6 with the Python ` +
      'client\u2019s headers), each run its own slice of new names and new content (no ' +
      'dedup), in the same three setups and the same connections.',
    'Database round trips: pg_stat_statements (preloaded by ALTER SYSTEM in the ' +
      'throwaway cluster, which is then restarted) is reset, then ' +
      `${cfg.s3Requests} PUTs of new small files and then ${cfg.s3Requests} GETs of ` +
      'cached ones are made one at a time through one scale-out process (the PUTs also ' +
      'to the local server, timed), and the calls in the store\u2019s database after each ' +
      'batch are divided by its requests (BEGIN and COMMIT count: track_utility is on; ' +
      'background work, the sweeper\u2019s election every 60 s, counts too: a few ' +
      'statements a minute). Counted one at a time, not during wrk, whose runs end with ' +
      'requests in flight (with the engines slow, most of a run\u2019s PUTs). A bare round trip is `SELECT 1` on one connection of pg (ft-server\u2019s ' +
      'client), one at a time.',
    'Object store latency: bare calls of the S3 SDK (ft-server\u2019s client and ' +
      `settings) to a bucket of their own, one at a time: ${cfg.s3Requests} PUTs then ` +
      'GETs of small gzip bodies from the same pool per round; for the large file a PUT, ' +
      'a GET and a server-side copy of its gzip body (an ft-server upload stages the ' +
      'body under a temporary key, then copies it to its digest\u2019s key).',
    `Large, once (in the last round, to keep the section bounded): one ${largeText} file ` +
      'of contest-like text; curl uploads a pre-gzipped body (new content each time) to ' +
      'the local and then the scale-out store (`SHA256-Checksum`, `Logical-Size`), then ' +
      'GETs it with `Accept-Encoding: gzip` (the stored gzip). MiB/s are of the file ' +
      '(logical bytes).',
  );
  const unmeasured = (why: string): Section => {
    section.skipped.push(`the whole section: ${why}`);
    section.targets.push(...targetList({}));
    return section;
  };
  if (!tools.wrk) return unmeasured(tools.missing.wrk ?? 'wrk is missing');
  const missing = await enginesMissing();
  if (missing !== undefined) return unmeasured(missing);

  const work = await tempDir('scaleout');
  const running: Running[] = [];
  let engines: Engines | undefined;
  let s3: S3ClientLike | undefined;
  try {
    ctx.log('scaleout: starting PostgreSQL and Swift');
    engines = await startEngines();
    const pg = engines.postgres;
    const sql = async (db: string, query: string): Promise<string[][]> => {
      const r = await runOk(
        PSQL,
        [
          ...['-h', '127.0.0.1', '-p', String(pg.port), '-U', 'ft', '-d', db],
          ...['-v', 'ON_ERROR_STOP=1', '-At', '-F', '\t', '-c', query],
        ],
        { timeoutMs: 60_000 },
      );
      return r.stdout
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => l.split('\t'));
    };
    await sql('postgres', "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'");
    ctx.log('scaleout: restarting PostgreSQL with pg_stat_statements');
    await pg.stop();
    await pg.start();
    const dbUrl = await pg.createDatabase();
    const dbName = new URL(dbUrl).pathname.slice(1);
    await sql(dbName, 'CREATE EXTENSION pg_stat_statements');
    const resetStatements = async (): Promise<void> => {
      await sql(dbName, 'SELECT pg_stat_statements_reset()');
    };
    /** Calls per statement in the store's database since the reset, most first. */
    const statements = async (): Promise<{ calls: number; query: string }[]> =>
      (
        await sql(
          dbName,
          "SELECT s.calls, regexp_replace(s.query, '\\s+', ' ', 'g') FROM pg_stat_statements s " +
            'JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database() ' +
            "AND s.query NOT LIKE '%pg_stat_statements%' ORDER BY s.calls DESC",
        )
      ).map(([calls, query]) => ({ calls: Number(calls), query: query ?? '' }));

    const bucket = `ft-bench-${process.pid}`;
    const s3Env = {
      AWS_ACCESS_KEY_ID: engines.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: engines.credentials.secretAccessKey,
      AWS_REGION: engines.region,
    };
    const flags = ['--db', dbUrl, '--blobs', `s3://${bucket}`];
    flags.push('--s3-endpoint', engines.swift.endpoint);
    ctx.log('scaleout: starting ft-server: local, and 2 processes on the scale-out store');
    const local = await startFtServer(path.join(work, 'local'), path.join(work, 'local.log'));
    running.push(local);
    const oneLog = path.join(work, 'so-1.log');
    const one = await startScaleOutFtServer(path.join(work, 'so-1'), oneLog, flags, s3Env);
    running.push(one);
    const two = await startScaleOutFtServer(
      path.join(work, 'so-2'),
      path.join(work, 'so-2.log'),
      flags,
      s3Env,
    );
    running.push(two);

    const files = path.join(work, 'small');
    await mkdir(files, { recursive: true });
    ctx.log(`scaleout: writing ${cfg.files} small files and uploading them`);
    const names = await writeSmallTree(
      files,
      cfg.files,
      config.get.minBytes,
      config.get.maxBytes,
      VERSION,
    );
    const namesFile = path.join(work, 'names.txt');
    await writeFile(namesFile, names.map((n) => `/files/${n}\n`).join(''));
    // Half through each process (one store): the object store's latency makes this slow.
    await Promise.all([
      seedServer(local.url, files, names, VERSION),
      seedServer(
        one.url,
        files,
        names.filter((_, i) => i % 2 === 0),
        VERSION,
        8,
      ),
      seedServer(
        two.url,
        files,
        names.filter((_, i) => i % 2 === 1),
        VERSION,
        8,
      ),
    ]);

    // PUT bodies: a slice of new names and content per wrk run (4 a round: local, 1 process,
    // and one per port of 2 processes), half as many for the slower scale-out runs.
    const sizes = [cfg.putSlice, ...Array<number>(3).fill(Math.ceil(cfg.putSlice / 2))];
    const perRound = sizes.reduce((a, b) => a + b, 0);
    // Then, apart, the bodies PUT one at a time (new content for both stores).
    const sampled = config.rounds * perRound;
    ctx.log(`scaleout: building ${sampled + config.rounds * cfg.s3Requests} PUT bodies`);
    const pool = { index: path.join(work, 'pool.idx'), bodies: path.join(work, 'pool.bin') };
    await buildPool(
      pool,
      sampled + config.rounds * cfg.s3Requests,
      config.get.minBytes,
      config.get.maxBytes,
    );
    const lines = (await readFile(pool.index, 'utf8')).split('\n').filter((l) => l.length > 0);
    const sliceFiles: string[] = [];
    for (let at = 0, i = 0; at < sampled; at += sizes[i % 4]!, i++) {
      const f = path.join(work, `slice-${i}.idx`);
      const part = lines.slice(at, at + sizes[i % 4]!);
      await writeFile(f, part.map((l) => `${l}\n`).join(''));
      sliceFiles.push(f);
    }
    const scripts = await writeWrkScripts(work);
    const get = getLoad(tools.wrk!, scripts.get, namesFile);
    const put = (url: string, connections: number, slice: string): Promise<WrkResult> =>
      runWrk(tools.wrk!, {
        url,
        script: scripts.put,
        scriptArgs: [slice, pool.bodies, LAST_MODIFIED_QUERY],
        connections,
        durationS: cfg.durationS,
      });
    ctx.log('scaleout: warming up (every name read once through each process, then wrk)');
    await Promise.all([readAll(one.url, names), readAll(two.url, names)]);
    for (const s of [local, one, two]) await get(s.url, c, cfg.warmupS);

    // The bare calls: S3 through ft-server's SDK, pg's round trip.
    const sdk = await serverDependency<S3Sdk>('@aws-sdk/client-s3');
    s3 = new sdk.S3Client({
      endpoint: engines.swift.endpoint,
      forcePathStyle: true,
      region: engines.region,
      credentials: engines.credentials,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: { httpAgent: new Agent({ keepAlive: true }) },
    });
    const bare = `ft-bench-bare-${process.pid}`;
    await s3.send(new sdk.CreateBucketCommand({ Bucket: bare }));
    const poolData = await readFile(pool.bodies);
    const smallBodies = lines.slice(0, cfg.s3Requests).map((l) => {
      const [, , , off, len] = l.split(' ');
      return poolData.subarray(Number(off), Number(off) + Number(len));
    });
    const pgModule = await serverDependency<PgModule>('pg');

    const getResults = new Map<Setup, WrkResult[]>(SETUPS.map((s) => [s, []]));
    const putResults = new Map<Setup, WrkResult[]>(SETUPS.map((s) => [s, []]));
    /** One connection: each request's own time, without the queueing of many. */
    const singleGet = new Map<Setup, WrkResult[]>(SETUPS.map((s) => [s, []]));
    const onePut = { local: [] as number[], one: [] as number[] };
    const perGet: number[] = [];
    /** CPU (cores) of the engines and the servers during the scale-out runs. */
    const cpu = new Map<string, Record<CpuGroup, number>[]>(
      ['GET, scale-out, 1 process', 'PUT, scale-out, 1 process', 'PUT, scale-out, 2 processes'].map(
        (k) => [k, []],
      ),
    );
    /** `fn`'s result; the CPU of each group and of the whole machine meanwhile go to `run`. */
    const withCpu = async <T>(run: string, fn: () => Promise<T>): Promise<T> => {
      const { result, shares, machine } = await cpuShares(CPU_GROUPS, fn);
      cpu.get(run)!.push({ ...shares, [MACHINE]: machine });
      return result;
    };
    /** Names per lookup statement during the 1-process GET runs (from its /metrics). */
    const namesPerLook: number[] = [];
    const perPut: number[] = [];
    const topGet: { calls: number; query: string }[][] = [];
    const topPut: { calls: number; query: string }[][] = [];
    const bareMs = { put: [] as number[], get: [] as number[], db: [] as number[] };
    const large = {
      localUp: [] as number[],
      soUp: [] as number[],
      localDown: [] as number[],
      soDown: [] as number[],
      s3Put: [] as number[],
      s3Get: [] as number[],
      s3Copy: [] as number[],
    };
    let largeFile: { file: string; body: string; first: Buffer } | undefined;
    if (tools.curl) {
      const file = path.join(work, 'big.bin');
      const body = path.join(work, 'big.body.gz');
      ctx.log(`scaleout: writing ${largeText} and its gzip body`);
      await writeLargeFile(file, cfg.largeBytes);
      largeFile = { file, body, first: await writeCurlBody(file, body) };
    } else {
      section.skipped.push(`the large upload and download: ${tools.missing.curl}`);
    }
    const mibs = (ms: number): number => cfg.largeBytes / MiB / (ms / 1000);

    for (let round = 0; round < config.rounds; round++) {
      const turn = SETUPS.map((_, i) => SETUPS[(i + round) % SETUPS.length]!);
      for (const setup of turn) {
        ctx.log(`scaleout: round ${round + 1}, GET small, ${setup}`);
        if (setup === 'local') getResults.get(setup)!.push(await get(local.url, c, cfg.durationS));
        else if (setup === 'scale-out, 2 processes') {
          const both = await Promise.all([one, two].map((s) => get(s.url, c / 2, cfg.durationS)));
          getResults.get(setup)!.push(summed(both));
        } else {
          const before = await lookupCounts(one.url);
          const result = await withCpu('GET, scale-out, 1 process', () =>
            get(one.url, c, cfg.durationS),
          );
          getResults.get(setup)!.push(result);
          const after = await lookupCounts(one.url);
          namesPerLook.push((after.names - before.names) / (after.statements - before.statements));
        }
      }
      for (const [setup, url] of [
        ['local', local.url],
        ['scale-out, 1 process', one.url],
      ] as const) {
        ctx.log(`scaleout: round ${round + 1}, GET small, 1 connection, ${setup}`);
        singleGet.get(setup)!.push(await get(url, 1, cfg.durationS));
      }
      for (const setup of turn) {
        ctx.log(`scaleout: round ${round + 1}, PUT small, ${setup}`);
        const slice = (k: number): string => sliceFiles[round * 4 + k]!;
        if (setup === 'local') putResults.get(setup)!.push(await put(local.url, c, slice(0)));
        else if (setup === 'scale-out, 2 processes') {
          const result = await withCpu('PUT, scale-out, 2 processes', () =>
            Promise.all([put(one.url, c / 2, slice(2)), put(two.url, c / 2, slice(3))]),
          );
          putResults.get(setup)!.push(summed(result));
        } else {
          const result = await withCpu('PUT, scale-out, 1 process', () =>
            put(one.url, c, slice(1)),
          );
          putResults.get(setup)!.push(result);
        }
      }

      ctx.log(`scaleout: round ${round + 1}, statements per request, one request at a time`);
      {
        const k = cfg.s3Requests;
        const bodies = lines.slice(sampled + round * k, sampled + (round + 1) * k).map((l) => {
          const [, sha, size, off, len] = l.split(' ');
          return {
            sha: sha!,
            size: size!,
            data: poolData.subarray(Number(off), Number(off) + Number(len)),
          };
        });
        const timesFor = { local: [] as number[], one: [] as number[] };
        for (const [server, url] of [
          ['local', local.url],
          ['one', one.url],
        ] as const) {
          if (server === 'one') await resetStatements();
          for (const [i, b] of bodies.entries()) {
            const ms = await timed(async () => {
              const res = await fetch(
                `${url}/files/statements/${round}/${i}${LAST_MODIFIED_QUERY}`,
                {
                  method: 'PUT',
                  body: b.data,
                  headers: {
                    'Content-Encoding': 'gzip',
                    'SHA256-Checksum': b.sha,
                    'Logical-Size': b.size,
                    'Accept-Encoding': 'gzip, deflate',
                  },
                },
              );
              await res.arrayBuffer();
              if (res.status !== 200) throw new Error(`PUT to ${server} answered ${res.status}`);
            });
            timesFor[server].push(ms);
          }
        }
        const putSt = await statements();
        await resetStatements();
        for (let i = 0; i < k; i++) {
          const name = names[(round * k + i) % names.length]!;
          const res = await fetch(`${one.url}/files/${name}`, {
            headers: { 'Accept-Encoding': 'gzip, deflate' },
          });
          await res.arrayBuffer();
          if (res.status !== 200) throw new Error(`GET ${name} answered ${res.status}`);
        }
        const getSt = await statements();
        const per = (st: { calls: number; query: string }[]): { calls: number; query: string }[] =>
          st.map((x) => ({ ...x, calls: x.calls / k }));
        perPut.push(putSt.reduce((a, x) => a + x.calls, 0) / k);
        perGet.push(getSt.reduce((a, x) => a + x.calls, 0) / k);
        topPut.push(per(putSt));
        topGet.push(per(getSt));
        onePut.local.push(median(timesFor.local));
        onePut.one.push(median(timesFor.one));
      }
      ctx.log(`scaleout: round ${round + 1}, bare S3 and database round trips`);
      const putMs: number[] = [];
      const getMs: number[] = [];
      for (const [i, body] of smallBodies.entries()) {
        const Key = `small/${round}/${i}`;
        putMs.push(
          await timed(() => s3!.send(new sdk.PutObjectCommand({ Bucket: bare, Key, Body: body }))),
        );
      }
      for (let i = 0; i < smallBodies.length; i++) {
        const Key = `small/${round}/${i}`;
        getMs.push(
          await timed(async () =>
            drain((await s3!.send(new sdk.GetObjectCommand({ Bucket: bare, Key }))).Body),
          ),
        );
      }
      bareMs.put.push(median(putMs));
      bareMs.get.push(median(getMs));
      const client = new pgModule.Client({ connectionString: dbUrl });
      await client.connect();
      try {
        const dbMs: number[] = [];
        for (let i = 0; i < 200; i++) dbMs.push(await timed(() => client.query('SELECT 1')));
        bareMs.db.push(median(dbMs));
      } finally {
        await client.end();
      }

      if (largeFile && round === config.rounds - 1) {
        const { file, body, first } = largeFile;
        for (const [setup, url] of [
          ['local', local.url],
          ['scale-out', one.url],
        ] as const) {
          ctx.log(`scaleout: round ${round + 1}, large upload and download, ${setup}`);
          const t = tag(`${setup} ${round} ${Date.now()}`);
          const member = tagMember(t);
          if (member.length !== first.length) throw new Error('tag member changed length');
          await pwrite(file, t);
          await pwrite(body, member);
          const name = `/files/scaleout/large-${round}.bin`;
          const up = await curlPut(tools.curl!, `${url}${name}${LAST_MODIFIED_QUERY}`, body, {
            'Content-Encoding': 'gzip',
            'SHA256-Checksum': await sha256File(file),
            'Logical-Size': String(cfg.largeBytes),
          });
          if (up.status !== 200) throw new Error(`large upload to ${setup} answered ${up.status}`);
          const down = await curlGet(tools.curl!, `${url}${name}`, false);
          if (down.status !== 200) {
            throw new Error(`large download from ${setup} answered ${down.status}`);
          }
          (setup === 'local' ? large.localUp : large.soUp).push(mibs(up.seconds * 1000));
          (setup === 'local' ? large.localDown : large.soDown).push(mibs(down.seconds * 1000));
        }
        ctx.log(`scaleout: round ${round + 1}, large bare S3 PUT, GET and copy`);
        const ContentLength = (await readFile(body)).length;
        const Key = `large/${round}`;
        large.s3Put.push(
          mibs(
            await timed(() =>
              s3!.send(
                new sdk.PutObjectCommand({
                  Bucket: bare,
                  Key,
                  Body: createReadStream(body),
                  ContentLength,
                }),
              ),
            ),
          ),
        );
        large.s3Get.push(
          mibs(
            await timed(async () =>
              drain((await s3!.send(new sdk.GetObjectCommand({ Bucket: bare, Key }))).Body),
            ),
          ),
        );
        large.s3Copy.push(
          mibs(
            await timed(() =>
              s3!.send(
                new sdk.CopyObjectCommand({
                  Bucket: bare,
                  Key: `${Key}-copy`,
                  CopySource: `${bare}/${Key}`,
                }),
              ),
            ),
          ),
        );
      }
    }

    // Tables and targets.
    const rel = (a: WrkResult[], b: WrkResult[]): number =>
      median(
        ratios(
          a.map((r) => r.reqPerS),
          b.map((r) => r.reqPerS),
        ),
      );
    const small = (results: Map<Setup, WrkResult[]>): string[][] => {
      const base = results.get('local')!;
      const single = results.get('scale-out, 1 process')!;
      return SETUPS.map((setup) => {
        const rs = results.get(setup)!;
        return [
          setup,
          withRounds(rs.map((r) => r.reqPerS)),
          num(median(rs.map((r) => r.p50Ms))),
          num(median(rs.map((r) => r.p99Ms))),
          setup === 'local' ? '1.00x' : ratio(rel(rs, base)),
          setup === 'scale-out, 2 processes' ? ratio(rel(rs, single)) : '',
          String(rs.reduce((a, r) => a + r.errors, 0)),
        ];
      });
    };
    const head = (unit: string): string[] => [
      'setup',
      `${unit} median (rounds)`,
      'p50 ms',
      'p99 ms',
      'vs local',
      'vs 1 process',
      'errors',
    ];
    section.tables.push(
      {
        caption: `Small GET (warm cache), ${c} connections in all`,
        head: head('req/s'),
        rows: small(getResults),
      },
      {
        caption: `Small PUT (new names and content), ${c} connections in all`,
        head: head('files/s'),
        rows: small(putResults),
      },
    );
    for (const [what, results] of [
      ['GET', getResults],
      ['PUT', putResults],
    ] as const) {
      for (const setup of SETUPS) {
        const errors = results.get(setup)!.reduce((a, r) => a + r.errors, 0);
        if (errors > 0)
          section.notes.push(`${what} small, ${setup}: ${errors} errors or non-2xx answers.`);
      }
      if (what === 'PUT') {
        for (const [setup, slice] of [
          ['local', sizes[0]!],
          ['scale-out, 1 process', sizes[1]!],
          ['scale-out, 2 processes', 2 * sizes[2]!],
        ] as const) {
          const most = Math.max(...results.get(setup)!.map((r) => r.requests));
          if (most > slice) {
            section.notes.push(
              `A PUT run (${setup}) sent ${most} PUTs, more than its ${slice} new names: ` +
                'the rest replaced names with the same content (cheaper than new files).',
            );
          }
          if (most === 0) {
            section.notes.push(
              `No PUT (${setup}) completed within a run of ${cfg.durationS} s: the engines ` +
                'were too slow on this machine for the figures to mean anything.',
            );
          }
        }
      }
    }
    const avgSmall = smallBodies.reduce((a, b) => a + b.length, 0) / smallBodies.length;
    section.tables.push({
      caption: 'What bounds them (medians over rounds)',
      head: ['what', 'median (rounds)'],
      rows: [
        ...(['local', 'scale-out, 1 process'] as const).map((setup) => {
          const rs = singleGet.get(setup)!;
          return [
            `GET small at 1 connection, ${setup}: p50 ms (req/s ${num(median(rs.map((r) => r.reqPerS)))})`,
            withRounds(rs.map((r) => r.p50Ms)),
          ];
        }),
        ['PUT small one at a time, local: ms', withRounds(onePut.local)],
        ['PUT small one at a time, scale-out: ms', withRounds(onePut.one)],
        ['database statements per GET (1 process, one GET at a time)', withRounds(perGet)],
        [
          `names per lookup statement during the GET runs (1 process, ${c} connections)`,
          withRounds(namesPerLook),
        ],
        ['database statements per PUT (1 process)', withRounds(perPut)],
        ['bare database round trip (SELECT 1), ms', withRounds(bareMs.db)],
        [
          `bare S3 PUT of a small gzip body (${num(avgSmall / 1024)} KiB on average), ms`,
          withRounds(bareMs.put),
        ],
        ['bare S3 GET of the same, ms', withRounds(bareMs.get)],
      ],
    });
    const groups = [...Object.keys(CPU_GROUPS), MACHINE] as CpuGroup[];
    section.tables.push({
      caption: 'CPU during the runs, in cores of the machine\u2019s 2 (medians over rounds)',
      head: ['run', ...groups],
      rows: [...cpu].map(([run, rounds]) => [
        run,
        ...groups.map((g) => num(median(rounds.map((r) => r[g])))),
      ]),
    });
    const top = (per: { calls: number; query: string }[][]): string[][] =>
      (per[0] ?? []).slice(0, 6).map((s) => [num(s.calls), s.query.slice(0, 120)]);
    section.tables.push(
      {
        caption: 'Statements per GET, round 1 (pg_stat_statements, normalized)',
        head: ['calls per GET', 'statement'],
        rows: top(topGet),
      },
      {
        caption: 'Statements per PUT, round 1 (pg_stat_statements, normalized)',
        head: ['calls per PUT', 'statement'],
        rows: top(topPut),
      },
    );
    if (largeFile) {
      const vs = (a: number[]): string => ratio(median(ratios(a, large.localUp)));
      const vsDown = (a: number[]): string => ratio(median(ratios(a, large.localDown)));
      section.tables.push({
        caption: `Large (${largeText}), MiB/s of the file`,
        head: ['what', 'MiB/s median (rounds)', 'vs local'],
        rows: [
          ['upload (curl, pre-gzipped), local', withRounds(large.localUp), '1.00x'],
          ['upload (curl, pre-gzipped), scale-out', withRounds(large.soUp), vs(large.soUp)],
          ['bare S3 PUT of the gzip body', withRounds(large.s3Put), vs(large.s3Put)],
          ['bare S3 server-side copy of it', withRounds(large.s3Copy), vs(large.s3Copy)],
          ['download (curl, gzip as stored), local', withRounds(large.localDown), '1.00x'],
          [
            'download (curl, gzip as stored), scale-out',
            withRounds(large.soDown),
            vsDown(large.soDown),
          ],
          ['bare S3 GET of the gzip body', withRounds(large.s3Get), vsDown(large.s3Get)],
        ],
      });
    }
    const putOneCpu = (g: CpuGroup): number =>
      median(cpu.get('PUT, scale-out, 1 process')!.map((r) => r[g]));
    section.targets.push(
      ...targetList(
        {
          get: rel(getResults.get('scale-out, 1 process')!, getResults.get('local')!),
          get2: rel(
            getResults.get('scale-out, 2 processes')!,
            getResults.get('scale-out, 1 process')!,
          ),
          put2: rel(
            putResults.get('scale-out, 2 processes')!,
            putResults.get('scale-out, 1 process')!,
          ),
        },
        putOneCpu(MACHINE),
      ),
    );
    const singleP50 = (setup: Setup): string =>
      num(median(singleGet.get(setup)!.map((r) => r.p50Ms)));
    section.notes.push(
      'The name -> entry lookup goes to the database on every request: names are not ' +
        'cached in the process (small blobs are, by digest: blobs never change, so that ' +
        `cache needs no invalidation). A GET alone costs ${num(median(perGet))} statement ` +
        '(the name\u2019s row joined with its blob\u2019s sizes) at a bare round trip of ' +
        `${num(median(bareMs.db))} ms; under load the looks of requests that arrive together ` +
        `go in one statement (${num(median(namesPerLook))} names a statement in the ` +
        '1-process GET runs), and the answer is sent from the blob cache in front of Koa. ' +
        `One GET alone takes ${singleP50('scale-out, 1 process')} ms (p50) through a ` +
        `scale-out process against ${singleP50('local')} ms on the local store, which ` +
        'answers a cached name from memory. A name cache would need an invalidation crossing ' +
        'processes (LISTEN/NOTIFY), and until it arrived another process would answer the ' +
        'old version of an acknowledged PUT, which the per-name linearizability across ' +
        'processes of issue 14 forbids.',
      'A small PUT goes to the object store once (its body, held in memory, PUT to its ' +
        'digest\u2019s key inside the metadata transaction; a larger one three times: to a ' +
        'staging key, a server-side copy, and after the answer a delete) ' +
        `and runs ${num(median(perPut))} database statements; one at a time it takes ` +
        `${num(median(onePut.one))} ms here, against ${num(median(bareMs.put))} ms for a bare ` +
        `S3 PUT of such a body and ${num(median(onePut.local))} ms on the local store. ` +
        'During the 1-process PUT runs Swift\u2019s four servers used ' +
        `${num(putOneCpu(groups[0]!))} of the machine\u2019s 2 cores, PostgreSQL ` +
        `${num(putOneCpu(groups[1]!))} and the ft-server process ${num(putOneCpu(groups[2]!))}; ` +
        `the whole machine was busy ${num(putOneCpu(MACHINE))} of 2 cores. With the cores ` +
        'already busy with one process, a second process has nothing to run on: the PUT ' +
        'ratio of 2 processes to 1 measures the machine the engines share with the servers, ' +
        'not the servers (in a deployment the object store and the database have machines ' +
        'of their own; the GETs, which leave the engines idle, show what a second process ' +
        'adds).',
    );
    return section;
  } finally {
    await Promise.all(running.map((r) => r.stop()));
    s3?.destroy();
    await engines?.close();
    // `work` (small files) is left to cleanup(): see removeDir().
  }
}
