import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { render } from 'ink-testing-library';
import { FiletrackerClient } from '@filetracker/shared-protocol';
import {
  Migrator,
  ProgressTracker,
  ProgressView,
  progressLine,
  type MigrateClient,
  type MigrationSummary,
  type ProgressState,
} from '@filetracker/migrate';
import { smallTreeFiles, writeTree } from './helpers/migrate-tree.js';
import { startServer, tempDir } from './helpers/server.js';

const MiB = 2 ** 20;

function state(overrides: Partial<ProgressState> = {}): ProgressState {
  return {
    mode: 'upload',
    finished: false,
    interrupted: false,
    elapsedMs: 65_000,
    scan: { files: 5000, bytes: 500 * MiB, done: true },
    processed: { files: 1234, bytes: 125 * MiB },
    done: { files: 1200, bytes: 120 * MiB },
    skipped: 30,
    interruptedFiles: 0,
    failed: 4,
    differences: 0,
    inFlight: 8,
    retries: 7,
    filesPerSecond: 250,
    bytesPerSecond: 2.5 * MiB,
    eta: { kind: 'known', ms: 150_000 },
    notices: [],
    noticesOmitted: 0,
    lastErrors: [],
    ...overrides,
  };
}

describe('ProgressView', () => {
  test('shows files and bytes done/total, throughput, ETA, in flight, retries and failures', () => {
    const { lastFrame, unmount } = render(<ProgressView state={state()} />);
    const frame = lastFrame()!;
    unmount();
    assert.match(frame, /Counting .* 5000 files, 500 MiB ✓/);
    assert.match(frame, /Uploading .* 1234\/5000 \(24%\) files, 125 MiB\/500 MiB/);
    assert.match(frame, /250 files\/s, 2\.5 MiB\/s, ETA 2m30s/);
    assert.match(frame, /8 in flight, 1200 uploaded, 30 skipped, 7 retries, 4 failed/);
  });

  test('while counting: a moving bar, no total and no ETA yet', () => {
    const { lastFrame, unmount } = render(
      <ProgressView
        state={state({
          scan: { files: 800, bytes: 3 * MiB, done: false },
          processed: { files: 100, bytes: MiB },
          eta: { kind: 'counting' },
        })}
      />,
    );
    const frame = lastFrame()!;
    unmount();
    assert.match(frame, /Counting .* 800 files, 3\.00 MiB …/);
    assert.match(frame, /100\/≥800 files/);
    assert.match(frame, /ETA \?/);
  });

  test('failures and skips are printed once above the bars (Static); the last errors stay below', () => {
    const failure = {
      kind: 'failed' as const,
      path: '/ft_root/files/a#b',
      name: '/a#b',
      text: 'HTTP 400: injected 400',
    };
    const skip = {
      kind: 'skipped' as const,
      path: '/ft_root/files/fifo',
      name: '/fifo',
      text: 'a FIFO: not uploaded',
    };
    const { lastFrame, rerender, unmount } = render(
      <ProgressView state={state({ notices: [failure], lastErrors: [failure] })} />,
    );
    rerender(
      <ProgressView
        state={state({ notices: [failure, skip], lastErrors: [failure], noticesOmitted: 3 })}
      />,
    );
    const frame = lastFrame()!;
    unmount();
    assert.equal(frame.split('✗ failed /ft_root/files/a#b: HTTP 400').length, 2, 'printed once');
    assert.match(frame, /! skipped \/ft_root\/files\/fifo: a FIFO: not uploaded/);
    assert.match(frame, /Last errors:\n\s+\/ft_root\/files\/a#b: HTTP 400: injected 400/);
    assert.match(frame, /3 more lines not shown/);
    assert.ok(frame.indexOf('! skipped') < frame.indexOf('Counting'), 'notices above the bars');
  });

  test('a verify shows the differences; a finished run says Done', () => {
    const { lastFrame, unmount } = render(
      <ProgressView state={state({ mode: 'verify', differences: 2, finished: true })} />,
    );
    const frame = lastFrame()!;
    unmount();
    assert.match(frame, /Done .* 1234\/5000/);
    assert.match(frame, /1200 identical, .* 2 differ/);
  });
});

describe('ProgressTracker', () => {
  test('turns migrator events into the state the views render', () => {
    let nowMs = 1_000_000;
    const migrator = new Migrator({
      files: '/x',
      root: '/x',
      client: {} as MigrateClient,
    });
    const tracker = new ProgressTracker(migrator, { now: () => nowMs });
    migrator.emit('scan', { files: 10, bytes: 1000, done: true });
    for (let i = 0; i < 4; i++) migrator.emit('file-start', { path: `/x/f${i}`, name: `/f${i}` });
    migrator.emit('file-done', { path: '/x/f0', name: '/f0', size: 100, version: 1 });
    migrator.emit('file-done', { path: '/x/f1', name: '/f1', size: 300, version: 1 });
    migrator.emit('file-skip', {
      path: '/x/f2',
      name: '/f2',
      size: 0,
      reason: 'symlink',
      detail: 'a symlink: not uploaded',
    });
    migrator.emit('file-retry', {
      path: '/x/f3',
      name: '/f3',
      attempt: 1,
      code: 'SERVER_ERROR',
      reason: 'HTTP 503',
      delayMs: 1,
    });
    nowMs += 2000;
    const s = tracker.snapshot();
    assert.equal(s.processed.files, 3);
    assert.equal(s.processed.bytes, 400);
    assert.equal(s.done.files, 2);
    assert.equal(s.inFlight, 1);
    assert.equal(s.retries, 1);
    assert.equal(s.skipped, 1);
    assert.equal(s.filesPerSecond, 1.5);
    assert.equal(s.bytesPerSecond, 200);
    // Two seconds and three files are too few to tell the time left.
    assert.deepEqual(s.eta, { kind: 'estimating' });
    assert.deepEqual(
      s.notices.map((n) => [n.kind, n.name]),
      [['skipped', '/f2']],
    );
    const line = progressLine(s);
    assert.match(line, /^ft-migrate: uploading 3\/10 \(30%\) files, 400 B\/1000 B, 1\.5 files\/s/);
    assert.ok(!line.includes('\x1b['));
  });
});

/** The frame of `state`, rendered once. */
function frameOf(state: ProgressState): string {
  const { lastFrame, unmount } = render(<ProgressView state={state} />);
  const frame = lastFrame()!;
  unmount();
  return frame;
}

/** `12s`, `1m05s`, as the view writes durations. */
function seconds(text: string): number {
  const m = /^(?:(\d+)m)?(\d+)s$/.exec(text);
  assert.ok(m, `a duration: ${text}`);
  return Number(m[1] ?? 0) * 60 + Number(m[2]);
}

describe('the ETA (issue 17: 7m51s four seconds into a run of 34 s)', () => {
  test('says "estimating" until the rate settles, then a range while only small files went, then the time the run really takes', () => {
    const KiB = 1024;
    // 900 small files first, then 100 of 1 MiB; each costs 10 ms plus 50 ms per MiB.
    const sizes = [...Array<number>(900).fill(KiB), ...Array<number>(100).fill(MiB)];
    const costMs = (size: number) => 10 + (50 * size) / MiB;
    const totalMs = sizes.reduce((sum, size) => sum + costMs(size), 0);
    let nowMs = 0;
    const migrator = new Migrator({ files: '/x', root: '/x', client: {} as MigrateClient });
    const tracker = new ProgressTracker(migrator, { now: () => nowMs });
    migrator.emit('scan', {
      files: sizes.length,
      bytes: sizes.reduce((a, b) => a + b, 0),
      done: true,
    });
    const frames = new Map<number, { frame: string; state: ProgressState }>();
    let lastSnapshot = 0;
    sizes.forEach((size, i) => {
      migrator.emit('file-start', { path: `/x/f${i}`, name: `/f${i}` });
      nowMs += costMs(size);
      migrator.emit('file-done', { path: `/x/f${i}`, name: `/f${i}`, size, version: 1 });
      // A redraw every 150 ms, as the live view does.
      if (nowMs - lastSnapshot >= 150) {
        lastSnapshot = nowMs;
        tracker.snapshot();
      }
      if ([100, 400, 930].includes(i + 1)) {
        const state = tracker.snapshot();
        frames.set(i + 1, { frame: frameOf(state), state });
      }
    });

    // 1 s in: too early to say.
    assert.match(frames.get(100)!.frame, /ETA estimating,/);

    // 4 s in, small files only: the split between per-file and per-byte time is unknown;
    // the time left (truly 5 s + 5 s) lies between the two whole-run rates' estimates.
    const early = frames.get(400)!;
    const range = /ETA (\S+)–(\S+), elapsed/.exec(early.frame);
    assert.ok(range, early.frame);
    const [low, high] = [seconds(range[1]!), seconds(range[2]!)];
    const leftS = (totalMs - 400 * costMs(KiB)) / 1000;
    assert.ok(low <= leftS && leftS <= high, `${low} <= ${leftS} <= ${high}`);
    const elapsedS = early.state.elapsedMs / 1000;
    const filesRate = 400 / elapsedS;
    assert.equal(low, Math.round((sizes.length - 400) / filesRate), 'the files estimate');
    assert.ok(high > 60, 'the bytes estimate, which alone was the ETA of issue 17');

    // Once large files went too: a single figure, near the time left.
    const later = frames.get(930)!;
    const eta = /ETA (\S+), elapsed/.exec(later.frame);
    assert.ok(eta, later.frame);
    const truthS = (totalMs - later.state.elapsedMs) / 1000;
    assert.ok(
      Math.abs(seconds(eta[1]!) - truthS) <= 1,
      `ETA ${eta[1]} for ${truthS.toFixed(1)} s left`,
    );
  });
});

describe('an interrupted run (issue 17: 4986/4986 (100%) while 2 were interrupted)', () => {
  test('the last frame counts only the files finished, like the summary, with its rates and time', async (t) => {
    const files = smallTreeFiles(120, 'cut');
    const dir = await tempDir('ft-migrate-ui-');
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeTree(path.join(dir, 'files'), files);
    const server = await startServer();
    t.after(() => server.close());
    const real = new FiletrackerClient(server.url);
    t.after(() => real.close());
    // The real server takes the first 40 uploads; later ones hang until the interruption.
    let puts = 0;
    const client: MigrateClient = {
      stat: (...args) => real.stat(...args),
      get: (...args) => real.get(...args),
      put: (name, source, options) => {
        puts += 1;
        if (puts <= 40) return real.put(name, source, options);
        return new Promise((_resolve, reject) =>
          options!.signal!.addEventListener('abort', () => reject(options!.signal!.reason)),
        );
      },
    };
    const migrator = new Migrator({
      files: path.join(dir, 'files'),
      root: path.join(dir, 'files'),
      client,
      concurrency: 4,
      countTotals: true,
    });
    const tracker = new ProgressTracker(migrator);
    let inFlight = 0;
    // The frame asserted below shows the total only once the background count has finished
    // (before that it reads "40/≥N"), so the interruption waits for the count as well.
    let counted = false;
    migrator.on('scan', (scan) => {
      if (scan.done) counted = true;
    });
    migrator.on('file-start', () => {
      inFlight += 1;
    });
    migrator.on('file-done', () => {
      inFlight -= 1;
    });
    const waiting = setInterval(() => {
      if (puts >= 44 && inFlight === 4 && counted) migrator.abort('SIGINT received');
    }, 5);
    let summary: MigrationSummary;
    try {
      summary = await migrator.run();
    } finally {
      clearInterval(waiting);
    }
    assert.equal(summary.interrupted, true);
    assert.equal(summary.uploaded.files, 40);
    assert.equal(summary.skipped.byReason.interrupted, 4);

    const state = tracker.snapshot();
    const frame = frameOf(state);
    assert.match(frame, /Interrupted (\S+) 40\/120 \(33%\) files/);
    const bar = /Interrupted (\S+) /.exec(frame)![1]!;
    assert.ok(bar.includes('░'), `a bar not full: ${bar}`);
    assert.match(frame, /0 in flight, 40 uploaded, 0 skipped, 0 retries, 0 failed, 4 interrupted/);
    // The summary's rates and duration, not those of the last seconds.
    const shown = Number(/ (\d+(?:\.\d)?) files\/s/.exec(frame)![1]);
    const rate = summary.throughput.filesPerSecond;
    assert.ok(Math.abs(shown - rate) <= (rate >= 100 ? 0.5 : 0.05), `${shown} files/s: ${rate}`);
    assert.match(frame, /MiB\/s on average, elapsed/);
    assert.doesNotMatch(frame, /ETA/);
    assert.match(
      progressLine(state),
      /^ft-migrate: interrupted 40\/120 \(33%\) files, .* 4 interrupted, /,
    );
  });
});

describe('plurals (issue 17: "1 special files")', () => {
  test('one of a thing is singular in the frame and the plain line', () => {
    const frame = frameOf(
      state({
        scan: { files: 1, bytes: 10, done: true },
        processed: { files: 0, bytes: 0 },
        done: { files: 0, bytes: 0 },
        retries: 1,
        noticesOmitted: 1,
      }),
    );
    assert.match(frame, /Counting .* 1 file, 10 B ✓/);
    assert.match(frame, /1 retry, /);
    assert.match(frame, /1 more line not shown/);
    assert.match(progressLine(state({ retries: 1 })), / 1 retry, /);
  });
});
