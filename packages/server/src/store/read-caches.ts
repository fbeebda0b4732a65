import { LRUCache } from 'lru-cache';
import type { NameLookup } from './metadata-store.js';

/** At most this many names noted absent (see ReadCaches.#absent). */
const ABSENT_NOTES = 10_000;

/** What a reader needs to answer for a name. */
export interface FileEntry {
  digest: string;
  version: number;
  logicalSize: number;
  /** Size of the stored gzip. */
  storedSize: number;
}

/** A name looked up through the caches: its entry, or why it has none. */
export type EntryLookup = FileEntry | Exclude<NameLookup, object>;

export interface ReadCachesOptions {
  /**
   * Names whose (digest, version, sizes) stay in memory. 0: none, and no name noted absent
   * either: every name is looked up in the metadata store (a database shared by several
   * processes, whose writes this process does not see).
   */
  entries?: number | undefined;
  /** Bytes of small blobs kept in memory. */
  blobBytes?: number | undefined;
}

/**
 * What the store keeps in memory to answer reads without the metadata store: names'
 * entries, names a PUT found absent, and the gzip of small blobs.
 *
 * The staleness rule: the writers keep the entries right (they hold the name's lock, and
 * {@link set} or {@link forget} after each change). A reader fills a cache on a miss only if
 * no write of the name, or of an ancestor directory of it, began while it read: each write
 * calls {@link written} before and after its change, which marks the reads in flight of
 * those names stale, and a stale read fills nothing (what it read may be older than what
 * the writer cached). Blobs never change, so the blob cache is always right.
 */
export class ReadCaches {
  /** name -> entry, kept coherent by the writers; undefined when names are not cached. */
  readonly #entries: LRUCache<string, FileEntry> | undefined;
  /**
   * Names a PUT found without a link before taking the name's lock, so that under the lock
   * it need not read the link again (one thread-pool trip fewer for each new name). Filled
   * like {@link #entries}, only if no write of the name happened meanwhile; used once,
   * under the lock ({@link takeAbsent}); and cleared by every write of the name, whose lock
   * keeps other PUTs from using it in between.
   *
   * A Set, the oldest note dropped when full: a note lives from a PUT's look to its lock,
   * so few are held at once and recency is no better guide than age. Not an LRUCache:
   * deleting its last entry clears all of its arrays (sized for `max`), and a PUT that
   * takes its note when it is the only one (any PUT made alone) paid about 40 us for it.
   */
  readonly #absent = new Set<string>();
  /**
   * Reads in flight, by name. It replaced one counter of all writes: under 64 concurrent
   * uploads some other name was written during nearly every read, so every new name's link
   * was read twice.
   */
  readonly #reads = new Map<string, { stale: boolean }[]>();
  /** digest -> gzip bytes of small blobs. */
  readonly #blobs: LRUCache<string, Buffer>;

  constructor(options: ReadCachesOptions = {}) {
    const entries = options.entries ?? 200_000;
    this.#entries = entries > 0 ? new LRUCache({ max: entries }) : undefined;
    this.#blobs = new LRUCache({
      maxSize: options.blobBytes ?? 64 * 1024 * 1024,
      sizeCalculation: (b) => b.length || 1,
    });
  }

  /** Whether names' entries are kept (see {@link ReadCachesOptions.entries}). */
  get keepsEntries(): boolean {
    return this.#entries !== undefined;
  }

  entry(name: string): FileEntry | undefined {
    return this.#entries?.get(name);
  }

  blob(digest: string): Buffer | undefined {
    return this.#blobs.get(digest);
  }

  setBlob(digest: string, gzip: Buffer): void {
    this.#blobs.set(digest, gzip);
  }

  /**
   * The cached entry of `name`, else `load`'s answer, kept unless a write crossed the load
   * (the rule above). `noteAbsent`: a PUT's look, whose "absent" is kept for its
   * {@link takeAbsent}.
   */
  async lookup(
    name: string,
    load: () => Promise<EntryLookup>,
    noteAbsent: boolean,
  ): Promise<EntryLookup> {
    if (!this.#entries) return load();
    const cached = this.#entries.get(name);
    if (cached) return cached;
    const read = { stale: false };
    const reads = this.#reads.get(name);
    if (reads) reads.push(read);
    else this.#reads.set(name, [read]);
    let entry;
    try {
      entry = await load();
    } finally {
      const left = this.#reads.get(name)!;
      if (left.length === 1) this.#reads.delete(name);
      else left.splice(left.indexOf(read), 1);
    }
    if (read.stale) return entry;
    if (typeof entry === 'object') this.#entries.set(name, entry);
    else if (entry === 'absent' && noteAbsent) this.#noteAbsent(name);
    return entry;
  }

  #noteAbsent(name: string): void {
    if (this.#absent.size >= ABSENT_NOTES) {
      this.#absent.delete(this.#absent.values().next().value!);
    }
    this.#absent.add(name);
  }

  /** Whether a PUT's look found `name` absent with no write since; the note is used up. */
  takeAbsent(name: string): boolean {
    return this.#absent.delete(name);
  }

  /**
   * A write of `name` starts or has happened: the reads in flight of the name and of its
   * ancestors are stale, and so is a "no link" noted for an ancestor (a new file makes its
   * parents directories). The writer itself clears the name's own note, which it uses.
   */
  written(name: string): void {
    for (let end = name.length; end > 0; end = name.lastIndexOf('/', end - 1)) {
      const key = end === name.length ? name : name.slice(0, end);
      const reads = this.#reads.get(key);
      if (reads) for (const read of reads) read.stale = true;
      if (key !== name) this.#absent.delete(key);
    }
  }

  /** The writer of `name` has pointed it at `entry`. */
  set(name: string, entry: FileEntry): void {
    this.#entries?.set(name, entry);
    // A look that crossed this write may have noted the name absent after the writer used it.
    this.#absent.delete(name);
  }

  /** The writer of `name` has removed it. */
  forget(name: string): void {
    this.#entries?.delete(name);
    this.#absent.delete(name);
  }

  /** A reader found `entry`'s blob gone: forgets it unless a writer replaced it already. */
  forgetIfStill(name: string, entry: FileEntry): void {
    if (this.#entries?.get(name) === entry) this.#entries.delete(name);
  }

  /** Forgets everything (files were removed behind the store's back); reads in flight are stale. */
  clear(): void {
    for (const reads of this.#reads.values()) for (const read of reads) read.stale = true;
    this.#entries?.clear();
    this.#absent.clear();
    this.#blobs.clear();
  }

  /**
   * The entry and whole gzip of a name when both are in memory, else undefined: synchronous,
   * for the read path of the small files judges fetch by the thousand.
   */
  peek(name: string): { entry: FileEntry; buffer: Buffer } | undefined {
    const entry = this.#entries?.get(name);
    if (!entry) return undefined;
    const buffer = this.#blobs.get(entry.digest);
    return buffer ? { entry, buffer } : undefined;
  }
}
