import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { VERSION, type BenchContext } from './context.js';
import { writeSmallTree } from './data.js';
import { tempDir } from './lifecycle.js';
import { startLighttpd } from './lighttpd.js';
import type { Running } from './proc.js';
import { emptySection, type Section } from './report.js';
import { seedServer } from './seed.js';
import { startFtServer, startLegacyStatic } from './servers.js';
import { median, num, ratio, ratios, withRounds } from './stats.js';
import { getLoad, writeWrkScripts, type WrkResult } from './wrk.js';

type ServerName = 'lighttpd' | 'ft-server' | 'ft-legacy-static';

/**
 * Small-file GET: wrk cycles through a few thousand 1-10 KiB names over keep-alive
 * connections against lighttpd, ft-server and ft-legacy-static serving the same bytes,
 * one after another within each round (the order rotates between rounds).
 */
export async function benchGetSmall(ctx: BenchContext): Promise<Section> {
  const { config, tools } = ctx;
  const cfg = config.get;
  const section = emptySection('Small-file GET');
  section.method.push(
    `${cfg.files} files of ${cfg.minBytes / 1024}-${cfg.maxBytes / 1024} KiB of ` +
      'contest-like text (digits, spaces, newlines; gzip about 2:1), 100 per directory. ' +
      'lighttpd (minimal config: document-root = an ft_root whose files/ holds them, ' +
      'port, `mimetype.assign = ("" => "application/octet-stream")`, default modules) and ' +
      'ft-legacy-static serve that ft_root; ft-server serves the same files uploaded ' +
      'beforehand as the Python client does (so it answers the stored gzip, about half the ' +
      'bytes). ft-server and ft-legacy-static log one line per request to a file (-L), as ' +
      'deployed; lighttpd has no access log.',
    `Load: \`wrk -t1 -cN -d${cfg.durationS}s --latency\` with a Lua script that cycles ` +
      'through all names, `Accept-Encoding: gzip, deflate` (as the Python client sends). ' +
      `Each server is warmed up with ${cfg.warmupS} s of the same load first (ft-server ` +
      'fills its caches on the first GET of each name). One wrk thread: on 2 cores the ' +
      'server gets the other.',
  );
  const unmeasured = (): void => {
    for (const c of cfg.connections) {
      section.targets.push(
        {
          what: `GET small, ft-server / lighttpd req/s, ${c} connections`,
          ratio: NaN,
          target: 0.35,
        },
        {
          what: `GET small, ft-legacy-static / lighttpd req/s, ${c} connections`,
          ratio: NaN,
          target: 0.5,
        },
      );
    }
  };
  if (!tools.wrk) {
    section.skipped.push(`the whole section: ${tools.missing.wrk}`);
    unmeasured();
    return section;
  }
  const work = await tempDir('get');
  const running: Running[] = [];
  try {
    const ftRoot = path.join(work, 'ft_root');
    const files = path.join(ftRoot, 'files');
    await mkdir(files, { recursive: true });
    ctx.log(`get-small: writing ${cfg.files} files`);
    const names = await writeSmallTree(files, cfg.files, cfg.minBytes, cfg.maxBytes, VERSION);
    const namesFile = path.join(work, 'names.txt');
    await writeFile(namesFile, names.map((n) => `/files/${n}\n`).join(''));
    const scripts = await writeWrkScripts(work);

    const servers = new Map<ServerName, Running>();
    const ft = await startFtServer(path.join(work, 'store'), path.join(work, 'ft-server.log'));
    running.push(ft);
    servers.set('ft-server', ft);
    ctx.log('get-small: uploading them to ft-server');
    await seedServer(ft.url, files, names, VERSION);
    const legacy = await startLegacyStatic(ftRoot, path.join(work, 'legacy.log'));
    running.push(legacy);
    servers.set('ft-legacy-static', legacy);
    if (tools.lighttpd) {
      const lt = await startLighttpd(tools.lighttpd, ftRoot, work);
      running.push(lt);
      servers.set('lighttpd', lt);
    } else {
      section.skipped.push(`the comparison with lighttpd: ${tools.missing.lighttpd}`);
      unmeasured();
    }

    const load = getLoad(tools.wrk!, scripts.get, namesFile);
    for (const [name, s] of servers) {
      ctx.log(`get-small: warming up ${name}`);
      await load(s.url, Math.max(...cfg.connections), cfg.warmupS);
    }

    const order = [...servers.keys()];
    const results = new Map<string, WrkResult[]>();
    const key = (server: ServerName, c: number): string => `${server}@${c}`;
    for (let round = 0; round < config.rounds; round++) {
      for (const c of cfg.connections) {
        // Rotate the order so no server always runs first (or right after a busy one).
        const turn = order.map((_, i) => order[(i + round) % order.length]!);
        for (const name of turn) {
          ctx.log(`get-small: round ${round + 1}, ${c} connections, ${name}`);
          const r = await load(servers.get(name)!.url, c, cfg.durationS);
          if (!results.has(key(name, c))) results.set(key(name, c), []);
          results.get(key(name, c))!.push(r);
        }
      }
    }

    const rows: string[][] = [];
    for (const c of cfg.connections) {
      const base = results.get(key('lighttpd', c));
      for (const name of order) {
        const rs = results.get(key(name, c))!;
        const rps = rs.map((r) => r.reqPerS);
        const rel = base
          ? median(
              ratios(
                rps,
                base.map((r) => r.reqPerS),
              ),
            )
          : NaN;
        const errors = rs.reduce((a, r) => a + r.errors, 0);
        rows.push([
          String(c),
          name,
          withRounds(rps),
          num(median(rs.map((r) => r.p99Ms))),
          num(median(rs.map((r) => r.p50Ms))),
          num(median(rs.map((r) => r.bytes / r.requests))),
          name === 'lighttpd' ? '1.00x' : ratio(rel),
          String(errors),
        ]);
        if (errors > 0) {
          section.notes.push(`${name} at ${c} connections: ${errors} errors or non-2xx answers.`);
        }
        if (base && name !== 'lighttpd') {
          section.targets.push({
            what: `GET small, ${name} / lighttpd req/s, ${c} connections`,
            ratio: rel,
            target: name === 'ft-server' ? 0.35 : 0.5,
          });
        }
      }
    }
    section.tables.push({
      head: [
        'connections',
        'server',
        'req/s median (rounds)',
        'p99 ms',
        'p50 ms',
        'bytes/response',
        'vs lighttpd',
        'errors',
      ],
      rows,
    });
    return section;
  } finally {
    await Promise.all(running.map((r) => r.stop()));
    // `work` (thousands of small files) is left to cleanup(): see removeDir().
  }
}
