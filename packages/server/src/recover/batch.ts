/**
 * Runs `fn` over `items`, `size` at a time, so file-system calls overlap (hiding the thread
 * pool round trip) while work in flight, and memory, stay bounded. The first failure is
 * rethrown once the batch it belongs to has settled; nothing is left running.
 */
export async function forEachBatched<T>(
  items: AsyncIterable<T> | Iterable<T>,
  size: number,
  fn: (item: T) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  let batch: Promise<void>[] = [];
  let failure: { err: unknown } | undefined;
  const settle = async (): Promise<void> => {
    await Promise.all(batch);
    batch = [];
    if (failure) throw failure.err;
  };
  for await (const item of items) {
    signal?.throwIfAborted();
    // Caught at once: a rejection waiting for the batch must not count as unhandled.
    batch.push(
      fn(item).catch((err: unknown) => {
        failure ??= { err };
      }),
    );
    if (batch.length >= size) await settle();
  }
  await settle();
}
