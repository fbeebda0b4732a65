import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { FiletrackerClient } from '@filetracker/shared-protocol';
import { makeFtRoot, runMigrate, smallTreeFiles } from './helpers/migrate-tree.js';
import { startServer } from './helpers/server.js';

/**
 * A module hook (node --import) that says on stderr which of the modules we watch the
 * process loads: got's, and the uploader's (proof that the hook ran at all): the bundle
 * that holds it (scripts/bundle-migrate.mjs), or dist/uploader.js without one.
 */
const WATCH_HOOK = `
import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(\`
export async function load(url, context, next) {
  if (url.includes('/node_modules/got/')) process.stderr.write('LOADED got ' + url + '\\\\n');
  if (url.endsWith('/migrate/dist/ft-migrate.bundle.mjs') || url.endsWith('/migrate/dist/uploader.js')) {
    process.stderr.write('LOADED uploader ' + url + '\\\\n');
  }
  return next(url, context);
}\`));
`;

test('ft-migrate uploads through node:http and the got-free /wire entry alone: a run loads no module of got (issue 15)', async (t) => {
  const files = smallTreeFiles(5, 'lean');
  const ftRoot = await makeFtRoot(t, files);
  const hook = path.join(ftRoot, 'watch-hook.mjs');
  await writeFile(hook, WATCH_HOOK);
  const server = await startServer();
  t.after(() => server.close());

  const run = await runMigrate(['./files', server.url], {
    cwd: ftRoot,
    env: { NODE_OPTIONS: `--import ${pathToFileURL(hook).href}` },
  });
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /LOADED uploader/);
  assert.doesNotMatch(run.stderr, /LOADED got/);
  // Nor does the bundle hold got's code, which the hook would not see load.
  const bundle = /LOADED uploader (\S+ft-migrate\.bundle\.mjs)/.exec(run.stderr)?.[1];
  if (bundle !== undefined) {
    const text = await readFile(fileURLToPath(bundle), 'utf8');
    assert.ok(text.length > 10_000, 'the bundle was read');
    assert.equal(text.includes('/node_modules/got/'), false, 'got is not bundled');
  }

  // What it sent is what the got client reads back: the PUTs went out as the wire says.
  const client = new FiletrackerClient(server.url);
  t.after(() => client.close());
  for (const file of files) {
    const { data } = await client.getBuffer(`/${file.name}`);
    assert.ok(data.equals(file.content), file.name);
  }
});
