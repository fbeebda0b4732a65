import { execFile } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { accepts, freePort, missingProgram, spawnEngine, waitFor } from './engines.js';
import type { EngineProcess } from './engines.js';
import { tempDir } from './server.js';

const run = promisify(execFile);

/** The S3 credentials of the one tempauth user (ENGINES.md). */
export const SWIFT_S3_CREDENTIALS = { accessKeyId: 'test:tester', secretAccessKey: 'testing' };
export const SWIFT_S3_REGION = 'us-east-1';

const SERVERS = ['account', 'container', 'object'] as const;

/**
 * How long each start-up step may take. About 5 s on an idle machine; over 60 s was seen
 * with the load of several test runs on 2 cores (Python importing eventlet and swift).
 */
const START_TIMEOUT_MS = 90_000;
type Kind = (typeof SERVERS)[number];

const PROGRAMS = [
  '/usr/bin/memcached',
  '/usr/bin/swift-ring-builder',
  '/usr/bin/swift-proxy-server',
  ...SERVERS.map((kind) => `/usr/bin/swift-${kind}-server`),
];

/** A throwaway one-node OpenStack Swift with its S3 API, on 127.0.0.1. */
export interface SwiftEngine {
  /** The S3 endpoint (the proxy), e.g. http://127.0.0.1:PORT. */
  endpoint: string;
  /** Stops the proxy only (the object store "down"); startProxy() brings it back. */
  stopProxy(): Promise<void>;
  startProxy(): Promise<void>;
  /** The last lines the proxy and the other servers printed (warnings and errors): why it failed. */
  output(): string;
  /** Stops every server and removes the temp dir. Idempotent. */
  close(): Promise<void>;
}

/**
 * The suite runner's Swift (test/run-suite.ts), shared by the test files of one run: its S3
 * endpoint, http://127.0.0.1:PORT. Unset: each file starts its own.
 */
export const SHARED_SWIFT_ENV = 'FT_TEST_SWIFT_ENDPOINT';

/**
 * The suite's shared Swift if the runner set {@link SHARED_SWIFT_ENV}, else a private one
 * (startSwift). Each test uses buckets of its own names (freshBucket). A test that stops
 * the proxy starts a private Swift itself: the shared one refuses stopProxy() and
 * startProxy(), and its close() leaves it running.
 */
export async function swiftForTest(): Promise<SwiftEngine> {
  const endpoint = process.env[SHARED_SWIFT_ENV];
  if (!endpoint) return startSwift();
  const refuse = async (): Promise<never> => {
    throw new Error(
      `the suite's shared Swift (${SHARED_SWIFT_ENV}) is not stopped by a test: start a private one (startSwift)`,
    );
  };
  return {
    endpoint,
    stopProxy: refuse,
    startProxy: refuse,
    output: () => '',
    close: async () => {},
  };
}

/** Why Swift cannot be started here (a missing program), or undefined. */
export async function swiftMissing(): Promise<string | undefined> {
  const missing = await missingProgram(PROGRAMS);
  if (missing !== undefined) {
    return `${missing} is not installed (apt-get install memcached swift swift-proxy swift-object swift-container swift-account)`;
  }
  return undefined;
}

/**
 * The config of one Swift server: the [DEFAULT] section every server shares (loopback,
 * one process, quiet logs), then its pipeline and `sections`. `devices`: the storage
 * servers' devices dir (the proxy has none).
 */
function swiftConf(
  dir: string,
  name: string,
  port: number,
  pipeline: string,
  sections: string,
  devices = true,
): string {
  return `[DEFAULT]
bind_ip = 127.0.0.1
bind_port = ${port}
workers = 0
user = root
swift_dir = ${dir}
${devices ? `devices = ${dir}/devices\nmount_check = false\n` : ''}log_name = ${name}
log_level = WARNING

[pipeline:main]
pipeline = ${pipeline}

${sections}`;
}

const serverConf = (dir: string, kind: Kind, port: number): string =>
  swiftConf(
    dir,
    `${kind}-server`,
    port,
    `${kind}-server`,
    `[app:${kind}-server]\nuse = egg:swift#${kind}\n`,
  );

/** The proxy's middlewares that need no option: [filter:NAME] with `use = egg:swift#EGG`. */
const PLAIN_FILTERS = [
  ['catch_errors', 'catch_errors'],
  ['gatekeeper', 'gatekeeper'],
  ['healthcheck', 'healthcheck'],
  ['proxy-logging', 'proxy_logging'],
  ['listing_formats', 'listing_formats'],
  ['bulk', 'bulk'],
  ['copy', 'copy'],
  ['slo', 'slo'],
  ['dlo', 'dlo'],
] as const;

/**
 * The proxy's config. `memcachePort`: the node's own memcached (startSwift), where the
 * proxy keeps account and container info as a deployed Swift does. Without one the `cache`
 * middleware tries 127.0.0.1:11211 on each request, and the proxy asks the account and
 * container servers on every object request, which was most of Swift's CPU here.
 */
