import path from 'node:path';
import { LAST_MODIFIED_QUERY, VERSION, type BenchContext } from './context.js';
import { tempDir } from './lifecycle.js';
import { buildPool } from './pool.js';
import { runChild } from './children.js';
import { emptySection, type Section } from './report.js';
import { startFtServer } from './servers.js';
import { median, num, ratios, withRounds } from './stats.js';
import { runWrk, writeWrkScripts, type WrkResult } from './wrk.js';

/**
 * Small-file PUT with many connections: wrk sends pre-built gzip bodies with the Python
 * client's headers, each under a new name, to a fresh ft-server; in the same round a bare
 * script does the file-system work of the same uploads (the machine's limit).
 */
export async function benchPutSmall(ctx: BenchContext): Promise<Section> {
  const { config, tools } = ctx;
  const cfg = config.put;
  const section = emptySection('Small-file PUT');
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
      'PUT, with its group commit of directory fsyncs; no HTTP, no hashing, no database), ' +
      'each call the cheapest way Node offers. Both use libuv\u2019s default ' +
      '4 threads for file-system calls. Each round\u2019s store stays until the end of the ' +
      'run: on ext4 without a journal, removing it would slow the next rounds\u2019 file ' +
      'creation for minutes.',
  );
  if (!tools.wrk) {
    section.skipped.push(`the whole section: ${tools.missing.wrk}`);
    for (const c of cfg.connections) {
      section.targets.push({
        what: `PUT small, ft-server / bare-script files/s, ${c} connections`,
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
    cfg.connections.map((c) => [c, { server: [] as WrkResult[], limit: [] as number[] }]),
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
          ctx.log(`put-small: round ${round + 1}, ${c} at once, bare write/fsync/rename script`);
          const dir = await tempDir('put-limit');
          const out = await runChild<{ files: number; ms: number }>('put-limit', {
            dir,
            ...pool,
            concurrency: c,
            count: cfg.pool,
            durationS: cfg.durationS,
            version: VERSION,
          });
          r.limit.push(out.files / (out.ms / 1000));
        },
      ];
      if (round % 2 === 1) steps.reverse();
      for (const step of steps) await step();
    }
  }

  const rows: string[][] = [];
  for (const [c, { server, limit }] of results) {
    const rps = server.map((r) => r.reqPerS);
    const rel = median(ratios(rps, limit));
    const errors = server.reduce((a, r) => a + r.errors, 0);
    rows.push(
      [
        `ft-server, ${c} connections`,
        withRounds(rps),
        num(median(server.map((r) => r.p99Ms))),
        num(median(server.map((r) => r.p50Ms))),
        `${rel.toFixed(2)}x`,
        String(errors),
      ],
      [`bare write/fsync/rename, ${c} at once`, withRounds(limit), '', '', '1.00x', ''],
    );
    section.targets.push({
      what: `PUT small, ft-server / bare-script files/s, ${c} connections`,
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
    head: ['what', 'files/s median (rounds)', 'p99 ms', 'p50 ms', 'vs limit', 'errors'],
    rows,
  });
  return section;
}
