export { walkTree, type UnreadableDirHandler, type WalkEntry } from './walk.js';
export { inBatches } from './batches.js';
export { sendFile, type SendFileOptions, type SendProgress } from './send-file.js';
export { readAhead, type ReadAheadStream } from './read-ahead.js';
export type { PositionalReader } from './positional-reader.js';
export { answerHalfClosedClients } from './half-close.js';
export {
  memoryFirstListener,
  type MemoryAnswer,
  type MemoryAnswered,
  type MemoryLookup,
} from './memory-first.js';
export { gracefulStop, type GracefulStopOptions, type StopLogger } from './graceful-stop.js';
export {
  byteCountOfStream,
  sha256OfFile,
  sha256OfStream,
  type ByteSource,
  type StreamDigest,
} from './stream-digest.js';
export { TRANSIENT_NETWORK_ERROR_CODES, isTransientNetworkError } from './transient-errors.js';
export { expandLongOptionPrefixes } from './option-prefixes.js';
export { parseCommandLine } from './command-line.js';
export { byteSize, httpUrl, portNumber, positiveSeconds, wholeNumber } from './cli-values.js';
export { CliError, EXIT_STATUS, exitStatusOf, runCommand } from './cli-error.js';
export { AliasOption, toolProgram, type ToolProgramOptions } from './tool-program.js';
export {
  GATHER_TIMEOUT_MS,
  WorkerChannel,
  aliveWorkers,
  isClusterWorker,
  isTaggedMessage,
  postToWorker,
  runPrimary,
  type ClusterLogger,
  type ClusterMessage,
  type Gathered,
  type PrimaryOptions,
  type TaggedMessage,
  type WorkerHooks,
} from './cluster.js';
