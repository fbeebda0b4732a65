import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  BackendUnavailableError,
  BadRequestError,
  ConflictError,
  DeletedError,
  FallbackError,
  FileTooLargeError,
  FiletrackerClient,
  FiletrackerError,
  InsufficientStorageError,
  MethodNotAllowedError,
  NotFoundError,
  StoreNotWritableError,
  errorAnswer,
  type FiletrackerErrorCode,
} from '@filetracker/shared-protocol';

/** Every error class of the protocol, with the status and code its answer must carry. */
const CASES: { error: FiletrackerError; status: number; code: FiletrackerErrorCode }[] = [
  { error: new BadRequestError('BAD_CHECKSUM', 'bad digest'), status: 400, code: 'BAD_CHECKSUM' },
  { error: new BadRequestError('MISSING_DATE', 'no date'), status: 400, code: 'MISSING_DATE' },
  { error: new NotFoundError('File not found'), status: 404, code: 'NOT_FOUND' },
  { error: new NotFoundError('no dir', 'NOT_A_DIRECTORY'), status: 404, code: 'NOT_A_DIRECTORY' },
  {
    error: new MethodNotAllowedError('POST', ['GET', 'HEAD']),
    status: 405,
    code: 'METHOD_NOT_ALLOWED',
  },
  { error: new ConflictError('a file is in the way'), status: 409, code: 'PATH_CONFLICT' },
  { error: new DeletedError('deleted during the migration'), status: 410, code: 'DELETED' },
  { error: new FileTooLargeError('over --max-file-size'), status: 413, code: 'FILE_TOO_LARGE' },
  {
    error: new StoreNotWritableError('ft-tmp/ is read-only'),
    status: 503,
    code: 'STORE_NOT_WRITABLE',
  },
  {
    error: new FallbackError('FALLBACK_UNREACHABLE', 'down'),
    status: 502,
    code: 'FALLBACK_UNREACHABLE',
  },
  { error: new FallbackError('FALLBACK_TIMEOUT', 'slow'), status: 504, code: 'FALLBACK_TIMEOUT' },
  {
    error: new FallbackError('FALLBACK_CANNOT_LIST', 'no /list'),
    status: 502,
    code: 'FALLBACK_CANNOT_LIST',
  },
  {
    error: new BackendUnavailableError('database: down'),
    status: 503,
    code: 'BACKEND_UNAVAILABLE',
  },
  { error: new InsufficientStorageError('disk full'), status: 507, code: 'INSUFFICIENT_STORAGE' },
];

/**
 * 5xx answers whose reason is shown: the operator's to act on (a store refusing writes, a
 * fallback or a backend service down) and worded to name no path, address or credential.
 * Every other 5xx reason is hidden.
 */
const SHOWN_5XX = new Set<FiletrackerErrorCode>([
  'STORE_NOT_WRITABLE',
  'FALLBACK_UNREACHABLE',
  'FALLBACK_TIMEOUT',
  'FALLBACK_CANNOT_LIST',
  'BACKEND_UNAVAILABLE',
]);

/** An error of the machine, as fs reports it. */
function errno(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code });
}

describe('errorAnswer', () => {
  for (const { error, status, code } of CASES) {
    it(`${error.name} ${code} is ${status} with X-Error-Code ${code}`, () => {
      const answer = errorAnswer(error);
      assert.equal(answer.status, status);
      assert.equal(answer.headers['X-Error-Code'], code);
      assert.equal(answer.headers['Content-Type'], 'text/plain; charset=utf-8');
      assert.equal(answer.logged, status >= 500);
      // 4xx reasons are the client's; a 5xx one is hidden, but for those in SHOWN_5XX.
      const reason = answer.headers['X-Exception'];
      if (status < 500 || SHOWN_5XX.has(code)) assert.equal(reason, error.message);
      else assert.ok(!reason?.includes(error.message), reason);
      assert.equal(answer.body, reason + '\n');
    });
  }

  it('a 405 carries its Allow header', () => {
    const answer = errorAnswer(new MethodNotAllowedError('PUT', ['GET', 'HEAD']));
    assert.equal(answer.headers['Allow'], 'GET, HEAD');
  });

  it('a plain Error is 500 SERVER_ERROR and does not show its message', () => {
    const answer = errorAnswer(new Error('open /srv/ft/blobs/ab/cd: EIO'));
    assert.equal(answer.status, 500);
    assert.equal(answer.headers['X-Error-Code'], 'SERVER_ERROR');
    assert.ok(answer.logged);
    assert.ok(!JSON.stringify(answer).includes('/srv/ft'), JSON.stringify(answer));
    assert.ok(!errorAnswer('a thrown string').body.includes('thrown'));
  });

  it('a full disk is 507 INSUFFICIENT_STORAGE: ENOSPC, EDQUOT, LevelDB, or as a cause', () => {
    const full = [
      errno('ENOSPC', 'ENOSPC: no space left on device, write /srv/ft/blobs/x'),
      errno('EDQUOT', 'EDQUOT: disk quota exceeded'),
      new Error('IO error: /srv/ft/db/000012.log: No space left on device'),
      new Error('could not store the link', { cause: errno('ENOSPC', 'no space') }),
    ];
    for (const err of full) {
      const answer = errorAnswer(err);
      assert.equal(answer.status, 507, String(err));
      assert.equal(answer.headers['X-Error-Code'], 'INSUFFICIENT_STORAGE');
      assert.ok(!answer.body.includes('/srv/ft'), answer.body);
    }
  });

  it('a foreign error carrying a 4xx status shows it, with the code of that status', () => {
    const answer = errorAnswer(Object.assign(new Error('Not here'), { status: 404 }));
    assert.equal(answer.status, 404);
    assert.equal(answer.headers['X-Error-Code'], 'NOT_FOUND');
    assert.equal(answer.headers['X-Exception'], 'Not here');
    const big = errorAnswer(Object.assign(new Error('upstream /x'), { status: 503 }));
    assert.equal(big.status, 500);
    assert.ok(!big.body.includes('/x'));
  });

  it('keeps the reason on one latin-1-safe line in the header and the body', () => {
    const answer = errorAnswer(new BadRequestError('BAD_PATH', 'Bad "/zażółć"\r\nsecond line'));
    assert.match(answer.headers['X-Exception']!, /^[\x20-\x7e]*$/);
    assert.equal(answer.body, answer.headers['X-Exception'] + '\n');
  });
});

describe('errorAnswer and the client are mirrors', () => {
  let url: string;
  const server = createServer((req, res) => {
    const index = Number(new URL(req.url!, 'http://x').pathname.split('/').pop());
    const error = index >= 0 && index < CASES.length ? CASES[index]!.error : new Error('x');
    const answer = errorAnswer(error);
    res.writeHead(answer.status, answer.headers);
    res.end(req.method === 'HEAD' ? undefined : answer.body);
  });

  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  it('an answer written from errorAnswer gives the client back the same code, status and reason', async () => {
    const client = new FiletrackerClient(url, { retries: 0 });
    try {
      for (const [i, { error, status, code }] of CASES.entries()) {
        await assert.rejects(client.getBuffer(`/${i}`), (thrown: unknown) => {
          assert.ok(thrown instanceof FiletrackerError, String(thrown));
          assert.equal(thrown.code, code);
          assert.equal(thrown.status, status);
          if (status < 500) assert.equal(thrown.message, error.message);
          return true;
        });
      }
      await assert.rejects(client.getBuffer('/plain'), { code: 'SERVER_ERROR', status: 500 });
    } finally {
      client.close();
    }
  });
});
