import type { Server } from 'node:http';

/**
 * Makes `server` answer clients that half-close: send their request, then shut down their
 * sending side (`socket.end(request)`, `nc -N`, some HTTP/1.0 clients). RFC 9112 §9.6: a
 * half-closed connection does not mean the client lost interest in the response.
 *
 * Node's http server ends the socket as soon as the client's side ends, unless
 * `httpAllowHalfOpen` is set (lib/_http_server.js, `socketOnEnd`; no createServer option
 * exists), so every request answered asynchronously (a 404 read from disk, a listing, a
 * redirect) lost its answer when the FIN came first. With it set, the socket is ended once
 * the responses already asked for are sent, so a half-closed client still holds nothing
 * open, and a body cut short by the FIN is still a parse error that destroys the socket
 * (the upload ends incomplete). The property is public but untyped, hence the cast; the
 * half-close tests fail if a Node release drops it.
 */
export function answerHalfClosedClients(server: Server): void {
  (server as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
}
