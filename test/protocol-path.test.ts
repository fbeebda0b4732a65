import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  FiletrackerError,
  encodeName,
  normalizeName,
  parseRequestPath,
  type FiletrackerErrorCode,
} from '@filetracker/shared-protocol';

function assertRejects(rawPath: string, code: FiletrackerErrorCode): void {
  assert.throws(
    () => parseRequestPath(rawPath),
    (err: unknown) => err instanceof FiletrackerError && err.code === code && err.status === 400,
    rawPath,
  );
}

function target(rawPath: string): { endpoint: string; name: string; components: string[] } {
  const { endpoint, name, components } = parseRequestPath(rawPath);
  return { endpoint, name, components };
}

describe('request path grammar (PROTOCOL.md "Path grammar")', () => {
  describe('percent-decoding', () => {
    it('decodes %20 to a space and %2B to a plus', () => {
      assert.equal(parseRequestPath('/files/dir%20one/a%2Bb').name, '/dir one/a+b');
    });

    it('keeps a literal + in the path (not a space: form-encoding is for the query only)', () => {
      assert.equal(parseRequestPath('/files/a+b').name, '/a+b');
    });

    it('decodes UTF-8 byte escapes, in either hex case', () => {
      assert.equal(parseRequestPath('/files/za%C5%BC%C3%B3%C5%82%C4%87.txt').name, '/zażółć.txt');
      assert.equal(parseRequestPath('/files/za%c5%bc').name, '/zaż');
    });

    it('accepts characters that arrive unescaped', () => {
      assert.equal(parseRequestPath('/files/zaż ółć').name, '/zaż ółć');
    });

    it('decodes %2F to / before splitting, into separate components', () => {
      assert.deepEqual(target('/files/a%2Fb'), {
        endpoint: 'files',
        name: '/a/b',
        components: ['a', 'b'],
      });
    });

    it('decodes %2F before the endpoint is found, too', () => {
      assert.equal(parseRequestPath('%2Ffiles%2Fa').name, '/a');
      assert.equal(parseRequestPath('/ft%2F%2Ffiles/a').name, '/a');
    });

    it('keeps a stray % that does not start an escape', () => {
      assert.equal(parseRequestPath('/files/100%').name, '/100%');
      assert.equal(parseRequestPath('/files/a%zz').name, '/a%zz');
      assert.equal(parseRequestPath('/files/%4').name, '/%4');
      assert.equal(parseRequestPath('/files/%%41').name, '/%A');
    });

    it('decodes %25 to a single %, once', () => {
      assert.equal(parseRequestPath('/files/100%2541').name, '/100%41');
    });
  });

  describe('trailing slash', () => {
    it('drops one trailing slash', () => {
      assert.deepEqual(target('/files/a/'), { endpoint: 'files', name: '/a', components: ['a'] });
      assert.equal(parseRequestPath('/version/').endpoint, 'version');
    });

    it('drops only one: two more leave a // whose empty remainder is no endpoint', () => {
      assertRejects('/files/a///', 'UNKNOWN_ENDPOINT');
    });

    it('serves /list, /list/ and //list/ as the root', () => {
      for (const raw of ['/list', '/list/', '//list/', '//list']) {
        assert.deepEqual(target(raw), { endpoint: 'list', name: '/', components: [] }, raw);
      }
    });
  });

  describe('the last // rule', () => {
    it('serves a base URL with a trailing slash (//files/a)', () => {
      assert.deepEqual(target('//files/a'), { endpoint: 'files', name: '/a', components: ['a'] });
    });

    it('serves a base URL with a prefix (/ft//files/a)', () => {
      assert.deepEqual(target('/ft//files/a'), {
        endpoint: 'files',
        name: '/a',
        components: ['a'],
      });
      assert.equal(parseRequestPath('/a/b/c//files/x/y').name, '/x/y');
    });

    it('finds the version endpoint at //version/ and /prefix//version', () => {
      for (const raw of ['//version/', '/prefix//version', '/prefix//version/', '//version']) {
        assert.equal(parseRequestPath(raw).endpoint, 'version', raw);
      }
    });

    it('keeps only what follows the last //, even when an earlier one looks like a request', () => {
      assert.deepEqual(target('/files/a//list/b'), {
        endpoint: 'list',
        name: '/b',
        components: ['b'],
      });
      assert.equal(parseRequestPath('//files/x//files/y').name, '/y');
    });

    it('treats a run of slashes as one last //', () => {
      assert.equal(parseRequestPath('///files/a').name, '/a');
      assert.equal(parseRequestPath('/ft///files/a').name, '/a');
    });

    it('splits an empty component inside a name as a //', () => {
      assert.equal(parseRequestPath('/files/a//files/b').name, '/b');
      assertRejects('/files/a//b', 'UNKNOWN_ENDPOINT');
    });
  });

  describe('endpoints', () => {
    it('knows files, list, version and status', () => {
      assert.equal(parseRequestPath('/files/x').endpoint, 'files');
      assert.equal(parseRequestPath('/list/x').endpoint, 'list');
      assert.equal(parseRequestPath('/version').endpoint, 'version');
      assert.equal(parseRequestPath('/status').endpoint, 'status');
    });

    it('answers /version with any suffix', () => {
      assert.deepEqual(target('/version/x'), { endpoint: 'version', name: '/', components: [] });
      assert.equal(parseRequestPath('/version/x/y/z').endpoint, 'version');
    });

    it('rejects an unknown endpoint with UNKNOWN_ENDPOINT, status 400', () => {
      for (const raw of ['/', '', '/FILES/x', '/Files/x', '/listC', '/file/x', '/versions', '/x']) {
        assertRejects(raw, 'UNKNOWN_ENDPOINT');
      }
    });

    it('splits the name into components', () => {
      assert.deepEqual(target('/files/problems/12/tests/in/1a.in'), {
        endpoint: 'files',
        name: '/problems/12/tests/in/1a.in',
        components: ['problems', '12', 'tests', 'in', '1a.in'],
      });
    });

    it('gives an empty name for /files and /files/', () => {
      assert.deepEqual(target('/files'), { endpoint: 'files', name: '/', components: [] });
      assert.deepEqual(target('/files/'), { endpoint: 'files', name: '/', components: [] });
    });
  });

  describe('dot components', () => {
    it('rejects a .. component with BAD_PATH, status 400', () => {
      for (const raw of [
        '/files/..',
        '/files/../a',
        '/files/a/../b',
        '/files/a/..',
        '/list/..',
        '/version/..',
      ]) {
        assertRejects(raw, 'BAD_PATH');
      }
    });

    it('rejects an encoded .. (%2E%2E, or hidden by %2F)', () => {
      assertRejects('/files/a/%2E%2E/b', 'BAD_PATH');
      assertRejects('/files/a/%2e%2e', 'BAD_PATH');
      assertRejects('/files/a%2F..%2Fb', 'BAD_PATH');
    });

    it('checks .. before the last // rule, as the Python server does', () => {
      assertRejects('/x/..//files/a', 'BAD_PATH');
    });

    it('accepts components that merely contain dots', () => {
      assert.equal(parseRequestPath('/files/.../..a/a..').name, '/.../..a/a..');
      assert.equal(parseRequestPath('/files/.hidden').name, '/.hidden');
    });

    it('drops a . component (/files/a/./b is /a/b)', () => {
      assert.deepEqual(target('/files/a/./b'), {
        endpoint: 'files',
        name: '/a/b',
        components: ['a', 'b'],
      });
      assert.equal(parseRequestPath('/files/./a').name, '/a');
      assert.equal(parseRequestPath('/files/a/.').name, '/a');
      assert.equal(parseRequestPath('/files/%2E/a').name, '/a');
    });
  });

  describe('bytes a name may not hold', () => {
    it('rejects NUL with BAD_PATH', () => {
      assertRejects('/files/a%00b', 'BAD_PATH');
      assertRejects('/files/%00', 'BAD_PATH');
    });

    it('rejects invalid UTF-8 with BAD_PATH', () => {
      for (const raw of [
        '/files/%ff',
        '/files/a%C5',
        '/files/%C5%28',
        '/files/%C0%AF',
        '/files/%ED%A0%80',
      ]) {
        assertRejects(raw, 'BAD_PATH');
      }
    });
  });
});

