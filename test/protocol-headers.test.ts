import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  FiletrackerError,
  acceptsGzip,
  isGzipEncoding,
  parseChecksumHeader,
  parseLogicalSizeHeader,
  type FiletrackerErrorCode,
} from '@filetracker/shared-protocol';

function isError(code: FiletrackerErrorCode): (err: unknown) => boolean {
  return (err) => err instanceof FiletrackerError && err.code === code && err.status === 400;
}

const DIGEST = 'f1492f18c6e3615e7b8dfb491fa3ca64af3076683a406ed114ab3c48421e9335';

describe('SHA256-Checksum', () => {
  it('accepts 64 hex digits', () => {
    assert.equal(parseChecksumHeader(DIGEST), DIGEST);
  });

  it('lowercases uppercase hex', () => {
    assert.equal(parseChecksumHeader(DIGEST.toUpperCase()), DIGEST);
    assert.equal(parseChecksumHeader('F1492f18' + DIGEST.slice(8)), DIGEST);
  });

  it('is optional', () => {
    assert.equal(parseChecksumHeader(undefined), undefined);
  });

  it('rejects anything but 64 hex digits with BAD_CHECKSUM, status 400', () => {
    for (const value of [
      '',
      DIGEST.slice(1),
      DIGEST + '0',
      DIGEST.slice(1) + 'g',
      DIGEST.slice(2) + '  ',
      '../../../etc/passwd',
      `${DIGEST.slice(0, 32)} ${DIGEST.slice(33)}`,
    ]) {
      assert.throws(() => parseChecksumHeader(value), isError('BAD_CHECKSUM'), value);
    }
  });
});

describe('Logical-Size', () => {
  it('reads a whole number of bytes', () => {
    assert.equal(parseLogicalSizeHeader('0'), 0);
    assert.equal(parseLogicalSizeHeader('87'), 87);
    assert.equal(parseLogicalSizeHeader('5368709120'), 5 * 2 ** 30);
    assert.equal(parseLogicalSizeHeader(String(Number.MAX_SAFE_INTEGER)), Number.MAX_SAFE_INTEGER);
  });

  it('is optional', () => {
    assert.equal(parseLogicalSizeHeader(undefined), undefined);
  });

  it('rejects anything else with BAD_HEADER, status 400', () => {
    for (const value of [
      '',
      '-1',
      '1.5',
      '1e3',
      '0x10',
      'abc',
      '12 34',
      '99999999999999999',
      '9007199254740993',
    ]) {
      assert.throws(() => parseLogicalSizeHeader(value), isError('BAD_HEADER'), value);
    }
  });
});

describe('isGzipEncoding', () => {
  it('is true for gzip', () => {
    assert.equal(isGzipEncoding('gzip'), true);
  });

  it('is false for anything else, which means a plain body', () => {
    for (const value of [undefined, '', 'identity', 'deflate', 'br', 'x-gzip', 'gzip, identity']) {
      assert.equal(isGzipEncoding(value), false, String(value));
    }
  });
});

describe('acceptsGzip', () => {
  it("is true for the Python client's gzip, deflate", () => {
    assert.equal(acceptsGzip('gzip, deflate'), true);
  });

  it('is true for gzip, x-gzip or * with a non-zero q', () => {
    for (const value of [
      'gzip',
      'GZIP',
      'x-gzip',
      '*',
      'deflate, gzip;q=0.5',
      'gzip;q=0.001',
      'gzip;q=1',
      'br;q=1.0, *;q=0.1',
      '*;q=0, gzip',
    ]) {
      assert.equal(acceptsGzip(value), true, value);
    }
  });

  it('is false without gzip, or with q=0', () => {
    for (const value of [
      undefined,
      '',
      'identity',
      'deflate',
      'br, deflate',
      'gzip;q=0',
      'gzip; q=0',
      'gzip ;q=0',
      'gzip;q=0.000',
      'x-gzip;q=0',
      '*;q=0',
      'deflate, *;q=0',
    ]) {
      assert.equal(acceptsGzip(value), false, String(value));
    }
  });

  it('lets an explicit gzip;q=0 win over *, in either order', () => {
    assert.equal(acceptsGzip('*, gzip;q=0'), false);
    assert.equal(acceptsGzip('gzip;q=0, *'), false);
  });
});
