import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { render } from 'ink-testing-library';
import {
  Migrator,
  ProgressTracker,
  ProgressView,
  progressLine,
  type MigrateClient,
  type ProgressState,
} from '@filetracker/migrate';

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
    failed: 4,
    differences: 0,
    inFlight: 8,
    retries: 7,
    filesPerSecond: 250,
    bytesPerSecond: 2.5 * MiB,
    etaMs: 150_000,
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
          etaMs: undefined,
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
    // 7 files left at 1.5/s, 600 bytes at 200/s: the slower, 4.67 s.
    assert.equal(s.etaMs, 4667);
    assert.deepEqual(
      s.notices.map((n) => [n.kind, n.name]),
      [['skipped', '/f2']],
    );
    const line = progressLine(s);
    assert.match(line, /^ft-migrate: uploading 3\/10 \(30%\) files, 400 B\/1000 B, 1\.5 files\/s/);
    assert.ok(!line.includes('\x1b['));
  });
});
