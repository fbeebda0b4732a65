import type { IncomingMessage } from 'node:http';

/**
 * Requests whose name the fast path (fast-path.ts) looked up in the database and could
 * not: the Koa route they go on to answers that failure (a 503 naming the database)
 * instead of asking again, so a database gone silent costs a request one timeout, not two.
 */
export const failedLooks = new WeakMap<IncomingMessage, unknown>();