const proxyConf = (dir: string, port: number, memcachePort: number): string =>
  swiftConf(
    dir,
    'proxy-server',
    port,
    'catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk s3api tempauth copy slo dlo proxy-logging proxy-server',
    `[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:s3api]
use = egg:swift#s3api
location = ${SWIFT_S3_REGION}

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:${memcachePort}

${PLAIN_FILTERS.map(([name, egg]) => `[filter:${name}]\nuse = egg:swift#${egg}\n`).join('')}`,
    false,
  );

/**
 * One Swift 2.30 node in a temp dir, as ENGINES.md describes it: a ring per server kind
 * (one device), account, container and object servers, a memcached of its own, and a proxy
 * whose pipeline has s3api before tempauth. Ready when every server accepts connections and
 * the proxy's healthcheck answers OK (about 5 s here).
 */
export async function startSwift(): Promise<SwiftEngine> {
  const dir = await tempDir('ft-swift-');
  await mkdir(path.join(dir, 'devices', 'd1'), { recursive: true });
  await writeFile(
    path.join(dir, 'swift.conf'),
    '[swift-hash]\nswift_hash_path_suffix = ft-test\nswift_hash_path_prefix = ft-test\n\n' +
      '[storage-policy:0]\nname = Policy-0\ndefault = yes\n',
  );
  const ports = Object.fromEntries(
    await Promise.all(SERVERS.map(async (kind) => [kind, await freePort()] as const)),
  ) as Record<Kind, number>;
  for (const kind of SERVERS) {
    const builder = path.join(dir, `${kind}.builder`);
    await run('/usr/bin/swift-ring-builder', [builder, 'create', '6', '1', '0']);
    await run('/usr/bin/swift-ring-builder', [
      builder,
      'add',
      `r1z1-127.0.0.1:${ports[kind]}/d1`,
      '100',
    ]);
    // Exits 1 with a warning about a single replica; the ring is written all the same.
    await run('/usr/bin/swift-ring-builder', [builder, 'rebalance']).catch((err: unknown) => {
      if ((err as { code?: number }).code !== 1) throw err;
    });
    await writeFile(path.join(dir, `${kind}-server.conf`), serverConf(dir, kind, ports[kind]));
  }
  const [proxyPort, memcachePort] = await Promise.all([freePort(), freePort()]);
  await writeFile(path.join(dir, 'proxy-server.conf'), proxyConf(dir, proxyPort, memcachePort));
  const endpoint = `http://127.0.0.1:${proxyPort}`;

  const servers: EngineProcess[] = [];
  let proxy: EngineProcess | undefined;
  const startProxy = async (): Promise<void> => {
    // --verbose: its warnings and errors on stderr too (there is no syslog here), for output().
    const proc = spawnEngine('/usr/bin/swift-proxy-server', [
      path.join(dir, 'proxy-server.conf'),
      '--verbose',
    ]);
    proxy = proc;
    await waitFor(
      async () => {
        if (proc.child.exitCode !== null) throw new Error(`swift proxy exited: ${proc.output()}`);
        const res = await fetch(`${endpoint}/healthcheck`).catch(() => undefined);
        return res?.status === 200 && (await res.text()) === 'OK';
      },
      START_TIMEOUT_MS,
      () => `swift proxy did not answer in 90 s: ${proc.output()}`,
    );
  };
  const stopProxy = async (): Promise<void> => {
    const proc = proxy;
    proxy = undefined;
    if (!proc) return;
    // SIGTERM ends it in well under a second; a wedged one is killed.
    const timer = setTimeout(() => void proc.stop('SIGKILL'), 10_000);
    await proc.stop();
    clearTimeout(timer);
  };
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await Promise.all([stopProxy(), ...servers.map((s) => s.stop())]);
      await rm(dir, { recursive: true, force: true });
    })();
    return closing;
  };
  try {
    // Its own memcached, on loopback only, no UDP, 64 MiB; `-u nobody` only takes effect
    // when run as root, which memcached otherwise refuses.
    servers.push(
      spawnEngine('/usr/bin/memcached', [
        '-u',
        'nobody',
        '-l',
        '127.0.0.1',
        '-p',
        String(memcachePort),
        '-U',
        '0',
        '-m',
        '64',
      ]),
    );
    for (const kind of SERVERS) {
      const proc = spawnEngine(`/usr/bin/swift-${kind}-server`, [
        path.join(dir, `${kind}-server.conf`),
        '--verbose',
      ]);
      servers.push(proc);
    }
    await waitFor(
      async () => {
        const dead = servers.find((s) => s.child.exitCode !== null);
        if (dead) throw new Error(`a swift server exited: ${dead.output()}`);
        const listening = [memcachePort, ...SERVERS.map((kind) => ports[kind])];
        return (await Promise.all(listening.map((port) => accepts(port)))).every(Boolean);
      },
      START_TIMEOUT_MS,
      () =>
        `swift servers or memcached did not listen in 90 s: ${servers.map((s) => s.output()).join('\n')}`,
    );
    await startProxy();
  } catch (err) {
    await close();
    throw err;
  }
  const output = (): string =>
    [proxy, ...servers].map((p) => p?.output().slice(-2000) ?? '').join('\n---\n');
  return { endpoint, stopProxy, startProxy, output, close };
}
