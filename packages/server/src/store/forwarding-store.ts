import type {
  DeleteResult,
  FileEntry,
  LockedName,
  OpenedFile,
  PutAdmission,
  PutRequest,
  PutResult,
  Store,
  StoreHealth,
  StoreStats,
} from './store-api.js';

/**
 * A {@link Store} that hands every call to the store it wraps: the base of the decorators
 * (MeteredStore, MigrationMode), which override only what they change, as a Go struct
 * embedding the interface does. Each call costs one method call more, nothing else.
 */
export class ForwardingStore implements Store {
  protected readonly inner: Store;

  constructor(inner: Store) {
    this.inner = inner;
  }

  get storeId(): string {
    return this.inner.storeId;
  }

  get stats(): StoreStats {
    return this.inner.stats;
  }

  stat(components: readonly string[]): Promise<FileEntry | null> {
    return this.inner.stat(components);
  }

  peek(name: string): { entry: FileEntry; buffer: Buffer } | undefined {
    return this.inner.peek(name);
  }

  get namesInMemory(): boolean {
    return this.inner.namesInMemory;
  }

  peekLooked(
    components: readonly string[],
  ): Promise<{ entry: FileEntry; buffer: Buffer } | undefined> {
    return this.inner.peekLooked(components);
  }

  openFile(components: readonly string[]): Promise<OpenedFile | null> {
    return this.inner.openFile(components);
  }

  put(req: PutRequest, admit?: PutAdmission): Promise<PutResult> {
    return this.inner.put(req, admit);
  }

  delete(components: readonly string[], version: number): Promise<DeleteResult> {
    return this.inner.delete(components, version);
  }

  withName<T>(components: readonly string[], fn: (locked: LockedName) => Promise<T>): Promise<T> {
    return this.inner.withName(components, fn);
  }

  tombstone(name: string): Promise<number | undefined> {
    return this.inner.tombstone(name);
  }

  list(components: readonly string[], cutoff: number): Promise<AsyncIterable<string>> {
    return this.inner.list(components, cutoff);
  }

  health(): Promise<StoreHealth> {
    return this.inner.health();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
