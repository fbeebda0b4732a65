/**
 * The runtime helpers both servers and the tools share (packages/runtime): sendFile over a
 * real socket, the CLI prefix expansion, the option value parsers and the exit-status rule.
 * The end-to-end tests of each tool check the same through the real command lines.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { open, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import {
  CliError,
  EXIT_STATUS,
  byteSize,
  expandLongOptionPrefixes,
  exitStatusOf,
  httpUrl,
  parseCommandLine,
  portNumber,
  positiveSeconds,
  sendFile,
  wholeNumber,
  type SendProgress,
} from '@filetracker/runtime';
import { tempDir } from './helpers/server.js';

/** A file of `bytes` random bytes in a temp dir removed after the test. */
async function fileOf(t: TestContext, bytes: number): Promise<{ file: string; content: Buffer }> {
  const dir = await tempDir('ft-runtime-');
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'data');
  const content = randomBytes(bytes);
  await writeFile(file, content);
  return { file, content };
}

/** What one sendFile call did: how it ended, and the handle it was given. */
interface Sent {
  outcome: Promise<'resolved' | Error>;
  handle: FileHandle;
  progress: SendProgress;
}

/**
 * A server on 127.0.0.1 that answers every request with sendFile of `file` (`length`
 * bytes promised in Content-Length, `chunkBytes` per read); `sends` gets each call.
 */
async function serveFile(
  t: TestContext,
  file: string,
  length: number,
  chunkBytes: number,
): Promise<{ url: string; sends: Sent[] }> {
  const sends: Sent[] = [];
  const server: Server = createServer((_req, res) => {
    void open(file, 'r').then((handle) => {
      res.writeHead(200, { 'Content-Length': String(length) });
      const progress = { bytesRead: 0 };
      const outcome = sendFile(handle, res, length, { chunkBytes, progress }).then(
        () => 'resolved' as const,
        (err: Error) => err,
      );
      sends.push({ outcome, handle, progress });
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, sends };
}

/** GETs `url` and collects the body; `error` when the connection was cut short. */
function get(url: string): Promise<{ body: Buffer; error: Error | undefined }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const done = (error?: Error): void => resolve({ body: Buffer.concat(chunks), error });
    request(url, (res: IncomingMessage) => {
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => done());
      res.on('error', done);
      res.on('aborted', () => done(new Error('aborted')));
    })
      .on('error', done)
      .end();
  });
}

/** Whether a FileHandle was closed (its fd is -1 then). */
const isClosed = (handle: FileHandle): boolean => handle.fd === -1;

