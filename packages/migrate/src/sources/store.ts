import { constants as fsConstants, createReadStream, type Stats } from 'node:fs';
import { lstat, open, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { CliError, walkTree } from '@filetracker/runtime';
import { FiletrackerError, SMALL_FILE_BYTES } from '@filetracker/shared-protocol/wire';
import { notUtf8, type SourceEntry } from '../source.js';
import type { CopyEntry, CopySource, CopyStat, OpenedCopy } from './copy-source.js';

/** A blob is opened only as a file: a symlink in its place is never followed out. */
const READ_BLOB = fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW;

/** The basename of a link's target that names a blob (DESIGN.md: relative or absolute). */
const DIGEST = /^[0-9a-f]{64}$/;

/** Times a file is read again when its link was replaced while it was opened. */
const REOPENS = 3;

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

function versionOf(info: Stats): number {
  return Math.floor(info.mtimeMs / 1000);
}

function brokenStore(message: string): FiletrackerError {
  // Not the target's fault nor a transient one: reported per file, the run goes on.
  return new FiletrackerError(message, { code: 'PROTOCOL_ERROR', status: 502 });
}

/**
 * The files of a filetracker 2.x store directory (`ft-migrate --from-store DIR`), made by
 * the Python server or by ft-server, read without a server (DESIGN.md, On-disk layout):
 * each symlink under `links/` is a file, named by its path, whose own mtime is its version
 * and whose target's basename is the digest of its blob, `blobs/<2 hex>/<digest>`, the
 * stored gzip, sent as it is with the digest as `SHA256-Checksum`.
 *
 * Read-only: nothing in DIR is written, and neither `meta/` (LevelDB) nor the Python
 * server's `db/` is opened, so no lock is taken and a store a running server holds can be
 * read too. That is safe: blobs are written once and never changed, and a link is
 * replaced by a rename, so each file is read whole at one version (a link replaced while
 * its blob was opened is read again). Files written meanwhile are picked up by a rerun.
 */
export class StoreSource implements CopySource {
  readonly location: string;
  readonly #links: string;
  readonly #blobs: string;

  private constructor(dir: string) {
    this.location = dir;
    this.#links = path.join(dir, 'links');
    this.#blobs = path.join(dir, 'blobs');
  }

  /** The store at `dir`; a `CliError` unless it has `links/` and `blobs/`. */
  static async open(dir: string): Promise<StoreSource> {
    for (const sub of ['links', 'blobs']) {
      let isDirectory = false;
      try {
        isDirectory = (await stat(path.join(dir, sub))).isDirectory();
      } catch (err) {
        if (errno(err) !== 'ENOENT') {
          throw new CliError(
            'STORE_UNREADABLE',
            `Cannot read --from-store ${dir} (${(err as Error).message}): check its permissions`,
            { cause: err },
          );
        }
      }
      if (!isDirectory) {
        throw new CliError(
          'NOT_A_STORE',
          `--from-store ${dir} is not a filetracker 2.x store (it has no ${sub}/ directory): ` +
            'give the directory of ft-server -d or filetracker-server -d',
        );
      }
    }
    return new StoreSource(dir);
  }

  async *entries(signal: AbortSignal): AsyncGenerator<SourceEntry> {
    for await (const entry of walkTree(this.#links, signal, undefined, { checkNames: true })) {
      if (!entry.dirent.isSymbolicLink()) continue;
      if (entry.nameBytes !== undefined) {
        // The Migrator reports it (NOT_UTF8): a name that is not UTF-8 cannot be sent.
        yield notUtf8(entry, entry.nameBytes, '');
        continue;
      }
      yield { path: entry.absolute, name: `/${entry.relative}`, copy: this.#entry(entry.absolute) };
    }
  }

  #entry(link: string): CopyEntry {
    return {
      stat: async (): Promise<CopyStat | null> => {
        const info = await lstat(link).catch((err: unknown) => {
          if (errno(err) === 'ENOENT') return null;
          throw err;
        });
        return info && { version: versionOf(info), logicalSize: undefined };
      },
      open: () => this.#open(link),
    };
  }

  /** The link's blob with the link's version, read again if the link changed meanwhile. */
  async #open(link: string): Promise<OpenedCopy | null> {
    for (let attempt = 0; ; attempt++) {
      let before: Stats;
      let target: string;
      try {
        before = await lstat(link);
        target = await readlink(link);
      } catch (err) {
        if (errno(err) === 'ENOENT') return null;
        throw err;
      }
      const digest = path.basename(target);
      if (!DIGEST.test(digest)) {
        throw brokenStore(`the link points to ${target}, not to a blob`);
      }
      const blob = path.join(this.#blobs, digest.slice(0, 2), digest);
      const opened = await readBlob(blob).catch((err: unknown) => {
        if (errno(err) === 'ENOENT') return null;
        throw err;
      });
      const after = await lstat(link).catch(() => undefined);
      const same = after?.ino === before.ino && after.mtimeMs === before.mtimeMs;
      if (same && opened !== null) return { ...opened, digest, version: versionOf(before) };
      if (opened !== null && !Buffer.isBuffer(opened.data)) opened.data.destroy();
      if (after === undefined) return null;
      if (same || attempt >= REOPENS) {
        throw brokenStore(`its blob ${digest} is missing: check the store with ft-recover --check`);
      }
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** A blob's bytes: read whole when small (the body can then be checked and replayed). */
async function readBlob(
  blob: string,
): Promise<{ data: Buffer | Readable; gzip: boolean; storedSize: number }> {
  const handle = await open(blob, READ_BLOB);
  let handed = false;
  try {
    const { size } = await handle.stat();
    if (size < SMALL_FILE_BYTES) {
      const data = await handle.readFile();
      return { data, gzip: isGzip(data), storedSize: data.length };
    }
    const head = Buffer.alloc(2);
    await handle.read(head, 0, 2, 0);
    handed = true;
    return {
      data: createReadStream('', { fd: handle, start: 0 }),
      gzip: isGzip(head),
      storedSize: size,
    };
  } finally {
    if (!handed) await handle.close();
  }
}

/** Blobs are gzip (both servers store it so); a plain one is sent as content instead. */
function isGzip(head: Buffer): boolean {
  return head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
}
