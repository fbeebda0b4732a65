import type { FiletrackerClient } from '@filetracker/shared-protocol';
import { FiletrackerError } from '@filetracker/shared-protocol/wire';
import type { SourceEntry } from '../source.js';
import type { CopyEntry, CopySource, CopyStat, OpenedCopy } from './copy-source.js';

/** `null` for a file the server no longer has (404), else the answer or the error. */
async function unlessGone<T>(request: Promise<T>): Promise<T | null> {
  try {
    return await request;
  } catch (err) {
    if (err instanceof FiletrackerError && err.status === 404) return null;
    throw err;
  }
}

/**
 * The files of a running filetracker 2.x server (`ft-migrate --from URL`): ft-server, the
 * Python server, or either under a path prefix (`http://host:9999/ft`; the client sends
 * `/ft//list/`, which the path grammar serves with or without a prefix-stripping proxy).
 * Names come from one streamed `GET /list/` (every version, see `listNames`); each file is
 * read with `GET /files/NAME`, gzip accepted, so the stored gzip comes as it is, with its
 * version (`Last-Modified`), `Logical-Size` and, from ft-server, its digest (`ETag`). A
 * source in migration mode redirects names it lacks to its own fallback: followed.
 */
export class HttpSource implements CopySource {
  readonly location: string;
  readonly #client: FiletrackerClient;

  /** `client` is the source's; the caller closes it. */
  constructor(client: FiletrackerClient, url: string) {
    this.#client = client;
    this.location = url;
  }

  async *entries(signal: AbortSignal): AsyncGenerator<SourceEntry> {
    const base = this.location.replace(/\/+$/, '');
    for await (const name of this.#client.listNames('/', { signal })) {
      yield { path: `${base}/files${name}`, name, copy: this.#entry(name) };
    }
  }

  #entry(name: string): CopyEntry {
    const client = this.#client;
    return {
      async stat(signal): Promise<CopyStat | null> {
        const found = await client.stat(name, { signal });
        return found && { version: found.version, logicalSize: found.logicalSize };
      },
      open(signal): Promise<OpenedCopy | null> {
        return unlessGone(client.getStored(name, { signal }));
      },
    };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
