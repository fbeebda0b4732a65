/**
 * Groups `source` into arrays of up to `size` items, for work done a batch at a time (the
 * lookups of a listing, run in parallel to hide the thread pool's round trip). Pull-based:
 * it takes items only as the consumer asks, so it holds one batch, never the source.
 */
export async function* inBatches<T>(source: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let batch: T[] = [];
  for await (const item of source) {
    batch.push(item);
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}
