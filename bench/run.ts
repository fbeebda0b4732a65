import { stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { FULL, SHORT } from './config.js';
import type { BenchContext } from './context.js';
import { benchGetSmall } from './get-small.js';
import { benchLarge } from './large.js';
import { cleanup, trapSignals } from './lifecycle.js';
import { benchMemory } from './memory.js';
import { benchMigrate } from './migrate.js';
import { run } from './proc.js';
import { benchPutSmall } from './put-small.js';
import { benchScaleOut } from './scaleout.js';
import { emptySection, renderReport, writeReport, type Machine, type Section } from './report.js';
import { REPO_ROOT } from './servers.js';
import { findTools } from './tools.js';

const SECTIONS = {
  get: { title: 'Small-file GET', fn: benchGetSmall },
  put: { title: 'Small-file PUT', fn: benchPutSmall },
  large: { title: 'Large files', fn: benchLarge },
  migrate: { title: 'ft-migrate', fn: benchMigrate },
  memory: { title: 'Memory', fn: benchMemory },
  scaleout: { title: 'Scale-out (PostgreSQL + S3)', fn: benchScaleOut },
} as const;
type SectionId = keyof typeof SECTIONS;

const USAGE = `Usage: node bench/dist/run.js [--short] [--out FILE] [--only get,put,large,migrate,memory,scaleout]

Runs the benchmarks of docs/BENCHMARKS.md and writes that file (full mode) or FILE.
  --short        toy sizes, one round, about a minute (also BENCH_SHORT=1); what CI runs.
                 Prints the report unless --out is given; installs nothing.
  --out FILE     where to write the report (default: docs/BENCHMARKS.md in full mode)
  --only LIST    run only these sections (for working on the bench; the report says so)
Full mode installs lighttpd, wrk and curl from Debian when missing (as root).`;

async function machine(tools: Awaited<ReturnType<typeof findTools>>): Promise<Machine> {
  const df = await run('df', ['-T', os.tmpdir()], { timeoutMs: 10_000 });
  const fsLine = df.stdout.trim().split('\n')[1]?.split(/\s+/);
  return {
    nproc: os.availableParallelism(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    kernel: `${os.type()} ${os.release()}`,
    lighttpd: tools.versions.lighttpd,
    wrk: tools.versions.wrk,
    curl: tools.versions.curl.split(' ').slice(0, 2).join(' '),
    tmpFs: fsLine ? `${os.tmpdir()} on ${fsLine[1]} (${fsLine[0]})` : os.tmpdir(),
  };
}

/** The commit measured, marked when the work tree differs from it (others work here too). */
async function commit(): Promise<string> {
  const head = await run('git', ['rev-parse', '--short', 'HEAD'], {
    cwd: REPO_ROOT,
    timeoutMs: 10_000,
  });
  if (head.code !== 0) return 'unknown';
  const dirty = await run('git', ['status', '--porcelain', '--untracked-files=no'], {
    cwd: REPO_ROOT,
    timeoutMs: 10_000,
  });
  return head.stdout.trim() + (dirty.stdout.trim() ? ' (with uncommitted changes)' : '');
}

/** How the run was started, for the report ("the exact command that produced them"). */
function commandLine(argv: string[]): string {
  const args = argv.join(' ');
  if (process.env.npm_lifecycle_event === 'bench') return `pnpm bench${args ? ` -- ${args}` : ''}`;
  const env = process.env.BENCH_SHORT === '1' ? 'BENCH_SHORT=1 ' : '';
  return `${env}node bench/dist/run.js${args ? ` ${args}` : ''}`;
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2).filter((a) => a !== '--');
  const { values } = parseArgs({
    args: argv,
    options: {
      short: { type: 'boolean', default: false },
      out: { type: 'string' },
      only: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const short = values.short || process.env.BENCH_SHORT === '1';
  const config = short ? SHORT : FULL;
  const only = values.only?.split(',').map((s) => s.trim()) ?? Object.keys(SECTIONS);
  for (const id of only) {
    if (!(id in SECTIONS)) throw new TypeError(`--only: unknown section ${id}\n${USAGE}`);
  }
  const out = values.out ?? (short ? undefined : path.join(REPO_ROOT, 'docs/BENCHMARKS.md'));
  trapSignals();

  const started = performance.now();
  const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const measured = await commit();
  const log = (m: string): void => {
    const s = ((performance.now() - started) / 1000).toFixed(0).padStart(4);
    console.error(`[${s}s] ${m}`);
  };
  const tools = await findTools(!short);
  for (const reason of Object.values(tools.missing)) log(`note: ${reason}`);
  const ctx: BenchContext = { config, tools, log };

  const sections: Section[] = [];
  let failed = 0;
  for (const id of only as SectionId[]) {
    const { title, fn } = SECTIONS[id];
    log(`== ${title}`);
    try {
      sections.push(await fn(ctx));
    } catch (err) {
      failed++;
      console.error(`bench: section "${title}" failed:`, err);
      const s = emptySection(title);
      s.skipped.push(`the section failed: ${(err as Error).message.split('\n')[0]}`);
      sections.push(s);
    }
  }
  const text = await renderReport(
    sections,
    await machine(tools),
    {
      command: commandLine(argv),
      commit: measured,
      date,
      durationS: (performance.now() - started) / 1000,
      short,
      rounds: config.rounds,
    },
    out && (await stat(out).catch(() => null)) ? out : undefined,
  );
  if (out) {
    await writeReport(out, text);
    log(`wrote ${out}`);
  } else {
    process.stdout.write(text);
  }
  return failed > 0 ? 1 : 0;
}

main()
  .then(async (code) => {
    await cleanup();
    process.exitCode = code;
  })
  .catch(async (err: unknown) => {
    console.error('bench:', err instanceof Error ? err.message : err);
    await cleanup();
    process.exitCode = 1;
  });
