import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
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
 * Finished files kept aside while loading, for a check on the server before trusting the
 * state (see resume-check.ts): a uniform random sample of every record (reservoir
 * sampling), so a store that lacks any part of them is likely caught.
 */
export const SAMPLE_CAP = 256;

/**
 * Records are gathered this long and appended with one write: one write per file was a
 * thread-pool round trip each, a few percent of the migrator's time (issue 15). A
 * `kill -9` loses at most this much of the latest records, which only costs re-uploading
 * those files.
 */
const RECORD_BATCH_MS = 50;

/** The third field of the record of a file deleted on the server (see `record`). */
const DELETED = 'deleted';

function stateHash(files: string, identity: StateIdentity): string {
  return createHash('sha256')
    .update(`${files}\n${identity.root}\n${identity.url}`)
    .digest('hex')
    .slice(0, 12);
}

/**
 * Where default state files live: `$XDG_STATE_HOME/filetracker` (an absolute
 * `XDG_STATE_HOME`, as the XDG base directory spec asks), else
 * `~/.local/state/filetracker`.
 */
export function stateDirectory(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_STATE_HOME;
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(homedir(), '.local', 'state');
  return path.join(base, 'filetracker');
}

/** Characters of a readable part of a file name; the rest become `_`. */
function readablePart(text: string): string {
  return text
    .replace(/[^A-Za-z0-9._-]+/g, '_')
    .replace(/^[._]+|_+$/g, '')
    .slice(0, 40);
}

/**
 * The default state file, in {@link stateDirectory}: `ft-migrate-<FILES>-to-<host_port>-
 * <hash>.state`, readable for people (`ls` tells which migration is which) and the hash
 * taken of FILES, the root and the URL, so that rerunning the same command finds it and a
 * migration of another tree or to another server does not.
 */
export function defaultStatePath(
  files: string,
  identity: StateIdentity,
  env: NodeJS.ProcessEnv = process.env,
): string {
  let target: string;
  try {
    const url = new URL(identity.url);
    target = `${url.host}${url.pathname}`;
  } catch {
    target = identity.url;
  }
  const source = readablePart(path.basename(files)) || 'root';
  const name = `ft-migrate-${source}-to-${readablePart(target) || 'server'}-${stateHash(files, identity)}.state`;
  return path.join(stateDirectory(env), name);
}

/**
 * Where ft-migrate kept the default state file before it moved to {@link stateDirectory}:
 * `.ft-migrate-state-<hash>` in the working directory (the same hash), so that a
 * migration interrupted before an upgrade resumes after it.
 */
