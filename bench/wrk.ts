import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { run } from './proc.js';

/** What one wrk run measured (from the JSON line its `done()` prints). */
export interface WrkResult {
  requests: number;
  durationS: number;
  reqPerS: number;
  bytes: number;
  /** Socket errors (connect, read, write, timeout) and non-2xx/3xx answers. */
  errors: number;
  statusErrors: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** Prints the summary as one JSON line, so nothing depends on wrk's text layout. */
const DONE = `
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"socket_errors":%d,' ..
    '"status_errors":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
`;

/**
 * GET each path of the file given as the script's first argument in turn, with the
 * Accept-Encoding the Python client sends. Requests are formatted once, in init().
 */
const GET_SCRIPT = `
local reqs, n, i = {}, 0, 0
function init(args)
  local headers = { ["Accept-Encoding"] = "gzip, deflate" }
  for line in io.lines(args[1]) do
    n = n + 1
    reqs[n] = wrk.format("GET", line, headers)
  end
  i = math.random(n) - 1
end
function request()
  i = i % n + 1
  return reqs[i]
end
${DONE}`;

/**
 * PUT pre-built gzip bodies as the Python client sends them (Content-Encoding: gzip,
 * SHA256-Checksum, Logical-Size, Content-Length), each under its own name. Arguments: an
 * index file (lines \`path sha256 logicalSize offset length\`), the file of bodies, and
 * the query string. Each body is sent once; past the end the script starts over (noted
 * by the caller, as those PUTs replace a name with the same content).
 */
const PUT_SCRIPT = `
local reqs, n, i = {}, 0, 0
function init(args)
  local f = assert(io.open(args[2], "rb"))
  local data = f:read("*a")
  f:close()
  for line in io.lines(args[1]) do
    local p, sha, size, off, len = line:match("^(%S+) (%x+) (%d+) (%d+) (%d+)$")
    off = tonumber(off)
    n = n + 1
    reqs[n] = wrk.format("PUT", p .. args[3], {
      ["Content-Encoding"] = "gzip",
      ["SHA256-Checksum"] = sha,
      ["Logical-Size"] = size,
      ["Accept-Encoding"] = "gzip, deflate",
    }, data:sub(off + 1, off + tonumber(len)))
  end
  data = nil
end
function request()
  i = i % n + 1
  return reqs[i]
end
${DONE}`;

/** Writes the two Lua scripts into `dir`; returns their paths. */
export async function writeWrkScripts(dir: string): Promise<{ get: string; put: string }> {
  const get = path.join(dir, 'get.lua');
  const put = path.join(dir, 'put.lua');
  await Promise.all([writeFile(get, GET_SCRIPT), writeFile(put, PUT_SCRIPT)]);
  return { get, put };
}

/**
 * Runs wrk against `url` with `connections` keep-alive connections for `durationS`
 * seconds (whole seconds: wrk takes no fractions). One wrk thread: on 2 cores the server
 * under test gets the other one.
 */
export async function runWrk(
  wrk: string,
  opts: {
    url: string;
    script: string;
    scriptArgs: string[];
    connections: number;
    durationS: number;
    threads?: number;
  },
): Promise<WrkResult> {
  const args = [
    `-t${opts.threads ?? 1}`,
    `-c${opts.connections}`,
    `-d${Math.max(1, Math.round(opts.durationS))}s`,
    '--latency',
    '--timeout',
    '10s',
    '-s',
    opts.script,
    opts.url,
    '--',
    ...opts.scriptArgs,
  ];
  const r = await run(wrk, args, { timeoutMs: (opts.durationS + 60) * 1000 });
  const line = r.stdout.split('\n').find((l) => l.startsWith('BENCH_JSON '));
  if (r.code !== 0 || !line) {
    throw new Error(`wrk failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(-1000)}`);
  }
  const j = JSON.parse(line.slice('BENCH_JSON '.length)) as Record<string, number>;
  const durationS = j.duration_us! / 1e6;
  return {
    requests: j.requests!,
    durationS,
    reqPerS: j.requests! / durationS,
    bytes: j.bytes!,
    errors: j.socket_errors! + j.status_errors!,
    statusErrors: j.status_errors!,
    p50Ms: j.p50_us! / 1000,
    p90Ms: j.p90_us! / 1000,
    p99Ms: j.p99_us! / 1000,
    maxMs: j.max_us! / 1000,
  };
}

/** A GET load (`wrk` with the GET script) cycling through the names in `namesFile`. */
export function getLoad(
  wrk: string,
  script: string,
  namesFile: string,
): (url: string, connections: number, durationS: number) => Promise<WrkResult> {
  return (url, connections, durationS) =>
    runWrk(wrk, { url, script, scriptArgs: [namesFile], connections, durationS });
}
