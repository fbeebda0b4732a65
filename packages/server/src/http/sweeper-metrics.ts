import { Counter, Gauge, type Registry } from 'prom-client';
import type { SweeperStats } from '../store/sweeper.js';

/**
 * The scale-out sweeper's progress (issue 14, "Metrics: ... sweeper progress"), read from
 * its counters at scrape time. Every process has them: `ft_sweeper_leader` says which one
 * sweeps, and only that one's counters move.
 */
export function watchSweeper(registry: Registry, stats: SweeperStats): void {
  const registers = [registry];
  /**
   * Counters and gauges read off `stats` at scrape time: [kind, name, help, read], and for
   * a gauge how `--workers N` sums it over the workers (worker-sums.ts): the leaders are
   * counted (0 or 1), the last sweep is the latest one's.
   */
  const table: ['counter' | 'gauge', string, string, () => number, ('sum' | 'max')?][] = [
    [
      'gauge',
      'ft_sweeper_leader',
      '1 while this process is the elected sweeper (holds the lock in the database), else 0',
      () => (stats.leader ? 1 : 0),
    ],
    ['counter', 'ft_sweeps_total', 'Sweeps this process ran as the sweeper', () => stats.sweeps],
    [
      'counter',
      'ft_sweep_errors_total',
      'Sweeps or sweeper elections that failed (each logged)',
      () => stats.errors,
    ],
    [
      'counter',
      'ft_swept_blobs_total',
      'Blobs removed a grace period after no name used them any more',
      () => stats.blobsRemoved,
    ],
    [
      'gauge',
      'ft_sweep_last_end_timestamp_seconds',
      'When the last sweep of this process ended (Unix time; 0 before the first)',
      () => (stats.lastEndMs ?? 0) / 1000,
      'max',
    ],
    [
      'gauge',
      'ft_sweep_last_duration_seconds',
      'How long the last sweep of this process took',
      () => stats.lastDurationMs / 1000,
      'max',
    ],
  ];
  for (const [kind, name, help, read, aggregator = 'sum'] of table) {
    if (kind === 'gauge') {
      new Gauge({ name, help, registers, aggregator, collect: setTo(read) });
    } else {
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    }
  }
  new Counter({
    name: 'ft_swept_orphans_total',
    help: 'Leftovers of crashed uploads removed: blobs with no record (blob), staged uploads (staging)',
    labelNames: ['kind'],
    registers,
    collect() {
      this.reset();
      this.inc({ kind: 'blob' }, stats.orphanBlobsRemoved);
      this.inc({ kind: 'staging' }, stats.orphanStagingRemoved);
    },
  });
}

/** A gauge's `collect` that sets it to `read()`. */
function setTo(read: () => number): (this: Gauge) => void {
  return function (this: Gauge) {
    this.set(read());
  };
}
