import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { createGunzip } from 'node:zlib';
import { CliError, readAhead } from '@filetracker/runtime';
import {
  FiletrackerError,
  NotFoundError,
  SMALL_FILE_BYTES,
  joinName,
  nowVersion,
  splitName,
  type StoredBody,
} from '@filetracker/shared-protocol/wire';
import type {
  GetOptions,
  GetResult,
  PutOptions,
  PutStoredOptions,
  PutStoredResult,
  StatResult,
} from '@filetracker/shared-protocol';
import {
  StoreOpenError,
  openStore,
  tombstoneAdmission,
  type PutAdmission,
  type PutRequest,
  type Store,
} from '@filetracker/server/local-store';
import type { MigrateClient } from '../migrator.js';

/*
 * Through callbacks, promisified: cheaper than fs/promises per call (see put-body.ts of
 * shared-protocol), and a small file takes two.
 */
const stat = promisify(fs.stat);
function readFile(file: string, signal?: AbortSignal): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    fs.readFile(file, { signal }, (err, data) => (err ? reject(err) : resolve(data))),
  );
}

/** Reads of a large blob for `--verify=digest` (as ft-server reads one to inflate it). */
const LARGE_READ_BYTES = 1024 * 1024;

/** The body of one put, as the HTTP layer would have handed it to the store. */
type PutBody = Pick<PutRequest, 'body' | 'gzip' | 'checksum' | 'logicalSize' | 'bodyLength'>;

/**
 * `ft-migrate --into DIR`: the store of a stopped ft-server, written in this process by
 * ft-server's own store code (`openStore` and `Store.put`: the same verify, fsync, rename
 * and reference counts as an upload, and the same lock, so a running ft-server or
 * ft-recover refuses it and it refuses them), without HTTP. It answers what the HTTP
 * client answers (see MigrateClient), so the Migrator's rules hold unchanged: a put with
 * a version older than the stored one stores nothing and answers the stored version
 * (`server-newer`), an equal one replaces it, content stored already is a dedup, and a
 * name deleted during an online migration (a tombstone) is refused with the 410 `DELETED`
 * that ft-server in migration mode answers.
 *
 * Aborting (Ctrl-C) stops a large file's body, which the store then drops as incomplete;
 * a small file's put is left to finish (milliseconds), so the store is closed with no put
 * in flight.
 */
export class StoreClient implements MigrateClient {
  /** Undefined: no store in DIR, and this run creates none (a dry run, a verify). */
  readonly #store: Store | undefined;
  readonly #admit: PutAdmission | undefined;

  constructor(store: Store | undefined) {
    this.#store = store;
    this.#admit = store && tombstoneAdmission(store);
  }

  async stat(name: string): Promise<StatResult | null> {
    const entry = await this.#store?.stat(splitName(name));
    return entry ? { version: entry.version, logicalSize: entry.logicalSize } : null;
  }

