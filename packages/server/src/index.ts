export { createApp, type AppOptions } from './http/app.js';
export { createRequestListener } from './http/fast-path.js';
export { Store, StoreOpenError, type FileEntry, type StoreOptions } from './store/store.js';
export {
  storeLayout,
  blobPath,
  linkTarget,
  digestOfTarget,
  type StoreLayout,
} from './store/layout.js';
export { MetaDb, type BlobRecord } from './store/meta-db.js';
export { createLogger } from './logger.js';

import type { StoreOptions } from './store/store.js';
import { Store } from './store/store.js';

/** Opens (creating if new) the store in `dir`. */
export function openStore(dir: string, options?: StoreOptions): Promise<Store> {
  return Store.open(dir, options);
}
