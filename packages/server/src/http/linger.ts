import type { IncomingMessage, ServerResponse } from 'node:http';
import { HEADER } from '@filetracker/shared-protocol';

/**
 * How much of an unread body is read and thrown away after an early answer before the
 * connection is cut anyway: bodies up to this size reach their client's answer also from
 * clients that send the whole body before reading (Python's http.client does).
 */
const LINGER_BYTES = 16 * 1024 * 1024;
/** ...and for how long at most, so that a slow or stalled client cannot hold a connection. */
const LINGER_MS = 5_000;

/**
 * Makes an answer given before the request's body was read (a 507, a 413, a 400 mismatch)
 * reach the client. Closing a socket with unread bytes makes the kernel send a reset, and
 * the reset makes the client's kernel drop the answer it has not read yet: 507s of a full
 * disk came out as ECONNRESET (issue 16). So the answer says `Connection: close`, and after
 * it only our side is shut; what the client still sends is read and discarded until it
 * closes, the body ends, or LINGER_BYTES or LINGER_MS pass (the lingering close of RFC 9112
 * section 9.6). Call before the answer is sent.
 */
export function lingerAfterAnswer(req: IncomingMessage, res: ServerResponse): void {
  const socket = res.socket;
  if (!socket) return;
  res.setHeader(HEADER.connection, 'close');
  let discarded = 0;
  let answered = false;
  let closing = false;
  /** Closes once the answer is flushed, as destroySoon() would have. */
  const close = (): void => {
    if (!answered || closing) return;
    closing = true;
    if (socket.writableFinished) socket.destroy();
    else socket.once('finish', () => socket.destroy());
  };
  // Read on at once: a paused body (a failed upload leaves it so) would stop node:http
  // reading the connection at all.
  req.on('data', (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > LINGER_BYTES) close();
  });
  req.once('close', close);
  req.resume();
  // node:http ends a `Connection: close` response with socket.destroySoon(), which closes
  // the socket once the answer is flushed, unread body and all.
  socket.destroySoon = () => {
    answered = true;
    socket.end();
    // Cut at the deadline, whatever state the socket is in.
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    socket.once('close', () => clearTimeout(timer));
    if (req.readableEnded || req.destroyed || discarded > LINGER_BYTES) close();
  };
}
