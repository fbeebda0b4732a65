export * from './errors.js';
export * from './headers.js';
export * from './path.js';
export * from './dates.js';
export * from './walk.js';
export * from './read-ahead.js';
export * from './cli.js';
export * from './client.js';