describe('sendFile', () => {
  test('sends the whole file in many chunks, counts the bytes read and closes the handle', async (t) => {
    const { file, content } = await fileOf(t, 1024 * 1024 + 12_345);
    const { url, sends } = await serveFile(t, file, content.length, 64 * 1024);
    for (let round = 0; round < 3; round++) {
      // Later rounds reuse the spare buffers of earlier ones: the bytes must still be right.
      const { body, error } = await get(url);
      assert.equal(error, undefined);
      assert.ok(body.equals(content), `round ${round}: the body is the file`);
      const sent = sends[round]!;
      assert.equal(await sent.outcome, 'resolved');
      assert.equal(sent.progress.bytesRead, content.length);
      assert.ok(isClosed(sent.handle));
    }
  });

  test('sends only the first `length` bytes of a longer file', async (t) => {
    const { file, content } = await fileOf(t, 300_000);
    const { url, sends } = await serveFile(t, file, 100_000, 64 * 1024);
    const { body, error } = await get(url);
    assert.equal(error, undefined);
    assert.ok(body.equals(content.subarray(0, 100_000)));
    assert.equal(await sends[0]!.outcome, 'resolved');
    assert.ok(isClosed(sends[0]!.handle));
  });

  test('an empty length sends an empty body', async (t) => {
    const { file } = await fileOf(t, 10);
    const { url, sends } = await serveFile(t, file, 0, 64 * 1024);
    const { body, error } = await get(url);
    assert.equal(error, undefined);
    assert.equal(body.length, 0);
    assert.equal(await sends[0]!.outcome, 'resolved');
    assert.ok(isClosed(sends[0]!.handle));
  });

  test('a file shorter than promised rejects and cuts the connection, never a hang', async (t) => {
    const { file, content } = await fileOf(t, 200_000);
    const { url, sends } = await serveFile(t, file, content.length + 50_000, 64 * 1024);
    const { body, error } = await get(url);
    assert.ok(error, 'the client sees the connection cut');
    assert.ok(body.length <= content.length);
    const outcome = await sends[0]!.outcome;
    assert.ok(outcome instanceof Error, 'sendFile rejects');
    assert.match(outcome.message, /file ended at 200000 of 250000 bytes/);
    assert.ok(isClosed(sends[0]!.handle));
  });

  test('a client that hangs up mid-transfer ends it quietly: resolves, handle closed', async (t) => {
    const { file, content } = await fileOf(t, 32 * 1024 * 1024);
    const { url, sends } = await serveFile(t, file, content.length, 1024 * 1024);
    await new Promise<void>((resolve) => {
      const req = request(url, (res) => {
        // Read a little, then hang up with most of the file unsent.
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.end();
    });
    assert.equal(await sends[0]!.outcome, 'resolved');
    assert.ok(sends[0]!.progress.bytesRead < content.length, 'it stopped reading');
    assert.ok(isClosed(sends[0]!.handle));
  });
});

describe('expandLongOptionPrefixes (optparse-style abbreviations)', () => {
  const names = ['--fallback-url', '--log', '--log-level', '--listen-on', '--no-daemon'];

  test('a unique prefix becomes the full name, with or without =VALUE', () => {
    assert.deepEqual(expandLongOptionPrefixes(['--fall', 'http://x', '--lis=::1'], names), [
      '--fallback-url',
      'http://x',
      '--listen-on=::1',
    ]);
  });

  test('an exact name wins over the longer names it is a prefix of', () => {
    assert.deepEqual(expandLongOptionPrefixes(['--log', 'f', '--log-l', 'warn'], names), [
      '--log',
      'f',
      '--log-level',
      'warn',
    ]);
  });

  test('an ambiguous or unknown prefix is left for commander to reject', () => {
    assert.deepEqual(expandLongOptionPrefixes(['--l', '--bogus', '--lo'], names), [
      '--l',
      '--bogus',
      '--lo',
    ]);
  });

  test('short options, values and everything after -- stay as they are', () => {
    assert.deepEqual(
      expandLongOptionPrefixes(['-p', '9', '--fa', 'u', '--', '--fall', '--no-d'], names),
      ['-p', '9', '--fallback-url', 'u', '--', '--fall', '--no-d'],
    );
  });
});

describe('CLI option values', () => {
  /** The message `parse` refuses `value` with; fails if it accepts it. */
  const refusal = (parse: (v: string) => unknown, value: string): string => {
    try {
      parse(value);
    } catch (err) {
      assert.ok(err instanceof InvalidArgumentError, `${value}: ${String(err)}`);
      return (err as InvalidArgumentError).message;
    }
    assert.fail(`${JSON.stringify(value)} was accepted`);
  };
  /** Every value in `bad` refused with one and the same message. */
  const oneMessage = (parse: (v: string) => unknown, bad: string[]): void => {
    const messages = new Set(bad.map((v) => refusal(parse, v)));
    assert.equal(messages.size, 1, [...messages].join(' | '));
  };

  test('portNumber takes 0 to 65535', () => {
    assert.deepEqual(['0', '9999', '65535', ' 80 '].map(portNumber), [0, 9999, 65535, 80]);
    oneMessage(portNumber, ['65536', '-1', '1.5', 'abc', '', '0x10', '1e3']);
  });

  test('wholeNumber(min, max) takes whole numbers in its range', () => {
    const workers = wholeNumber(1, 64);
    assert.deepEqual(['1', '64', '8'].map(workers), [1, 64, 8]);
    oneMessage(workers, ['0', '65', 'two', '2.5', '-3', '']);
    const retries = wholeNumber(0);
    assert.equal(retries('0'), 0);
    assert.equal(retries('1000000'), 1_000_000);
    oneMessage(retries, ['-1', 'x']);
  });

  test('positiveSeconds takes numbers above 0, fractions too', () => {
    assert.deepEqual(['0.5', '10', '120'].map(positiveSeconds), [0.5, 10, 120]);
    oneMessage(positiveSeconds, ['0', '-1', 'abc', '', ' ', 'Infinity']);
  });

  test('byteSize takes bytes or K/M/G/T (powers of 1024), with or without iB', () => {
    assert.deepEqual(['1', '1024', '1K', '1KiB', '16G', '16gib', '2 M', '1T'].map(byteSize), [
      1,
      1024,
      1024,
      1024,
      16 * 1024 ** 3,
      16 * 1024 ** 3,
      2 * 1024 ** 2,
      1024 ** 4,
    ]);
    oneMessage(byteSize, ['0', '1.5G', 'abc', '-1', '10P', '']);
  });

  test('httpUrl takes http and https URLs as given', () => {
    assert.equal(httpUrl('http://127.0.0.1:9999'), 'http://127.0.0.1:9999');
    assert.equal(httpUrl('https://ft.example/base/'), 'https://ft.example/base/');
    oneMessage(httpUrl, ['ftp://x', 'localhost:9999', '', 'http//x']);
  });
});

describe('the exit-status rule', () => {
  /** A command as the tools build theirs; output captured rather than printed. */
  function command(): { cmd: Command; stderr: string[] } {
    const stderr: string[] = [];
    const cmd = new Command('t')
      .addOption(new Option('-p, --port <PORT>').argParser(portNumber))
      .addOption(new Option('--fallback-url <URL>').argParser(httpUrl))
      .configureOutput({ writeErr: (s: string) => stderr.push(s), writeOut: () => {} });
    return { cmd, stderr };
  }
  const statusOf = (argv: string[]): number | undefined => {
    const { cmd } = command();
    try {
      parseCommandLine(cmd, ['node', 't', ...argv]);
      return undefined;
    } catch (err) {
      return exitStatusOf('t', err);
    }
  };

  test('a bad value, an unknown option or a missing value is a usage error: 2', () => {
    assert.equal(statusOf(['-p', '70000']), EXIT_STATUS.usage);
    assert.equal(statusOf(['--bogus']), EXIT_STATUS.usage);
    assert.equal(statusOf(['--port']), EXIT_STATUS.usage);
    assert.equal(EXIT_STATUS.usage, 2);
  });

  test('--help is success: 0; a good line parses, prefixes expanded', () => {
    assert.equal(statusOf(['--help']), EXIT_STATUS.ok);
    const { cmd } = command();
    parseCommandLine(cmd, ['node', 't', '--fall', 'http://x', '--po=80']);
    assert.deepEqual(cmd.opts(), { fallbackUrl: 'http://x', port: 80 });
  });

  test('a CliError is a failure: 1, said on one line; other errors are left to crash', () => {
    const written: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((s: string) => written.push(s) > 0) as typeof process.stderr.write;
    try {
      assert.equal(
        exitStatusOf('t', new CliError('ADDRESS_IN_USE', 'in use; pick another --port')),
        EXIT_STATUS.failed,
      );
    } finally {
      process.stderr.write = write;
    }
    assert.deepEqual(written, ['t: in use; pick another --port\n']);
    assert.equal(EXIT_STATUS.failed, 1);
    assert.equal(exitStatusOf('t', new TypeError('a bug')), undefined);
    assert.equal(exitStatusOf('t', new CommanderError(1, 'x', 'y')), EXIT_STATUS.usage);
  });
});
