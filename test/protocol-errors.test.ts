import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BadRequestError,
  FiletrackerError,
  NotFoundError,
  oneLine,
} from '@filetracker/shared-protocol';

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