  async put(
    name: string,
    source: string | Buffer | NodeJS.ReadableStream,
    options: PutOptions = {},
  ): Promise<number> {
    const version = options.version ?? nowVersion();
    const body = await bodyOf(source, options);
    return (await this.#put(name, version, body, options.signal)).version;
  }

  /**
   * A file as a 2.x source keeps it (`--from`, `--from-store`): its gzip goes into the
   * store as it is, with the source's digest and size as the claims the store verifies.
   */
  async putStored(
    name: string,
    stored: StoredBody,
    options: PutStoredOptions,
  ): Promise<PutStoredResult> {
    const { data } = stored;
    const body: PutBody = stored.gzip
      ? {
          body: data,
          gzip: true,
          checksum: stored.digest,
          logicalSize: stored.logicalSize,
          bodyLength: Buffer.isBuffer(data) ? data.length : stored.storedSize,
        }
      : await bodyOf(data, options);
    const components = splitName(name);
    const result = await this.#put(name, options.version, body, options.signal);
    const logicalSize =
      body.logicalSize ?? (await this.#store!.stat(components))?.logicalSize ?? undefined;
    return { version: result.version, logicalSize };
  }

  /** The content of a name (`--verify=digest`), as the HTTP client's `get` gives it. */
  async get(name: string, options: GetOptions = {}): Promise<GetResult> {
    const opened = await this.#store?.openFile(splitName(name));
    if (!opened) throw new NotFoundError('File not found');
    if (options.expectedVersion !== undefined && opened.version !== options.expectedVersion) {
      await opened.handle?.close();
      throw new FiletrackerError(
        `Version ${options.expectedVersion} of ${joinName(splitName(name))} is not ` +
          `available; the store has ${opened.version}`,
        { code: 'VERSION_MISMATCH', status: 409 },
      );
    }
    const gz = opened.buffer
      ? Readable.from([opened.buffer])
      : readAhead(opened.handle!, LARGE_READ_BYTES, opened.storedSize);
    const stream = gz.pipe(createGunzip());
    gz.once('error', (err) => stream.destroy(err));
    return { stream, version: opened.version, logicalSize: opened.logicalSize };
  }

  async #put(
    name: string,
    version: number,
    put: PutBody,
    signal: AbortSignal | undefined,
  ): Promise<{ version: number }> {
    const store = this.#store;
    if (!store) throw new TypeError('no store to write to (a dry run or a verify writes nothing)');
    const request = { components: splitName(name), version, ...put };
    const { body } = put;
    // A body in memory is stored in moments: the put is left to finish.
    if (Buffer.isBuffer(body)) {
      signal?.throwIfAborted();
      return store.put(request, this.#admit);
    }
    // Ctrl-C stops a streamed body: a put that has not read it all fails as incomplete
    // and the store keeps nothing of it; one that has read it finishes.
    const stop = (): void => {
      body.destroy(signal?.reason instanceof Error ? signal.reason : undefined);
    };
    // The store reads the body with listeners of its own, which see its errors; this one
    // only keeps an error that comes when none is left (Ctrl-C as the put answers, or
    // before it began) from crashing the process as an unhandled 'error' event.
    body.on('error', () => {});
    try {
      signal?.throwIfAborted();
      signal?.addEventListener('abort', stop, { once: true });
      return await store.put(request, this.#admit);
    } finally {
      signal?.removeEventListener('abort', stop);
      // A newer version stored is answered without reading the body: close the file.
      if (!body.readableEnded) body.destroy();
    }
  }
}

/**
 * The put of a local file, a buffer or a stream, plain: the store gzips it (at
 * `--gzip-level`) while hashing it. A file below the client's in-memory limit is read whole
 * and handed over as it is, with its digest claimed, so the store skips content it has
 * (dedup before a write: then it only hashes it, to verify the claim) and otherwise hashes
 * and gzips it in one call each: no stream, and no gzip made here that the store would
 * inflate and hash again to verify it (issue 15). A larger one is streamed: one read of
 * the file, where the HTTP client reads it twice to claim its digest first.
 */
async function bodyOf(
  source: string | Buffer | NodeJS.ReadableStream,
  options: { signal?: AbortSignal | undefined },
): Promise<PutBody> {
  if (typeof source === 'string') {
    const info = await stat(source);
    if (info.size >= SMALL_FILE_BYTES) {
      return { body: fs.createReadStream(source), gzip: false };
    }
    source = await readFile(source, options.signal);
  }
  if (!Buffer.isBuffer(source)) {
    const body =
      source instanceof Readable ? source : Readable.from(source as AsyncIterable<Buffer>);
    return { body, gzip: false };
  }
  return {
    body: source,
    gzip: false,
    checksum: createHash('sha256').update(source).digest('hex'),
    logicalSize: source.length,
    bodyLength: source.length,
  };
}

/** What `--into DIR` writes to, and its store's identity (for the state file). */
export interface StoreTarget {
  client: StoreClient;
  storeId: string | undefined;
  close(): Promise<void>;
}

/**
 * Opens the store in `dir` (creating it when new, unless `create` is false: a dry run or
 * a verify then finds no store there and sees it empty, creating nothing). A store that
 * a running ft-server or ft-recover holds is refused with the store's own one-line
 * message naming its PID (a CliError, exit 1), as is a Python-made store (run
 * ft-recover first). `warn`: one line for each problem the store works around.
 */
export async function openStoreTarget(
  dir: string,
  options: { create: boolean; gzipLevel?: number; warn: (line: string) => void },
): Promise<StoreTarget> {
  const root = path.resolve(dir);
  if (!options.create && !(await holdsStore(root))) {
    return { client: new StoreClient(undefined), storeId: undefined, close: async () => {} };
  }
  let store: Awaited<ReturnType<typeof openStore>>;
  try {
    store = await openStore(root, {
      ...(options.gzipLevel !== undefined && { gzipLevel: options.gzipLevel }),
      warn: (details, message) => options.warn(`${message} ${describeDetails(details)}`.trim()),
    });
  } catch (err) {
    if (err instanceof StoreOpenError) throw new CliError(err.code, err.message, { cause: err });
    throw err;
  }
  if (store.tmpLeftovers > 0) {
    options.warn(`removed ${store.tmpLeftovers} leftovers of an interrupted write from ft-tmp/`);
  }
  return { client: new StoreClient(store), storeId: store.storeId, close: () => store.close() };
}

/** Whether `root` holds a store (ours: meta/; the Python server's: links/, refused at open). */
async function holdsStore(root: string): Promise<boolean> {
  const exists = (sub: string): Promise<boolean> =>
    stat(path.join(root, sub)).then(
      () => true,
      () => false,
    );
  return (await exists('meta')) || (await exists('links'));
}

/** A warning's details in one line: `(dir=..., name=...)`. */
function describeDetails(details: Record<string, unknown>): string {
  const parts = Object.entries(details).map(([key, value]) => {
    const shown = value instanceof Error ? value.message : value;
    return `${key}=${typeof shown === 'string' ? shown : JSON.stringify(shown)}`;
  });
  return parts.length === 0 ? '' : `(${parts.join(', ')})`;
}
