import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { describeEachBackend, type BackendServer } from './helpers/backends.js';
import { RawConnection, type RawResponse } from './helpers/server-http.js';
import {
  WIRE_BODY,
  WIRE_CHECKSUM,
  WIRE_LOGICAL_SIZE,
  WIRE_NOW,
  WIRE_VERSION,
  wireRun,
  type WireRequest,
} from './helpers/server-wire-requests.js';

const IMF_FIXDATE =
  /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/;

/** The version a response's `Last-Modified` names (and it is an IMF-fixdate). */
function versionOf(res: RawResponse): number {
  const value = res.headers['last-modified'];
  assert.ok(value, 'Last-Modified present');
  assert.match(value, IMF_FIXDATE);
  return Date.parse(value) / 1000;
}

/** What the Python client reads from a HEAD or GET of the uploaded file. */
function assertStoredFileHeaders(res: RawResponse): void {
  assert.equal(res.status, 200);
  assert.match(res.headers['content-type'] ?? '', /^application\/octet-stream/);
  assert.equal(res.headers['content-encoding'], 'gzip');
  assert.equal(res.headers['content-length'], String(WIRE_BODY.length));
  assert.equal(res.headers['logical-size'], String(WIRE_LOGICAL_SIZE));
  assert.equal(versionOf(res), WIRE_VERSION);
}

/** Sends one captured request on `conn` and reads its answer (HEAD: no body). */
async function replay(conn: RawConnection, req: WireRequest): Promise<RawResponse> {
  await conn.write(req.bytes);
  const res = await conn.readResponse({ head: req.method === 'HEAD' });
  assert.ok(res, `an answer to ${req.label}`);
  return res;
}

/** Checks each answer of a run as the Python client would use it. */
async function replayRun(ft: BackendServer, conn: RawConnection, slash: boolean): Promise<void> {
  const [version, putFile, putNow, head1, head2, get, list, del, getMissing, headMissing] = wireRun(
    slash,
    `127.0.0.1:${ft.port}`,
  );
  const at = (req: WireRequest | undefined) => req!;

  const v = await replay(conn, at(version));
  assert.equal(v.status, 200, 'protocol check');
  assert.match(v.headers['content-type'] ?? '', /^application\/json/);
  assert.equal(v.body.toString(), '{"protocol_versions": [2]}');

  const p1 = await replay(conn, at(putFile));
  assert.equal(p1.status, 200, 'put_file with a version');
  assert.equal(versionOf(p1), WIRE_VERSION);

  const p2 = await replay(conn, at(putNow));
  assert.equal(p2.status, 200, 'put_file with the client clock');
  assert.equal(versionOf(p2), WIRE_NOW);

  // file_version, then file_size (Logical-Size, since the answer is gzip).
  assertStoredFileHeaders(await replay(conn, at(head1)));
  const h2 = await replay(conn, at(head2));
  assertStoredFileHeaders(h2);
  assert.equal(h2.body.length, 0);

  const g = await replay(conn, at(get));
  assertStoredFileHeaders(g);
  assert.deepEqual(g.body, WIRE_BODY, 'get_file gets the uploaded gzip as is');

  const l = await replay(conn, at(list));
  assert.equal(l.status, 200, 'list_remote_files');
  const text = l.body.toString('utf8');
  assert.ok(text.endsWith('\n'));
  assert.deepEqual(text.slice(0, -1).split('\n').sort(), ['dir one/zażółć.txt', 'now.txt']);

  const d = await replay(conn, at(del));
  assert.equal(d.status, 200, 'delete_file');

  for (const req of [at(getMissing), at(headMissing)]) {
    const res = await replay(conn, req);
    // compat: exists() treats any status but 404 as "exists".
    assert.equal(res.status, 404, req.label);
    assert.ok(res.headers['x-exception'], 'X-Exception present (the client shows it)');
    assert.ok(!res.headers['x-exception'].includes(ft.dir), 'no server path in X-Exception');
  }
}

it('the captured upload body of the Python client 2.3.1 is the gzip of 87 bytes with the captured checksum', () => {
  const plain = gunzipSync(WIRE_BODY);
  assert.equal(WIRE_BODY.length, 52);
  assert.equal(plain.length, WIRE_LOGICAL_SIZE);
  assert.equal(createHash('sha256').update(plain).digest('hex'), WIRE_CHECKSUM);
});

