import type { BenchConfig } from './config.js';
import type { Tools } from './tools.js';

/** What every section gets from run.ts. */
export interface BenchContext {
  config: BenchConfig;
  tools: Tools;
  /** A progress line on stderr (the report goes to a file). */
  log(message: string): void;
}

/** A fixed version for uploads: 2024-01-01T00:00:00Z. */
export const VERSION = 1_704_067_200;

/** `?last_modified=` for {@link VERSION}, form-encoded as the Python client sends it. */
export const LAST_MODIFIED_QUERY = '?last_modified=Mon%2C+01+Jan+2024+00%3A00%3A00+-0000';
