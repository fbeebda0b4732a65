import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLegacyListener } from '@filetracker/legacy-static';
import { httpRequest, type HttpAnswer } from './helpers/legacy-static.js';
import { startServer, type TestServer } from './helpers/server.js';

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** What every error answer of both servers carries (issue 13: one mapping, one place). */
function assertErrorAnswer(answer: HttpAnswer, status: number, code: string): void {
  assert.equal(answer.status, status);
  assert.equal(answer.headers['x-error-code'], code);
  assert.equal(answer.headers['content-type'], 'text/plain; charset=utf-8');
  const reason = answer.headers['x-exception'];
  assert.ok(reason, 'an X-Exception reason');
  assert.equal(answer.body.toString(), reason + '\n');
}

describe('ft-legacy-static answers errors as ft-server does', () => {
  let dir: string;
  let legacy: Server;
  let legacyUrl: string;
  let server: TestServer;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ft-legacy-errors-'));
    await mkdir(join(dir, 'files'));
    await writeFile(join(dir, 'files', 'a.txt'), 'a');
    legacy = createServer(createLegacyListener({ root: dir }));
    legacyUrl = await listen(legacy);
    server = await startServer();
  });
  after(async () => {
    legacy.closeAllConnections();
    legacy.close();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a missing file is 404 with X-Error-Code NOT_FOUND', async () => {
    assertErrorAnswer(await httpRequest(legacyUrl, '/files/missing.txt'), 404, 'NOT_FOUND');
    assertErrorAnswer(await httpRequest(legacyUrl, '/nothing-here'), 404, 'NOT_FOUND');
  });

  it('a path with ".." is 403 with X-Error-Code BAD_PATH', async () => {
    assertErrorAnswer(await httpRequest(legacyUrl, '/files/%2e%2e/a.txt'), 403, 'BAD_PATH');
  });

  it('PUT is 405 METHOD_NOT_ALLOWED with Allow, as ft-server answers a method it lacks', async () => {
    const fromLegacy = await httpRequest(legacyUrl, '/files/a.txt', { method: 'PUT', body: 'x' });
    assertErrorAnswer(fromLegacy, 405, 'METHOD_NOT_ALLOWED');
    assert.equal(fromLegacy.headers['allow'], 'GET, HEAD');
    const fromServer = await httpRequest(server.url, '/version', { method: 'PUT', body: 'x' });
    assertErrorAnswer(fromServer, 405, 'METHOD_NOT_ALLOWED');
    assert.equal(fromServer.headers['allow'], fromLegacy.headers['allow']);
    assert.equal(fromServer.headers['x-exception'], fromLegacy.headers['x-exception']);
  });
});
