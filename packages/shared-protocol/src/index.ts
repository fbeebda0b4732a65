// The wire (see wire.ts) and the typed got client.
export * from './wire.js';
export {
  FiletrackerClient,
  type ClientOptions,
  type GetOptions,
  type GetResult,
  type ServerVersion,
  type StatResult,
} from './client.js';
