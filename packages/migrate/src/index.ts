export {
  Migrator,
  DEFAULT_CONCURRENCY,
  DEFAULT_RETRIES,
  REPORTED_SKIPS,
  type Difference,
  type FailedFile,
  type LocalFile,
  type MigrateClient,
  type MigrateMode,
  type MigrationSummary,
  type MigratorEvents,
  type MigratorOptions,
  type ResumeState,
  type RetryEvent,
  type ScanProgress,
  type SkipReason,
  type SkippedFile,
  type Tally,
} from './migrator.js';
export { ProgressTracker, NOTICE_CAP, type Notice, type ProgressState } from './progress.js';
export { ProgressView, type ProgressViewProps } from './ui/ProgressView.js';
export { progressLine, startPlainLog, type LineSink } from './plain-log.js';
export {
  StateFile,
  defaultStatePath,
  legacyStatePath,
  stateDirectory,
  type StateIdentity,
} from './state-file.js';
export { HttpUploader, type UploaderOptions } from './uploader.js';
export { BoundedQueue } from './bounded-queue.js';
export { walkSource, type SourceEntry, type SourceOptions } from './source.js';
export { excludeMatcher, type ExcludeMatcher } from './exclude.js';
export { escapeBytes } from './byte-names.js';
export { isTransient } from './retry.js';
export { parseCommandLine, buildProgram, type CliOptions } from './cli-options.js';
export { runCli, main } from './main.js';
