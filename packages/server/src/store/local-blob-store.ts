import { constants as fsConstants } from 'node:fs';
import { open, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type {
  BlobHandle,
  BlobSizes,
  BlobStore,
  StageBody,
  StageOptions,
  StagedBlob,
} from './blob-store.js';
import type { DirSync } from './dir-sync.js';
import { lstat, unlink, writeDurably } from './fs-calls.js';
import { inflateBlob } from './inflate.js';
import { ingest, type IngestTarget } from './ingest.js';
import { blobPath, digestOfBlobEntry, tmpFile, type StoreLayout } from './layout.js';

/**
 * A blob is opened only if it is a file: a symlink in its place (a hand edit) is never
 * followed out of the store.
 */
const READ_BLOB = fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW;

/**
 * The {@link BlobStore} on a local disk, in the Python 2.x layout: a blob is
 * `blobs/<2 hex>/<digest>`, staged in `ft-tmp/` (written with O_SYNC, so durable once
 * staged) and committed by a rename whose directory is then fsynced (DESIGN.md invariant 1).
 */
export class LocalBlobStore implements BlobStore {
  readonly #layout: StoreLayout;
  readonly #dirs: DirSync;
  readonly #target: IngestTarget;

  /** `dirs`: the directory fsyncs this store shares with the link tree; `gzipLevel` for plain bodies. */
  constructor(layout: StoreLayout, dirs: DirSync, gzipLevel = 6) {
    this.#layout = layout;
    this.#dirs = dirs;
    this.#target = { tmpDir: layout.tmp, gzipLevel };
  }

  stage(body: StageBody, options: StageOptions): Promise<StagedBlob> {
    return ingest(body, options, this.#target);
  }

  commit(blob: StagedBlob): Promise<void> {
    if (blob.location === undefined) {
      return Promise.reject(new TypeError(`blob ${blob.digest} was only verified, not staged`));
    }
    // Durable in blobs/ (its directory fsynced) before any record or link names it: a
    // dedup hit trusts the record, and a link that survived a power cut without its blob
    // would have replaced the name's last good version.
    return this.#dirs.rename(
      blob.location,
      blobPath(this.#layout, blob.digest),
      this.#layout.blobs,
    );
  }

  async discard(blob: StagedBlob): Promise<void> {
    // Once committed it is no longer there, and this does nothing.
    if (blob.location !== undefined) await unlink(blob.location).catch(() => {});
  }

  async open(digest: string): Promise<BlobHandle | null> {
    try {
      return await open(blobPath(this.#layout, digest), READ_BLOB);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return null;
      if (code === 'ELOOP') {
        throw new Error(
          `blob ${digest} is a symlink, which ft-server does not follow: run ft-recover`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  async has(digest: string): Promise<boolean> {
    try {
      await lstat(blobPath(this.#layout, digest));
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return false;
      throw err;
    }
  }

  async sizes(digest: string): Promise<BlobSizes | undefined> {
    const file = blobPath(this.#layout, digest);
    let storedSize: number;
    try {
      const st = await lstat(file);
      if (!st.isFile()) return undefined;
      storedSize = st.size;
    } catch {
      return undefined;
    }
    const { logicalSize } = await inflateBlob(file, { hash: false, storedSize });
    return { logicalSize, storedSize };
  }

  async remove(digest: string): Promise<void> {
    await unlink(blobPath(this.#layout, digest)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }

  async *digests(): AsyncGenerator<string> {
    for await (const { digest } of this.#blobFiles()) yield digest;
  }

  async *staleBlobs(beforeMs: number): AsyncGenerator<string> {
    for await (const { digest, file } of this.#blobFiles()) {
      // Gone meanwhile (swept, or removed by hand): nothing to list.
      const st = await lstat(file).catch(() => undefined);
      if (st !== undefined && st.mtimeMs < beforeMs) yield digest;
    }
  }

  /**
   * Deletes the files of `ft-tmp/` last written before `beforeMs`: uploads (a body being
   * written moves its mtime forward) and probes a crash left. Only with --db, where the
   * processes share the directory and none may empty it at open.
   */
  async removeStaleStaging(beforeMs: number): Promise<number> {
    let removed = 0;
    for (const entry of await readdir(this.#layout.tmp, { withFileTypes: true })) {
      if (!entry.isFile()) continue;
      const file = path.join(this.#layout.tmp, entry.name);
      const st = await lstat(file).catch(() => undefined);
      if (st === undefined || st.mtimeMs >= beforeMs) continue;
      await unlink(file).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
      removed++;
    }
    return removed;
  }

  /** The files under `blobs/` that are where {@link blobPath} puts a digest's blob. */
  async *#blobFiles(): AsyncGenerator<{ digest: string; file: string }> {
    for (const prefix of await readdir(this.#layout.blobs, { withFileTypes: true })) {
      if (!/^[0-9a-f]{2}$/.test(prefix.name) || !prefix.isDirectory()) continue;
      const dir = path.join(this.#layout.blobs, prefix.name);
      for (const blob of await readdir(dir, { withFileTypes: true })) {
        if (blob.isFile() && digestOfBlobEntry(prefix.name, blob.name) !== undefined) {
          yield { digest: blob.name, file: path.join(dir, blob.name) };
        }
      }
    }
  }

  async checkWritable(): Promise<void> {
    const probe = tmpFile(this.#layout.tmp, 'health');
    try {
      // The same durable write an upload makes.
      await writeDurably(probe, Buffer.from('ok'));
    } finally {
      await rm(probe, { force: true }).catch(() => {});
    }
  }
}
