/**
 * Loaded with `node --import` into a process whose peak RSS the bench wants (ft-migrate):
 * on exit, writes `{"maxRssKiB": N, "atPeakMiB": {...}, "atExitMiB": {...}}` to the file
 * named by BENCH_RSS_OUT. maxRssKiB is ru_maxrss from getrusage (the same as VmHWM): exact,
 * unlike polling /proc, which misses the last moments. atPeakMiB is process.memoryUsage()
 * at the highest RSS of a sample every 100 ms, to tell a peak in the JS heap from one in
 * Buffers or native memory.
 */
import { writeFileSync } from 'node:fs';

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
        maxRssKiB: process.resourceUsage().maxRSS,
        atPeakMiB: breakdown(peak),
        atExitMiB: breakdown(process.memoryUsage()),
      }) + '\n',
    );
  });
}
