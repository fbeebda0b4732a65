import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { CliError } from '@filetracker/runtime';
import {
  BadRequestError,
  FiletrackerError,
  NotFoundError,
  oneLine,
} from '@filetracker/shared-protocol';
import { REPO_ROOT } from './helpers/server.js';

/**
 * A second copy of one of our dist modules, as the ft-migrate bundle and the packages it
 * loads lazily hold side by side (scripts/bundle-migrate.mjs): the same file under another URL.
 */
async function secondCopy<T>(relative: string): Promise<T> {
  const url = pathToFileURL(path.join(REPO_ROOT, relative)).href;
  return (await import(`${url}?second-copy`)) as T;
}

describe('error reasons', () => {
  it('are one latin-1-safe line, whatever the name in them', () => {
    const message = oneLine('File "/zażółć 😀\ud800 x"\r\nnot found');
    assert.match(message, /^[\x20-\x7e]*$/);
    assert.ok(message.includes('za%C5%BC%C3%B3%C5%82%C4%87 %F0%9F%98%80'), message);
  });

  it('carry code and status on each class', () => {
    const bad = new BadRequestError('BAD_PATH', 'no');
    assert.equal(bad.code, 'BAD_PATH');
    assert.equal(bad.status, 400);
    assert.ok(bad instanceof FiletrackerError);
    const absent = new NotFoundError('gone', undefined, bad);
    assert.equal(absent.code, 'NOT_FOUND');
    assert.equal(absent.status, 404);
    assert.equal(absent.cause, bad);
    assert.equal(absent.expose, true);
    assert.equal(new FiletrackerError('x', { code: 'SERVER_ERROR', status: 500 }).expose, false);
  });
});

describe('errors made by another copy of their module (the bundled ft-migrate)', () => {
  it('are instances of FiletrackerError and CliError; subclasses are checked within a copy', async () => {
    const copy = await secondCopy<typeof import('@filetracker/shared-protocol/wire')>(
      'packages/shared-protocol/dist/errors.js',
    );
    assert.notEqual(copy.FiletrackerError, FiletrackerError, 'a second copy indeed');
    const theirs = new copy.NotFoundError('gone');
    assert.ok(theirs instanceof FiletrackerError);
    assert.ok(new NotFoundError('gone') instanceof copy.FiletrackerError);
    assert.ok(theirs instanceof copy.NotFoundError);
    assert.equal(theirs instanceof NotFoundError, false);
    assert.equal(new NotFoundError('gone') instanceof BadRequestError, false);
    assert.ok(new BadRequestError('BAD_PATH', 'no') instanceof BadRequestError);
    // Look-alikes are not: only the mark counts.
    const lookAlike = Object.assign(new Error('gone'), {
      name: 'FiletrackerError',
      code: 'NOT_FOUND',
      status: 404,
    });
    assert.equal(lookAlike instanceof FiletrackerError, false);
    assert.equal((null as unknown) instanceof FiletrackerError, false);

    const cli = await secondCopy<typeof import('@filetracker/runtime')>(
      'packages/runtime/dist/cli-error.js',
    );
    assert.notEqual(cli.CliError, CliError, 'a second copy indeed');
    assert.ok(new cli.CliError('STORE_LOCKED', 'held') instanceof CliError);
    assert.ok(new CliError('STORE_LOCKED', 'held') instanceof cli.CliError);
    assert.equal(new Error('held') instanceof CliError, false);
  });
});
