import { access, constants } from 'node:fs/promises';
import { run } from './proc.js';

/** The outside programs the bench drives or compares against. */
export interface Tools {
  /** Path of the binary, or undefined with the reason in `missing`. */
  lighttpd: string | undefined;
  wrk: string | undefined;
  curl: string | undefined;
  /** Why a tool is missing, by tool name. */
  missing: Record<string, string>;
  versions: { lighttpd: string; wrk: string; curl: string };
}

const CANDIDATES: Record<'lighttpd' | 'wrk' | 'curl', string[]> = {
  lighttpd: ['/usr/sbin/lighttpd', '/usr/bin/lighttpd', '/usr/local/sbin/lighttpd'],
  wrk: ['/usr/bin/wrk', '/usr/local/bin/wrk'],
  curl: ['/usr/bin/curl', '/usr/local/bin/curl'],
};

/** BENCH_WITHOUT=lighttpd,wrk,curl: act as if they were missing (to test the skips). */
const HIDDEN = new Set(
  (process.env.BENCH_WITHOUT ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
);

async function find(name: keyof typeof CANDIDATES): Promise<string | undefined> {
  if (HIDDEN.has(name)) return undefined;
  for (const p of CANDIDATES[name]) {
    if (
      await access(p, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return p;
  }
  return undefined;
}

/**
 * `apt-get install -y` the Debian packages that are missing (full mode, as root); after a
 * failure, `apt-get update` once and try again. Returns a reason when it did not work.
 */
async function aptInstall(packages: string[]): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'not root, so not installed';
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = (): ReturnType<typeof run> =>
    run('apt-get', ['install', '-y', '--no-install-recommends', ...packages], {
      env,
      timeoutMs: 300_000,
    });
  let r = await install();
  if (r.code !== 0) {
    await run('apt-get', ['update'], { env, timeoutMs: 300_000 });
    r = await install();
  }
  return r.code === 0 ? undefined : `apt-get install failed: ${r.stderr.trim().split('\n').pop()}`;
}

async function version(bin: string | undefined, args: string[]): Promise<string> {
  if (!bin) return 'not installed';
  const r = await run(bin, args, { timeoutMs: 10_000 });
  return (r.stdout + r.stderr).trim().split('\n')[0] ?? 'unknown';
}

/**
 * Finds lighttpd, wrk and curl; when `install` is set (full mode), installs the missing
 * ones from Debian. Short mode (CI) never installs: it says what is missing and the
 * sections skip those comparisons.
 */
export async function findTools(install: boolean): Promise<Tools> {
  const missing: Record<string, string> = {};
  let [lighttpd, wrk, curl] = await Promise.all([find('lighttpd'), find('wrk'), find('curl')]);
  const absent = [
    ...(lighttpd ? [] : ['lighttpd']),
    ...(wrk ? [] : ['wrk']),
    ...(curl ? [] : ['curl']),
  ];
  let why =
    'short mode does not install it (run `pnpm bench`, or `apt-get install -y lighttpd wrk curl`)';
  if (HIDDEN.size > 0) why = 'hidden by BENCH_WITHOUT';
  else if (absent.length > 0 && install) {
    console.error(`bench: installing ${absent.join(', ')} from Debian...`);
    why = (await aptInstall(absent)) ?? 'still missing after apt-get install';
    [lighttpd, wrk, curl] = await Promise.all([find('lighttpd'), find('wrk'), find('curl')]);
  }
  if (!lighttpd) missing.lighttpd = `lighttpd is not installed: ${why}`;
  if (!wrk) missing.wrk = `wrk is not installed: ${why}`;
  if (!curl) missing.curl = `curl is not installed: ${why}`;
  const [lv, wv, cv] = await Promise.all([
    version(lighttpd, ['-v']),
    version(wrk, ['--version']),
    version(curl, ['--version']),
  ]);
  return {
    lighttpd,
    wrk,
    curl,
    missing,
    versions: { lighttpd: lv, wrk: wv.replace(/\s+Copyright.*/, ''), curl: cv },
  };
}
