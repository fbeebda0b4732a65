/**
 * Loaded with `node --import` into a process whose peak RSS the bench wants (ft-migrate):
 * on exit, writes `{"maxRssKiB": N, "atPeakMiB": {...}, "atExitMiB": {...}}` to the file
 * named by BENCH_RSS_OUT. maxRssKiB is VmHWM from /proc/self/status, read at exit: exact,
 * unlike polling /proc from outside, which misses the last moments. Not getrusage's
 * ru_maxrss: Linux carries a forked process's high-water mark across its exec, so a child
 * of the bench (libuv forks, then execs node) reported the bench's own RSS whenever that
 * was higher: 111 MiB for an ft-migrate whose VmHWM was 88, after the bench had written a
 * 200,000-file tree. atPeakMiB is process.memoryUsage() at the highest RSS of a sample
 * every 100 ms, to tell a peak in the JS heap from one in Buffers or native memory.
 */
import { readFileSync, writeFileSync } from 'node:fs';

/** This process's peak RSS in KiB: VmHWM where /proc has it, else ru_maxrss. */
function peakRssKiB(): number {
  try {
    const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (hwm) return Number(hwm[1]);
  } catch {
    // Not Linux: ru_maxrss, which is this process's own where there is no such carry-over.
  }
  return process.resourceUsage().maxRSS;
}

const out = process.env.BENCH_RSS_OUT;
if (out) {
  const mib = (n: number): number => Math.round((n / 2 ** 20) * 10) / 10;
  const breakdown = (m: NodeJS.MemoryUsage): Record<string, number> => ({
    rss: mib(m.rss),
    heapTotal: mib(m.heapTotal),
    heapUsed: mib(m.heapUsed),
    external: mib(m.external),
    arrayBuffers: mib(m.arrayBuffers),
  });
  let peak = process.memoryUsage();
  setInterval(() => {
    const m = process.memoryUsage();
    if (m.rss > peak.rss) peak = m;
  }, 100).unref();
  process.on('exit', () => {
    writeFileSync(
      out,
      JSON.stringify({
        maxRssKiB: peakRssKiB(),
        atPeakMiB: breakdown(peak),
        atExitMiB: breakdown(process.memoryUsage()),
      }) + '\n',
    );
  });
}
