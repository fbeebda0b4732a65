import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { accepts } from './helpers/engines.js';
import { scaleOutMissing } from './helpers/scale-out.js';
import { tempDir } from './helpers/server.js';
import { exitWithin, sleep, spawnBin, waitFor } from './helpers/store-traffic.js';

// The suite runner (test/run-suite.ts, `pnpm test`) starts one PostgreSQL and one Swift for
// the whole run: the test files it runs find them in the environment, and it stops them
// even when it is told to stop in the middle of a run. On real engines; without them this
// skips and says why.

const noEngines = await scaleOutMissing();

test(
  'the suite runner hands its engines to the test files and stops them on SIGTERM mid-run',
  { skip: noEngines },
  async (t) => {
    const dir = await tempDir('ft-run-suite-');
    t.after(() => rm(dir, { recursive: true, force: true }));
    const seen = path.join(dir, 'seen.json');
    // A test file that records what it was given, then runs until it is stopped.
    const fixture = path.join(dir, 'hangs.test.mjs');
    await writeFile(
      fixture,
      `import { writeFileSync } from 'node:fs';
import { test } from 'node:test';
test('runs until stopped', async () => {
  writeFileSync(${JSON.stringify(seen)}, JSON.stringify({
    pg: process.env.FT_TEST_PG_URL,
    swift: process.env.FT_TEST_SWIFT_ENDPOINT,
  }));
  await new Promise((resolve) => setTimeout(resolve, 300_000));
});
`,
    );
    // As `pnpm test` runs it: not inside a test file (node --test would run nothing).
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const runner = spawnBin('test/dist/run-suite.js', [fixture], { env });
    t.after(async () => {
      // SIGTERM first: a SIGKILLed runner would leave its engines running. Bounded: a
      // runner's orphaned children may hold its output open after it died.
      void runner.kill('SIGTERM');
      await Promise.race([runner.exited, sleep(60_000)]);
      void runner.kill();
    });

    // Starting both engines takes seconds, or minutes under the load of several test runs.
    const given = await waitFor(
      'the test file to run with the engines',
      () =>
        readFile(seen, 'utf8')
          .then((text) => JSON.parse(text) as { pg?: string; swift?: string })
          .catch(() => undefined),
      300_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; the runner said: ${runner.stderr()}`);
    });
    assert.match(given.pg ?? '', /^postgres:\/\/ft@127\.0\.0\.1:\d+\/postgres$/, runner.stderr());
    assert.match(given.swift ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
    const pgPort = Number(new URL(given.pg!).port);
    assert.ok(await accepts(pgPort), 'PostgreSQL is up while the tests run');
    const health = await fetch(`${given.swift}/healthcheck`);
    assert.equal(await health.text(), 'OK', 'Swift is up while the tests run');

    runner.child.kill('SIGTERM');
    const { code } = await exitWithin(runner, 60_000);
    assert.equal(code, 128 + 15, runner.stderr());
    assert.match(runner.stderr(), /shared engines stopped/);
    assert.equal(await accepts(pgPort), false, 'PostgreSQL stopped');
    assert.equal(
      await fetch(`${given.swift}/healthcheck`).then(
        () => 'answered',
        () => 'refused',
      ),
      'refused',
      'the Swift proxy stopped',
    );
  },
);

test('the suite runner names each failed test again after the summary, with its suites and message', async (t) => {
  const dir = await tempDir('ft-run-suite-');
  t.after(() => rm(dir, { recursive: true, force: true }));
  const fixture = path.join(dir, 'fails.test.mjs');
  await writeFile(
    fixture,
    `import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
describe('the outer suite', () => {
  describe('an inner suite', () => {
    test('passes', () => {});
    test('compares', () => assert.equal(1 + 1, 3, 'one and one are not three'));
  });
  test('throws', () => { throw new Error('first line\\nsecond line'); });
});
test('passes too', () => {});
`,
  );
  const env: NodeJS.ProcessEnv = { ...process.env, FT_TEST_SHARED_ENGINES: '0' };
  delete env.NODE_TEST_CONTEXT;
  const runner = spawnBin('test/dist/run-suite.js', [fixture], { env });
  t.after(() => void runner.kill());
  const { code } = await exitWithin(runner, 60_000);
  assert.equal(code, 1, runner.stderr());

  // node:test's own summary first (TAP, since the output is not a terminal), then the list.
  const out = runner.stdoutLines.join('\n');
  assert.match(out, /^# pass 2$/m);
  assert.match(out, /^# fail 2$/m, 'the two tests: node:test counts suites apart');
  const file = path.relative(process.cwd(), fixture);
  const listed = runner.stderr().slice(runner.stderr().indexOf('run-suite: 2 tests failed:'));
  assert.deepEqual(listed.split('\n').slice(0, 7), [
    'run-suite: 2 tests failed:',
    `  ${file}: the outer suite > an inner suite > compares`,
    '      one and one are not three',
    '      2 !== 3',
    `  ${file}: the outer suite > throws`,
    '      first line',
    '      second line',
  ]);
  assert.doesNotMatch(runner.stderr(), /passes/);
});
