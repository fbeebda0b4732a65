export { createApp, type AppOptions } from './http/app.js';
export { createRequestListener } from './http/fast-path.js';
export {
  FallbackProbe,
  type FallbackProbeOptions,
  type FallbackStatus,
  type ProbeResult,
} from './http/fallback-probe.js';
export { ServerMetrics, Telemetry, type RequestRecord } from './http/metrics.js';
export {
  Store,
  StoreOpenError,
  type FileEntry,
  type StoreOpenErrorCode,
  type StoreOptions,
} from './store/store.js';
export {
  storeLayout,
  blobPath,
  linkTarget,
  digestOfTarget,
  type StoreLayout,
} from './store/layout.js';
export { MetaDb, type BlobRecord } from './store/meta-db.js';
export { DirSync } from './store/dir-sync.js';

import type { StoreOptions } from './store/store.js';
import { Store } from './store/store.js';

/** Opens (creating if new) the store in `dir`. */
export function openStore(dir: string, options?: StoreOptions): Promise<Store> {
  return Store.open(dir, options);
}
export {
  recoverStore,
  RecoverError,
  type RecoverErrorCode,
  type RecoverOptions,
  type RecoverProgress,
  type RecoverNotice,
  type RecoverPhase,
} from './recover/recover.js';
export { isConsistent, summarizeReport, type RecoverReport } from './recover/report.js';
export { decodeDoubleEncoded } from './recover/double-encoding.js';