describe('encodeName', () => {
  const names = [
    '/plain/name.txt',
    '/dir one/file two.txt',
    '/a+b',
    '/what?.txt',
    '/hash#tag',
    '/100%',
    '/100%25',
    '/%2F',
    '/zażółć/gęślą jaźń',
    '/日本語/ファイル',
    '/emoji 😀',
    "/punct !'()*;:@&=$,~",
    '/tab\there',
    '/a.b/c-d/e_f/~g',
  ];

  it('encodes as Python quote(name, safe="/") does (wire capture)', () => {
    assert.equal(
      encodeName('/wire/dir one/zażółć.txt'),
      '/wire/dir%20one/za%C5%BC%C3%B3%C5%82%C4%87.txt',
    );
    assert.equal(encodeName('/a+b?c#d%e'), '/a%2Bb%3Fc%23d%25e');
    assert.equal(encodeName("/!'()*"), '/%21%27%28%29%2A');
    assert.equal(encodeName('/a.b/c-d/e_f/~g'), '/a.b/c-d/e_f/~g');
  });

  it('leaves nothing a URL would reinterpret', () => {
    for (const name of names) {
      assert.match(encodeName(name), /^[A-Za-z0-9\-._~%/]*$/, name);
    }
  });

  it('round-trips with parseRequestPath, with and without a prefix', () => {
    for (const name of names) {
      assert.equal(parseRequestPath('/files' + encodeName(name)).name, name, name);
      assert.equal(parseRequestPath('//files' + encodeName(name)).name, name, name);
      assert.equal(parseRequestPath('/ft//files' + encodeName(name)).name, name, name);
      assert.equal(parseRequestPath('/list' + encodeName(name)).name, name, name);
    }
  });
});

describe('normalizeName', () => {
  it('adds a leading slash and drops . components and a trailing slash', () => {
    assert.equal(normalizeName('a/b'), '/a/b');
    assert.equal(normalizeName('/a/./b/'), '/a/b');
    assert.equal(normalizeName('/'), '/');
    assert.equal(normalizeName(''), '/');
  });

  it('rejects .., NUL and an empty component with BAD_PATH', () => {
    for (const name of ['/a/../b', '..', '/a\0b', '/a//b']) {
      assert.throws(
        () => normalizeName(name),
        (err: unknown) => err instanceof FiletrackerError && err.code === 'BAD_PATH',
        JSON.stringify(name),
      );
    }
  });
});
