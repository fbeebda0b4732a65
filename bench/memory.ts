import { access, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { runChild } from './children.js';
import { LAST_MODIFIED_QUERY, VERSION, type BenchContext } from './context.js';
import { writeSmallTree } from './data.js';
import { migrateNotReady, runMigrate, type MigrateRun } from './ft-migrate.js';
import { removeDir, tempDir } from './lifecycle.js';
import { procStatusKiB } from './proc.js';
import { emptySection, type Section } from './report.js';
import { startFtServer } from './servers.js';
import { MiB, num } from './stats.js';

/**
 * tmpfs when there is one (full mode): the migrator's RSS does not depend on the disk, its
 * time does. Short mode stays in the temp dir (TMPDIR), which its test checks is left empty.
 */
async function fastBase(short: boolean): Promise<string | undefined> {
  if (short) return undefined;
  return access('/dev/shm').then(
    () => '/dev/shm',
    () => undefined,
  );
}

/** ft-server's peak RSS under many concurrent large uploads. */
async function serverUnderUploads(ctx: BenchContext, section: Section): Promise<void> {
  const { uploads, bytes } = ctx.config.memory;
  const size = bytes >= 1 << 30 ? `${bytes / (1 << 30)} GiB` : `${bytes / MiB} MiB`;
  section.method.push(
    `**ft-server under ${uploads} concurrent ${size} uploads**: a fresh ft-server (store in ` +
      `the temp dir); a separate process starts ${uploads} PUTs at once, each of ${size} ` +
      'of content (zeros and a unique 64-byte tail, as two gzip members with ' +
      '`SHA256-Checksum` and `Logical-Size`), so the server inflates, hashes and stores ' +
      `${uploads} x ${size} concurrently while the loopback and disk carry only ~1/1000 ` +
      'of it. Peak RSS is VmHWM from /proc/PID/status, read after all uploads answered.',
  );
  const dir = await tempDir('mem-store');
  const ft = await startFtServer(path.join(dir, 'store'), path.join(dir, 'server.log'));
  try {
    const startKiB = (await procStatusKiB(ft.pid, 'VmHWM')) ?? NaN;
    let maxRssKiB = 0;
    const poll = setInterval(() => {
      void procStatusKiB(ft.pid, 'VmRSS').then((k) => (maxRssKiB = Math.max(maxRssKiB, k ?? 0)));
    }, 250);
    ctx.log(`memory: ${uploads} concurrent uploads of ${size}`);
    let r: { ms: number; statuses: number[] };
    try {
      r = await runChild('uploads', {
        url: ft.url,
        count: uploads,
        bytes,
        version: VERSION,
        query: LAST_MODIFIED_QUERY,
      });
    } finally {
      clearInterval(poll);
    }
    const peakKiB = (await procStatusKiB(ft.pid, 'VmHWM')) ?? NaN;
    const bad = r.statuses.filter((s) => s !== 200).length;
    if (bad > 0) section.notes.push(`${bad} of the ${uploads} uploads did not answer 200.`);
    section.tables.push({
      caption: 'ft-server',
      head: ['what', 'peak RSS MiB', 'RSS at start MiB', 'time s', 'content MiB/s'],
      rows: [
        [
          `${uploads} concurrent uploads of ${size}`,
          num(peakKiB / 1024),
          num(startKiB / 1024),
          num(r.ms / 1000),
          num((uploads * bytes) / MiB / (r.ms / 1000)),
        ],
      ],
    });
    section.targets.push({
      what: `ft-server peak RSS, ${uploads} concurrent ${size} uploads`,
      ratio: peakKiB / 1024,
      target: 200,
      atMost: true,
      shown: `${num(peakKiB / 1024)} MiB`,
      targetShown: '< 200 MiB',
    });
  } finally {
    await ft.stop();
    await removeDir(dir);
  }
}

/** ft-migrate's peak RSS on trees of two sizes: below the limit and flat in the count. */
async function migratorByTreeSize(ctx: BenchContext, section: Section): Promise<void> {
  const counts = ctx.config.migrate.rssFiles;
  section.method.push(
    `**ft-migrate on trees of ${counts.join(' and ')} files** (64-512 bytes each, 100 per ` +
      'directory) with its defaults (state file, -j default), uploading to a fresh ' +
      'ft-server; tree and store on tmpfs (/dev/shm) in full mode when there is one, as the ' +
      'migrator\u2019s memory does not depend on the disk. Peak RSS is VmHWM from ' +
      '/proc/self/status of the ft-migrate process, read at its exit by a `node --import` ' +
      'hook (not getrusage\u2019s ru_maxrss, which on Linux keeps the high-water mark of ' +
      'the bench process it was forked from); ' +
      'node gets the flags of the bin\u2019s `#!` line, as npm\u2019s and pnpm\u2019s shims ' +
      'pass them.',
  );
  const notReady = await migrateNotReady();
  if (notReady) {
    section.skipped.push(`the migrator\u2019s peak RSS: ${notReady}`);
    section.targets.push({
      what: `ft-migrate peak RSS, ${counts[counts.length - 1]} files`,
      ratio: NaN,
      target: 150,
      atMost: true,
      targetShown: '< 150 MiB',
    });
    return;
  }
  const base = await fastBase(ctx.config.short);
  const runs: { files: number; run: MigrateRun }[] = [];
  for (const count of counts) {
    const work = await tempDir('mem-migrate', base);
    const ft = await startFtServer(path.join(work, 'store'), path.join(work, 'server.log'));
    try {
      ctx.log(`memory: writing a tree of ${count} files`);
      const tree = path.join(work, 'files');
      await mkdir(tree);
      await writeSmallTree(tree, count, 64, 512);
      ctx.log(`memory: ft-migrate of ${count} files`);
      const run = await runMigrate(tree, ft.url, work, `rss-${count}`);
      runs.push({ files: count, run });
    } finally {
      await ft.stop();
      await removeDir(work);
    }
  }
  section.tables.push({
    caption: 'ft-migrate',
    head: [
      'files in the tree',
      'peak RSS MiB',
      'JS heap / Buffers at peak MiB',
      'uploaded',
      'failed',
      'time s',
      'files/s',
    ],
    rows: runs.map(({ files, run }) => [
      String(files),
      num(run.maxRssKiB / 1024),
      run.atPeak ? `${num(run.atPeak.heapTotal)} / ${num(run.atPeak.external)}` : 'n/a',
      String(run.uploadedFiles),
      String(run.failedFiles),
      num(run.ms / 1000),
      num(files / (run.ms / 1000)),
    ]),
  });
  const largest = runs[runs.length - 1]!;
  const smallest = runs[0]!;
  section.targets.push({
    what: `ft-migrate peak RSS, ${largest.files} files`,
    ratio: largest.run.maxRssKiB / 1024,
    target: 150,
    atMost: true,
    shown: `${num(largest.run.maxRssKiB / 1024)} MiB`,
    targetShown: '< 150 MiB',
  });
  if (runs.length > 1) {
    const growth = largest.run.maxRssKiB / smallest.run.maxRssKiB;
    const perK =
      (largest.run.maxRssKiB - smallest.run.maxRssKiB) /
      1024 /
      ((largest.files - smallest.files) / 100_000);
    section.targets.push({
      what: `ft-migrate peak RSS flat: ${largest.files} files / ${smallest.files} files`,
      ratio: growth,
      target: 1.25,
      atMost: true,
      shown: `${growth.toFixed(2)}x (${num(perK)} MiB per 100k files)`,
      targetShown: '~1x (<= 1.25x)',
    });
  }
}

/** Memory: the server under concurrent large uploads; the migrator by tree size. */
export async function benchMemory(ctx: BenchContext): Promise<Section> {
  const section = emptySection('Memory');
  await serverUnderUploads(ctx, section);
  await migratorByTreeSize(ctx, section);
  return section;
}
