/** What `GET /status` answers, as lighttpd's mod_status did (uptime, accesses, traffic). */
export interface StatusSnapshot {
  uptimeSeconds: number;
  /** Requests received, this one included. */
  requests: number;
  /** Body bytes of finished responses. */
  bytesSent: number;
  /**
   * Why files cannot be served now (`FT_ROOT/files` unreadable, or a read of it or a
   * worker not answering in time); the answer is then 503. Absent while all is well.
   */
  problem?: string;
}

/** Counters behind `GET /status`. */
export class RequestStats {
  requests = 0;
  bytesSent = 0;
  readonly #startedMs = Date.now();

  snapshot(): StatusSnapshot {
    return {
      uptimeSeconds: Math.floor((Date.now() - this.#startedMs) / 1000),
      requests: this.requests,
      bytesSent: this.bytesSent,
    };
  }
}
