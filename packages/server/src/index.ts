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
  StoreOpenError,
  type DeleteResult,
  type FileEntry,
  type LockedName,
  type OpenedFile,
  type PutAdmission,
  type PutRequest,
  type PutResult,
  type Store,
  type StoreHealth,
  type StoreOpenErrorCode,
} from './store/store-api.js';
export { PortStore, type StoreOptions, type WriteGuard } from './store/store.js';
export type { StoreStats } from './store/store-metrics.js';
export type {
  BlobHandle,
  BlobSizes,
  BlobStore,
  StageOptions,
  StagedBlob,
} from './store/blob-store.js';
export type {
  CommitResult,
  MetadataEvents,
  MetadataStore,
  NameChange,
  NameLookup,
  NameRecord,
} from './store/metadata-store.js';
export { LocalBlobStore } from './store/local-blob-store.js';
export { LocalMetadataStore, type LocalMetadataOptions } from './store/local-metadata-store.js';
export { S3BlobStore, type S3BlobStoreOptions } from './store/s3-blob-store.js';
export { PgMetadataStore, type PgMetadataOptions } from './store/pg-metadata-store.js';
export { EngineMetrics } from './store/engine-metrics.js';
export { SCHEMA_VERSION, SchemaTooNewError } from './store/pg-schema.js';
export {
  Sweeper,
  sweepStore,
  type SweepCounts,
  type SweepOptions,
  type SweeperOptions,
  type SweeperStats,
} from './store/sweeper.js';
export { DigestFilter } from './store/digest-filter.js';
export { ReadCaches, type EntryLookup } from './store/read-caches.js';
export { KeyedMutex } from './store/keyed-mutex.js';
export { sdkLogger, SDK_LOG_INTERVAL_MS } from './store/sdk-logger.js';
export {
  storeLayout,
  blobPath,
  linkTarget,
  digestOfTarget,
  type StoreLayout,
} from './store/layout.js';
export { MetaDb, type BlobRecord } from './store/meta-db.js';
export { HOLDER_FILE } from './store/lock-holder.js';
export { DirSync } from './store/dir-sync.js';

export {
  LocalStore,
  openLocalStore as openStore,
  type LocalStoreOptions,
} from './store/open-local.js';
export {
  ScaleOutStore,
  openScaleOutStore,
  parseBucketUrl,
  type BucketLocation,
  type ScaleOutOptions,
} from './store/open-scale-out.js';
export { MeteredStore, StoreMetrics } from './store/store-metrics.js';
export { ForwardingStore } from './store/forwarding-store.js';
export { tombstoneAdmission } from './store/migration.js';
export {
  recoverStore,
  type RecoverOptions,
  type RecoverProgress,
  type RecoverNotice,
  type RecoverPhase,
} from './recover/recover.js';
export { isConsistent, summarizeReport, type RecoverReport } from './recover/report.js';
export { decodeDoubleEncoded } from './recover/double-encoding.js';
