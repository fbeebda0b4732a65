// ft-server's local store alone, without its HTTP layer, telemetry or the scale-out
// backends: what `ft-migrate --into` opens. Importing the package's index loads Koa, pino,
// prom-client, the S3 SDK and pg as well, 0.8 s of CPU at every start of ft-migrate
// (issue 15); this entry loads the store and classic-level.
export { openLocalStore as openStore, type LocalStoreOptions } from './store/open-local.js';
export { tombstoneAdmission } from './store/migration.js';
export {
  StoreOpenError,
  type PutAdmission,
  type PutRequest,
  type Store,
} from './store/store-api.js';