// The capture is the protocol as deployed clients speak it: every backend must answer it
// byte for byte (helpers/backends.ts).
describeEachBackend('the Python client 2.3.1 wire capture, replayed byte for byte', (backend) => {
  for (const slash of [false, true]) {
    describe(
      slash ? 'base URL with a trailing slash (// paths)' : 'base URL without a trailing slash',
      () => {
        let ft: BackendServer;
        let conn: RawConnection;
        let reqs: WireRequest[];
        const send = async (i: number) => {
          const req = reqs[i];
          assert.ok(req);
          return replay(conn, req);
        };

        before(async () => {
          ft = await backend.start();
          conn = await RawConnection.open(ft.port);
          reqs = wireRun(slash, `127.0.0.1:${ft.port}`);
        });
        after(async () => {
          conn.destroy();
          await ft.close();
        });

        it('GET /version/ is 200 with exactly {"protocol_versions": [2]}', async () => {
          const res = await send(0);
          assert.equal(res.status, 200);
          assert.match(res.headers['content-type'] ?? '', /^application\/json/);
          assert.equal(res.body.toString(), '{"protocol_versions": [2]}');
        });

        it('PUT of dir one/zażółć.txt@1700000000 (gzip, all hints) is 200 with Last-Modified 1700000000', async () => {
          const res = await send(1);
          assert.equal(res.status, 200);
          assert.equal(versionOf(res), WIRE_VERSION);
        });

        it('PUT of now.txt with the client clock is 200 with Last-Modified = that clock', async () => {
          const res = await send(2);
          assert.equal(res.status, 200);
          assert.equal(versionOf(res), WIRE_NOW);
        });

        it('HEAD (file_version) is 200 with Last-Modified, gzip, Content-Length 52 and Logical-Size 87', async () => {
          assertStoredFileHeaders(await send(3));
        });

        it('HEAD again (file_size) answers the same, and no body follows it', async () => {
          const res = await send(4);
          assertStoredFileHeaders(res);
          assert.equal(res.body.length, 0);
          assert.equal(conn.pending.length, 0, 'no stray body bytes after HEAD');
        });

        it('GET (get_file) returns the same 52 gzip bytes with Content-Encoding gzip', async () => {
          const res = await send(5);
          assertStoredFileHeaders(res);
          assert.deepEqual(res.body, WIRE_BODY);
        });

        it('GET /list/wire lists "dir one/zażółć.txt" and "now.txt", each ending in \\n', async () => {
          const res = await send(6);
          assert.equal(res.status, 200);
          const text = res.body.toString('utf8');
          assert.ok(text.endsWith('\n'));
          assert.deepEqual(text.slice(0, -1).split('\n').sort(), ['dir one/zażółć.txt', 'now.txt']);
        });

        it('DELETE of now.txt with its version is 200 and removes it', async () => {
          const res = await send(7);
          assert.equal(res.status, 200);
        });

        it('GET of a missing name is exactly 404 with X-Exception', async () => {
          const res = await send(8);
          assert.equal(res.status, 404);
          assert.ok(res.headers['x-exception']);
        });

        it('HEAD of a missing name is exactly 404', async () => {
          const res = await send(9);
          assert.equal(res.status, 404);
        });

        it('after the run the store holds only the versioned file, and the connection is still open', async () => {
          assert.equal(conn.ended, false, 'keep-alive honoured');
          const host = `127.0.0.1:${ft.port}`;
          const check = wireRun(slash, host);
          const nowHead = Buffer.from(
            `HEAD ${slash ? '/' : ''}/files/wire/now.txt HTTP/1.1\r\nHost: ${host}\r\nAccept-Encoding: gzip, deflate\r\n\r\n`,
          );
          await conn.write(nowHead);
          const gone = await conn.readResponse({ head: true });
          assert.equal(gone?.status, 404);
          assertStoredFileHeaders(await replay(conn, check[3]!));
        });
      },
    );
  }

  it('both runs back to back on one server (as captured) give the same answers', async (t) => {
    const ft = await backend.start();
    const conn = await RawConnection.open(ft.port);
    t.after(async () => {
      conn.destroy();
      await ft.close();
    });
    await replayRun(ft, conn, false);
    await replayRun(ft, conn, true);
  });

  it('a run where every request opens its own connection gives the same answers', async (t) => {
    const ft = await backend.start();
    t.after(() => ft.close());
    for (const slash of [false, true]) {
      const reqs = wireRun(slash, `127.0.0.1:${ft.port}`);
      const answers: RawResponse[] = [];
      for (const req of reqs) {
        const conn = await RawConnection.open(ft.port);
        try {
          answers.push(await replay(conn, req));
        } finally {
          conn.destroy();
        }
      }
      assert.deepEqual(
        answers.map((a) => a.status),
        [200, 200, 200, 200, 200, 200, 200, 200, 404, 404],
      );
      assert.deepEqual(answers[5]!.body, WIRE_BODY);
    }
  });
});
