import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip, gzipSync } from 'node:zlib';
import { runChild } from './children.js';
import { LAST_MODIFIED_QUERY, VERSION, type BenchContext } from './context.js';
import { curlGet, curlPut, type CurlResult } from './curl.js';
import { writeLargeFile } from './data.js';
import { removeDir, tempDir } from './lifecycle.js';
import { startLighttpd } from './lighttpd.js';
import { procStatusKiB, type Running } from './proc.js';
import { emptySection, type Section } from './report.js';
import { startFtServer, startLegacyStatic } from './servers.js';
import { MiB, median, num, ratio, ratios, withRounds } from './stats.js';

/** Bytes at the start of the file that each upload rewrites, so every upload is new content. */
export const TAG_BYTES = 64;

export function tag(text: string): Buffer {
  return Buffer.from(text.padEnd(TAG_BYTES - 1, '.').slice(0, TAG_BYTES - 1) + '\n');
}

/** A stored-mode gzip member of a tag: always the same length, so it can be rewritten in place. */
export function tagMember(t: Buffer): Buffer {
  return gzipSync(t, { level: 0 });
}

export async function pwrite(file: string, data: Buffer): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    await fh.write(data, 0, data.length, 0);
  } finally {
    await fh.close();
  }
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Writes the gzip body curl uploads for `file`: a stored gzip member of a tag (rewritten in
 * place before each upload, with the file's first {@link TAG_BYTES}), then one member of
 * the rest at level 6. Returns the tag member, whose length every later one must keep.
 */
export async function writeCurlBody(file: string, body: string): Promise<Buffer> {
  const first = tagMember(tag('init'));
  const out = createWriteStream(body);
  out.write(first);
  await pipeline(createReadStream(file, { start: TAG_BYTES }), createGzip({ level: 6 }), out);
  return first;
}

/**
 * Large files: upload and download MiB/s of one big file against the pipeline limit
 * (gzip + SHA-256 of the same bytes in one process) and against lighttpd serving it.
 */
export async function benchLarge(ctx: BenchContext): Promise<Section> {
  const { config, tools } = ctx;
  const bytes = config.large.bytes;
  const sizeText = bytes >= 1 << 30 ? `${bytes / (1 << 30)} GiB` : `${bytes / MiB} MiB`;
  const section = emptySection('Large files');
  section.method.push(
    `One file of ${sizeText} of contest-like text (gzip level 6 makes it about 2.1:1). ` +
      'Every upload gets new content (its first 64 bytes are rewritten), so the server ' +
      'always writes a new blob. All MiB/s are of the file (logical bytes) per second.',
    '**Pipeline limit**: a separate Node process reads the file, SHA-256s it and gzips it ' +
      'at level 6 (the Python client\u2019s level), dropping the output: the work that ' +
      'must happen for the bytes to become a verified blob.',
    '**Upload, end to end**: FiletrackerClient (shared-protocol, what ft-migrate uses) in a ' +
      'separate process PUTs the file: a SHA-256 pass, then the file gzipped on the fly; ' +
      'the server inflates it to verify digest and size while writing the gzip, then ' +
      'fsyncs. **Upload, pre-gzipped** (the server\u2019s share alone): curl PUTs a ' +
      'ready gzip body with `SHA256-Checksum` and `Logical-Size`.',
    '**Download**: curl GETs the file from ft-server with `Accept-Encoding: gzip, deflate` ' +
      '(the stored gzip, kept as is), with `--compressed` (curl inflates it, as a Python ' +
      'client does), and the same bytes from lighttpd and ft-legacy-static (plain).',
  );
  const work = await tempDir('large');
  const running: Running[] = [];
  try {
    const ftRoot = path.join(work, 'ft_root');
    await mkdir(path.join(ftRoot, 'files/large'), { recursive: true });
    const file = path.join(ftRoot, 'files/large/big.bin');
    const body = path.join(work, 'big.body.gz');
    ctx.log(`large: writing ${sizeText} and its gzip body`);
    await writeLargeFile(file, bytes);
    const first = await writeCurlBody(file, body);

    const ft = await startFtServer(path.join(work, 'store'), path.join(work, 'ft-server.log'));
    running.push(ft);
    const legacy = await startLegacyStatic(ftRoot, path.join(work, 'legacy.log'));
    running.push(legacy);
    let lighttpd: Running | undefined;
    if (tools.lighttpd) {
      lighttpd = await startLighttpd(tools.lighttpd, ftRoot, work);
      running.push(lighttpd);
    } else {
      section.skipped.push(`the download comparison with lighttpd: ${tools.missing.lighttpd}`);
    }
    if (!tools.curl)
      section.skipped.push(`uploads by curl and all downloads: ${tools.missing.curl}`);

    const pipelineMiBs: number[] = [];
    const e2eMiBs: number[] = [];
    const curlUpMiBs: number[] = [];
    const down = {
      lighttpd: [] as CurlResult[],
      gzip: [] as CurlResult[],
      inflate: [] as CurlResult[],
      legacy: [] as CurlResult[],
    };
    const mibs = (seconds: number): number => bytes / MiB / seconds;
    for (let round = 0; round < config.rounds; round++) {
      const nonce = `${Date.now()}-${round}`;
      if (tools.curl) {
        ctx.log(`large: round ${round + 1}, upload of a pre-gzipped body (curl)`);
        const t = tag(`curl ${nonce}`);
        const member = tagMember(t);
        if (member.length !== first.length) throw new Error('tag member changed length');
        await pwrite(file, t);
        await pwrite(body, member);
        const r = await curlPut(
          tools.curl,
          `${ft.url}/files/large/curl.bin${LAST_MODIFIED_QUERY}`,
          body,
          {
            'Content-Encoding': 'gzip',
            'SHA256-Checksum': await sha256File(file),
            'Logical-Size': String(bytes),
          },
        );
        if (r.status !== 200) throw new Error(`curl upload answered ${r.status}`);
        curlUpMiBs.push(mibs(r.seconds));
      }

      await pwrite(file, tag(`e2e ${nonce}`));
      ctx.log(`large: round ${round + 1}, pipeline limit`);
      const p = await runChild<{ bytes: number; ms: number }>('pipeline', { file, level: 6 });
      pipelineMiBs.push(mibs(p.ms / 1000));
      ctx.log(`large: round ${round + 1}, upload end to end (FiletrackerClient)`);
      const u = await runChild<{ ms: number }>('upload', {
        url: ft.url,
        file,
        name: '/large/big.bin',
        version: VERSION + round,
      });
      e2eMiBs.push(mibs(u.ms / 1000));

      if (tools.curl) {
        // Now ft-server's /large/big.bin and lighttpd's files/large/big.bin are the same bytes.
        ctx.log(`large: round ${round + 1}, downloads`);
        const name = '/files/large/big.bin';
        const get = async (url: string, inflate: boolean): Promise<CurlResult> => {
          const r = await curlGet(tools.curl!, url + name, inflate);
          if (r.status !== 200) throw new Error(`GET ${url}${name} answered ${r.status}`);
          return r;
        };
        const steps: (() => Promise<void>)[] = [
          async () => void down.gzip.push(await get(ft.url, false)),
          async () => void down.inflate.push(await get(ft.url, true)),
          async () => void down.legacy.push(await get(legacy.url, false)),
        ];
        if (lighttpd)
          steps.push(async () => void down.lighttpd.push(await get(lighttpd.url, false)));
        for (let i = 0; i < steps.length; i++) await steps[(i + round) % steps.length]!();
      }
    }

    const ftPeakKiB = await procStatusKiB(ft.pid, 'VmHWM');
    const upRel = median(ratios(e2eMiBs, pipelineMiBs));
    const curlRel = median(ratios(curlUpMiBs, pipelineMiBs));
    section.tables.push({
      caption: 'Upload',
      head: ['what', 'MiB/s median (rounds)', 'vs pipeline'],
      rows: [
        [
          'pipeline limit: read + SHA-256 + gzip -6, one process',
          withRounds(pipelineMiBs),
          '1.00x',
        ],
        ['upload end to end (FiletrackerClient -> ft-server)', withRounds(e2eMiBs), ratio(upRel)],
        ...(curlUpMiBs.length > 0
          ? [
              [
                'upload of a pre-gzipped body (curl -> ft-server)',
                withRounds(curlUpMiBs),
                ratio(curlRel),
              ],
            ]
          : []),
      ],
    });
    section.targets.push({
      what: `large upload (${sizeText}), end to end / pipeline limit MiB/s`,
      ratio: upRel,
      target: 0.7,
    });

    if (tools.curl) {
      const logical = (rs: CurlResult[]): number[] => rs.map((r) => mibs(r.seconds));
      const wire = (rs: CurlResult[]): number[] => rs.map((r) => r.bytes / MiB / r.seconds);
      const base = down.lighttpd.length > 0 ? logical(down.lighttpd) : undefined;
      const rel = (rs: CurlResult[]): string =>
        base ? ratio(median(ratios(logical(rs), base))) : 'n/a';
      const row = (what: string, rs: CurlResult[]): string[] => [
        what,
        withRounds(logical(rs)),
        num(median(wire(rs))),
        rel(rs),
      ];
      section.tables.push({
        caption: 'Download',
        head: ['what', 'MiB/s of the file, median (rounds)', 'MiB/s on the wire', 'vs lighttpd'],
        rows: [
          ...(base ? [row('lighttpd (plain)', down.lighttpd)] : []),
          row('ft-server, gzip as stored (client keeps it)', down.gzip),
          row('ft-server, gzip inflated by the client (curl --compressed)', down.inflate),
          row('ft-legacy-static (plain)', down.legacy),
        ],
      });
      section.targets.push({
        what: `large download (${sizeText}), ft-server (gzip-accepting client) / lighttpd MiB/s`,
        ratio: base ? median(ratios(logical(down.gzip), base)) : NaN,
        target: 0.9,
      });
    } else {
      section.targets.push({
        what: `large download (${sizeText}), ft-server (gzip-accepting client) / lighttpd MiB/s`,
        ratio: NaN,
        target: 0.9,
      });
    }
    if (ftPeakKiB !== undefined) {
      section.notes.push(
        `ft-server peak RSS (VmHWM) after these uploads and downloads: ${num(ftPeakKiB / 1024)} MiB.`,
      );
    }
    return section;
  } finally {
    await Promise.all(running.map((r) => r.stop()));
    await removeDir(work);
  }
}
