export { createLegacyApp, type LegacyAppOptions } from './app.js';
export { main } from './main.js';
export type { StatusSnapshot } from './request-stats.js';
export { createLegacyListener, type LegacyListenerOptions } from './fast-path.js';
