import path from 'node:path';
import { FiletrackerClient } from '@filetracker/shared-protocol';

/**
 * Uploads `names` (paths relative to `filesDir`) to a server as the Python client would
 * (gzip, SHA256-Checksum, Logical-Size), `concurrency` at once. Setup, not measured.
 */
export async function seedServer(
  url: string,
  filesDir: string,
  names: readonly string[],
  version: number,
  concurrency = 16,
): Promise<void> {
  const client = new FiletrackerClient(url);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < names.length) {
      const name = names[next++]!;
      await client.put(`/${name}`, path.join(filesDir, name), { version });
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    client.close();
  }
}
