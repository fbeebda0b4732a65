export * from './errors.js';
export * from './headers.js';
export * from './path.js';
export * from './dates.js';
export * from './client.js';
