import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FiletrackerClient } from '@filetracker/shared-protocol';
import { startServer } from './helpers/server.js';

test('put with gzipLevel sends gzip of that level, and the content round-trips', async (t) => {
  const server = await startServer();
  t.after(() => server.close());
  const client = new FiletrackerClient(server.url);
  t.after(() => client.close());
  const content = Buffer.from(
    Array.from({ length: 20_000 }, (_, i) => `${i} ${(i * 7919) % 10007}\n`).join(''),
  );
  await client.put('/fast.txt', content, { version: 1_700_000_000, gzipLevel: 1 });
  await client.put('/small.txt', content, { version: 1_700_000_000, gzipLevel: 9 });
  const storedSize = async (name: string): Promise<number> => {
    const res = await fetch(server.url + '/files' + name, {
      method: 'HEAD',
      headers: { 'accept-encoding': 'gzip' },
    });
    return Number(res.headers.get('content-length'));
  };
  // Same content, one blob: the first upload's gzip (level 1) is what is stored.
  assert.equal(await storedSize('/fast.txt'), await storedSize('/small.txt'));
  assert.deepEqual((await client.getBuffer('/small.txt')).data, content);
  await client.put('/other.txt', Buffer.concat([content, Buffer.from('x')]), {
    version: 1_700_000_000,
    gzipLevel: 9,
  });
  assert.ok((await storedSize('/other.txt')) < (await storedSize('/fast.txt')));
});