export function legacyStatePath(files: string, identity: StateIdentity, cwd: string): string {
  return path.join(cwd, `.ft-migrate-state-${stateHash(files, identity)}`);
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
 * (JSON: format, url, root, and `store`, the identity of the store it was made against,
 * when the server answered one) and each further line one finished file as the JSON array
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
  readonly #identity: StateIdentity;
  readonly #loaded: Loaded;
  #out: WriteStream | undefined;
  /** `#out` while it gathers records (corked) for RECORD_BATCH_MS. */
  #gathering: WriteStream | undefined;
  #closing: Promise<void> | undefined;
  #error: Error | undefined;

  private constructor(
    filePath: string,
    identity: StateIdentity,
    loaded: Loaded,
    out: WriteStream | undefined,
  ) {
    this.path = filePath;
    this.#identity = identity;
    this.#loaded = loaded;
    this.#setOut(out);
  }

  #setOut(out: WriteStream | undefined): void {
    this.#out = out;
    out?.on('error', (err) => {
      this.#error ??= err;
    });
  }

  /**
   * Loads the state file at `filePath` if it exists (checking it belongs to `identity`)
   * and, unless `readOnly`, opens it for appending, creating it if missing; a new file
   * records `storeId`, the identity of the store the server answered.
   */
  static async open(
    filePath: string,
    identity: StateIdentity,
    options: { readOnly?: boolean; storeId?: string | undefined } = {},
  ): Promise<StateFile> {
    const loaded: Loaded = { done: new Set(), store: undefined, sample: [], records: 0 };
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
    if (exists) await load(filePath, identity, loaded);
    else loaded.store = options.storeId;
    if (options.readOnly) return new StateFile(filePath, identity, loaded, undefined);

    const out = await appendTo(filePath);
    if (!exists) {
      out.write(headerLine(identity, options.storeId));
    } else if (!endsWithNewline) {
      out.write('\n');
    }
    return new StateFile(filePath, identity, loaded, out);
  }

  /** Finished files loaded from earlier runs. */
  get size(): number {
    return this.#loaded.done.size;
  }

  /**
   * The identity of the store the file was made against; `undefined` for a file made
   * before identities or against a server that answers none (the Python 2.x server).
   */
  get storeId(): string | undefined {
    return this.#loaded.store;
  }

  /** Up to `count` finished records of earlier runs, chosen at random. */
  sample(count: number): [name: string, version: number][] {
    const pool = [...this.#loaded.sample];
    for (let i = pool.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [pool[i], pool[j]] = [pool[j]!, pool[i]!];
    }
    return pool.slice(0, count);
  }

  /**
   * Starts the file afresh, made against `storeId`: for records the store did not live up
   * to (another store, or finished files missing from it). The file is replaced whole
   * (temp + rename), so a crash leaves the old one or the new one; this run's records go
   * to the new one, and nothing of the old is trusted again. The loaded records stay in
   * memory for {@link has}, so this run knows which files to check instead of skip. A
   * read-only state only forgets its store. Call it before any {@link record}.
   */
  async restart(storeId: string | undefined): Promise<void> {
    this.#loaded.store = storeId;
    const old = this.#out;
    if (!old) return;
    await new Promise<void>((resolve) => {
      old.end(() => resolve());
      old.once('error', () => resolve());
    });
    if (this.#error) throw unusable(this.path, this.#error);
    const temp = `${this.path}.new`;
    try {
      const handle = await open(temp, 'w');
      try {
        await handle.writeFile(headerLine(this.#identity, storeId));
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, this.path);
    } catch (err) {
      await rm(temp, { force: true });
      throw unusable(this.path, err);
    }
    this.#setOut(await appendTo(this.path));
  }

  /** Whether an earlier run finished `name` at `version`. */
  has(name: string, version: number): boolean {
    return this.#loaded.done.has(key(name, version));
  }

  /**
   * Records `name` at `version` as finished (appended within RECORD_BATCH_MS; not added
   * to the Set);
   * `deleted`: finished because a client deleted it on the server (`[name, version,
   * "deleted"]`, which earlier versions read as finished too), so that its absence from
   * the server does not count against the state (see resume-check.ts).
   */
  record(name: string, version: number, deleted = false): void {
    if (!this.#out || this.#closing || this.#error) return;
    const out = this.#out;
    if (this.#gathering !== out) {
      this.#gathering = out;
      out.cork();
      // close() and restart() end the stream, which writes what it gathered.
      setTimeout(() => {
        if (this.#gathering === out) this.#gathering = undefined;
        out.uncork();
      }, RECORD_BATCH_MS);
    }
    const line = deleted ? [name, version, DELETED] : [name, version];
    out.write(`${JSON.stringify(line)}\n`);
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

/** What loading a state file found. */
interface Loaded {
  done: Set<string>;
  /** The store the file was made against (its first line's `store`). */
  store: string | undefined;
  /** A reservoir of up to {@link SAMPLE_CAP} records. */
  sample: [string, number][];
  /** Records read, for the reservoir. */
  records: number;
}

function headerLine(identity: StateIdentity, storeId: string | undefined): string {
  const store = storeId === undefined ? {} : { store: storeId };
  return `${JSON.stringify({ ftMigrateState: FORMAT, ...identity, ...store })}\n`;
}

async function appendTo(filePath: string): Promise<WriteStream> {
  const out = createWriteStream(filePath, { flags: 'a' });
  try {
    await new Promise<void>((resolve, reject) => {
      out.once('open', () => resolve());
      out.once('error', reject);
    });
  } catch (err) {
    throw unusable(filePath, err);
  }
  return out;
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

async function load(filePath: string, identity: StateIdentity, loaded: Loaded): Promise<void> {
  const lines = createInterface({ input: createReadStream(filePath), crlfDelay: Infinity });
  let first = true;
  for await (const line of lines) {
    if (first) {
      first = false;
      loaded.store = checkHeader(filePath, line, identity);
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
      const entry: [string, number] = [record[0], record[1] as number];
      loaded.done.add(key(...entry));
      // Not on the server by design: no evidence either way.
      if (record[2] === DELETED) continue;
      // Algorithm R: each of the n records read so far is in the sample with odds cap/n.
      loaded.records += 1;
      if (loaded.sample.length < SAMPLE_CAP) loaded.sample.push(entry);
      else {
        const slot = Math.floor(Math.random() * loaded.records);
        if (slot < SAMPLE_CAP) loaded.sample[slot] = entry;
      }
    }
  }
}

/** Checks the first line and returns the store it names. */
function checkHeader(filePath: string, line: string, identity: StateIdentity): string | undefined {
  let header:
    { ftMigrateState?: unknown; url?: unknown; root?: unknown; store?: unknown } | undefined;
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
  return typeof header.store === 'string' ? header.store : undefined;
}

function unusable(filePath: string, err: unknown): CliError {
  return new CliError(
    'STATE_UNUSABLE',
    `Cannot use the state file ${filePath} (${(err as Error).message}): pass --state FILE ` +
      'in a writable directory, or --no-state',
    { cause: err },
  );
}
