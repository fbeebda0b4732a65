import { unlink } from 'node:fs/promises';
import { KeyedMutex } from './keyed-mutex.js';
import { blobPath, renameIntoDir, type StoreLayout } from './layout.js';
import type { BlobRecord, MetaDb } from './meta-db.js';

/**
 * Reference counting of content-addressed blobs. All changes to one digest's record and
 * file happen under that digest's lock; a name's lock is always taken before a digest's,
 * and no digest lock waits for anything else, so the two never deadlock.
 *
 * A pin keeps a blob alive between "this content is already stored, only verify the body"
 * and the moment the upload links it, so a concurrent delete cannot remove it in between.
 */
export class BlobRefs {
  readonly #layout: StoreLayout;
  readonly #meta: MetaDb;
  readonly #locks = new KeyedMutex();
  readonly #pins = new Map<string, number>();
  /** Called with +1/-1 and the stored size when a blob file appears or goes. */
  onBlobCountChange: ((delta: number, storedSize: number) => void) | undefined;

  constructor(layout: StoreLayout, meta: MetaDb) {
    this.#layout = layout;
    this.#meta = meta;
  }

  get(digest: string): Promise<BlobRecord | undefined> {
    return this.#meta.getBlob(digest);
  }

  /** Pins `digest` if it is stored; returns its record, or undefined (nothing pinned). */
  pinIfStored(digest: string): Promise<BlobRecord | undefined> {
    return this.#locks.run(digest, async () => {
      const record = await this.#meta.getBlob(digest);
      if (record) this.#pins.set(digest, (this.#pins.get(digest) ?? 0) + 1);
      return record;
    });
  }

  unpin(digest: string): Promise<void> {
    return this.#locks.run(digest, async () => {
      const pins = (this.#pins.get(digest) ?? 1) - 1;
      if (pins > 0) {
        this.#pins.set(digest, pins);
        return;
      }
      this.#pins.delete(digest);
      const record = await this.#meta.getBlob(digest);
      if (record && record.refs <= 0) await this.#drop(digest, record);
    });
  }

  /**
   * Adds one reference to `digest`. If the blob is not stored yet, `tmpPath` (the verified
   * gzip in `ft-tmp/`) is fsynced already and is renamed into place; if it is, `tmpPath` is
   * removed (identical content is stored once).
   */
  acquire(
    digest: string,
    sizes: { logicalSize: number; storedSize: number },
    tmpPath: string | undefined,
  ): Promise<{ dedup: boolean; record: BlobRecord }> {
    return this.#locks.run(digest, async () => {
      const record = await this.#meta.getBlob(digest);
      if (record) {
        if (tmpPath) await unlink(tmpPath).catch(() => {});
        const updated = { ...record, refs: record.refs + 1 };
        await this.#meta.putBlob(digest, updated);
        return { dedup: true, record: updated };
      }
      if (!tmpPath) {
        throw new Error(`blob ${digest} vanished while pinned`);
      }
      const target = blobPath(this.#layout, digest);
      await renameIntoDir(tmpPath, target);
      const created = { refs: 1, logicalSize: sizes.logicalSize, storedSize: sizes.storedSize };
      try {
        await this.#meta.putBlob(digest, created);
      } catch (err) {
        // No record, no blob: a full disk must not leave an orphan behind.
        await unlink(target).catch(() => {});
        throw err;
      }
      this.onBlobCountChange?.(1, sizes.storedSize);
      return { dedup: false, record: created };
    });
  }

  /** Drops one reference; the last one removes the blob unless it is pinned. */
  release(digest: string): Promise<void> {
    return this.#locks.run(digest, async () => {
      const record = await this.#meta.getBlob(digest);
      if (!record) return;
      const refs = record.refs - 1;
      if (refs <= 0 && !this.#pins.has(digest)) {
        await this.#drop(digest, record);
      } else {
        await this.#meta.putBlob(digest, { ...record, refs: Math.max(refs, 0) });
      }
    });
  }

  async #drop(digest: string, record: BlobRecord): Promise<void> {
    // The record goes first: a crash in between leaves an orphan file (ft-recover removes
    // it), never a record of a file that is gone.
    await this.#meta.deleteBlob(digest);
    await unlink(blobPath(this.#layout, digest)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    this.onBlobCountChange?.(-1, record.storedSize);
  }
}
