import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { CliError } from '@filetracker/runtime';

/** What a state file belongs to: a state file of another migration must not skip files. */
export interface StateIdentity {
  /** The server's base URL. */
  url: string;
  /** The absolute store root the names are relative to. */
  root: string;
}

const FORMAT = 1;

/**
 * The default state file: `.ft-migrate-state-<hash>` in the current directory, the hash
 * taken of FILES, the root and the URL, so that rerunning the same command finds it and a
 * migration of another tree or to another server does not.
 */
export function defaultStatePath(files: string, identity: StateIdentity, cwd: string): string {
  const hash = createHash('sha256')
    .update(`${files}\n${identity.root}\n${identity.url}`)
    .digest('hex')
    .slice(0, 12);
  return path.join(cwd, `.ft-migrate-state-${hash}`);
}

/**
 * The Set key of a finished file: the SHA-1 of name and version as a 20-character
 * one-byte string. Measured with 1M entries of 50-character names: 51 MiB of heap and
 * 1.9 s to load, against 181 MiB and 1.3 s keeping `name + version` strings. A collision
 * (2^-160 per pair) would only skip one file.
 */
function key(name: string, version: number): string {
  // NUL never occurs in a name (PROTOCOL.md, Names), so the pair is unambiguous.
  return createHash('sha1').update(`${name}\0${version}`).digest('binary');
}

/**
 * The resume record of a migration: a text file whose first line names the migration
 * (JSON: format, url, root) and each further line one finished file as the JSON array
 * `[name, version]` (JSON, because a name may hold any byte but `/` and NUL, newlines
 * included). Lines are appended once the server has acknowledged the file, so a
 * `kill -9` loses at most the lines not yet written, which only costs re-uploading those
 * files (an equal version replaces, PROTOCOL.md PUT). A torn last line is ignored.
 *
 * Trade-off: the finished files of earlier runs are held in a Set, ~55 bytes per file
 * (about 50 MiB per million files, see `key`); the alternative, a HEAD per file
 * (`--no-state`), keeps memory flat but costs one request per file; see the
 * measurements in main.ts.
 */
export class StateFile {
  readonly path: string;
  readonly #done: Set<string>;
  readonly #out: WriteStream | undefined;
  #closing: Promise<void> | undefined;
  #error: Error | undefined;

  private constructor(filePath: string, done: Set<string>, out: WriteStream | undefined) {
    this.path = filePath;
    this.#done = done;
    this.#out = out;
    out?.on('error', (err) => {
      this.#error ??= err;
    });
  }

  /**
   * Loads the state file at `filePath` if it exists (checking it belongs to `identity`)
   * and, unless `readOnly`, opens it for appending, creating it if missing.
   */
  static async open(
    filePath: string,
    identity: StateIdentity,
    options: { readOnly?: boolean } = {},
  ): Promise<StateFile> {
    const done = new Set<string>();
    let exists = true;
    let endsWithNewline = true;
    try {
      const info = await stat(filePath);
      if (!info.isFile()) {
        throw new CliError(
          'STATE_UNUSABLE',
          `The state file ${filePath} is not a regular file: pass another --state FILE`,
        );
      }
      if (info.size === 0) exists = false;
      else endsWithNewline = await lastByteIsNewline(filePath, info.size);
    } catch (err) {
      if (err instanceof CliError) throw err;
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw unusable(filePath, err);
      exists = false;
    }
    if (exists) await load(filePath, identity, done);
    if (options.readOnly) return new StateFile(filePath, done, undefined);

    const out = createWriteStream(filePath, { flags: 'a' });
    try {
      await new Promise<void>((resolve, reject) => {
        out.once('open', () => resolve());
        out.once('error', reject);
      });
    } catch (err) {
      throw unusable(filePath, err);
    }
    if (!exists) {
      out.write(`${JSON.stringify({ ftMigrateState: FORMAT, ...identity })}\n`);
    } else if (!endsWithNewline) {
      out.write('\n');
    }
    return new StateFile(filePath, done, out);
  }

  /** Finished files loaded from earlier runs. */
  get size(): number {
    return this.#done.size;
  }

  /** Whether an earlier run finished `name` at `version`. */
  has(name: string, version: number): boolean {
    return this.#done.has(key(name, version));
  }

  /** Records `name` at `version` as finished (appended now; not added to the Set). */
  record(name: string, version: number): void {
    if (!this.#out || this.#closing || this.#error) return;
    this.#out.write(`${JSON.stringify([name, version])}\n`);
  }

  /** Flushes and closes the file; idempotent. Rejects if any append failed. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const out = this.#out;
      if (out) {
        await new Promise<void>((resolve) => {
          out.end(() => resolve());
          out.once('error', () => resolve());
        });
      }
      if (this.#error) throw unusable(this.path, this.#error);
    })();
    return this.#closing;
  }
}

async function lastByteIsNewline(filePath: string, size: number): Promise<boolean> {
  const handle = await open(filePath, 'r');
  try {
    const { buffer } = await handle.read(Buffer.alloc(1), 0, 1, size - 1);
    return buffer[0] === 0x0a;
  } finally {
    await handle.close();
  }
}

async function load(filePath: string, identity: StateIdentity, done: Set<string>): Promise<void> {
  const lines = createInterface({ input: createReadStream(filePath), crlfDelay: Infinity });
  let first = true;
  for await (const line of lines) {
    if (first) {
      first = false;
      checkHeader(filePath, line, identity);
      continue;
    }
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      continue; // a line torn by kill -9 or a crash
    }
    if (
      Array.isArray(record) &&
      typeof record[0] === 'string' &&
      Number.isInteger(record[1] as unknown)
    ) {
      done.add(key(record[0], record[1] as number));
    }
  }
}

function checkHeader(filePath: string, line: string, identity: StateIdentity): void {
  let header: { ftMigrateState?: unknown; url?: unknown; root?: unknown } | undefined;
  try {
    header = JSON.parse(line) as typeof header;
  } catch {
    header = undefined;
  }
  if (header?.ftMigrateState !== FORMAT) {
    throw new CliError(
      'STATE_UNUSABLE',
      `${filePath} is not an ft-migrate state file: pass another --state FILE`,
    );
  }
  if (header.url !== identity.url || header.root !== identity.root) {
    throw new CliError(
      'STATE_MISMATCH',
      `The state file ${filePath} belongs to a migration of ${String(header.root)} to ` +
        `${String(header.url)}, not of ${identity.root} to ${identity.url}: pass another ` +
        '--state FILE (or delete this one)',
    );
  }
}

function unusable(filePath: string, err: unknown): CliError {
  return new CliError(
    'STATE_UNUSABLE',
    `Cannot use the state file ${filePath} (${(err as Error).message}): pass --state FILE ` +
      'in a writable directory, or --no-state',
    { cause: err },
  );
}
