/**
 * Loaded with `node --import` into a process whose peak RSS the bench wants (ft-migrate):
 * on exit, writes `{"maxRssKiB": N, "atExitMiB": {...}}` (ru_maxrss from getrusage, the same
 * as VmHWM, and process.memoryUsage() at exit) to the
 * file named by BENCH_RSS_OUT. Exact, unlike polling /proc, which misses the last moments.
 */
import { writeFileSync } from 'node:fs';

const out = process.env.BENCH_RSS_OUT;
if (out) {
  process.on('exit', () => {
    const m = process.memoryUsage();
    const mib = (n: number): number => Math.round((n / 2 ** 20) * 10) / 10;
    writeFileSync(
      out,
      JSON.stringify({
        maxRssKiB: process.resourceUsage().maxRSS,
        // Where the memory is at exit, to tell the JS heap from native and code.
        atExitMiB: {
          rss: mib(m.rss),
          heapTotal: mib(m.heapTotal),
          heapUsed: mib(m.heapUsed),
          external: mib(m.external),
          arrayBuffers: mib(m.arrayBuffers),
        },
      }) + '\n',
    );
  });
}
