import { access, constants } from 'node:fs/promises';
import path from 'node:path';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { RequestMetrics } from '@filetracker/http-telemetry';

/**
 * Prometheus metrics of ft-legacy-static, in a registry of its own: requests by method and
 * status, their duration, and bytes sent, plus the process metrics.
 */
export class LegacyMetrics {
  readonly registry = new Registry();
  readonly #requests: RequestMetrics;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'ft_legacy_' });
    this.#requests = new RequestMetrics({
      registry: this.registry,
      labelNames: ['method'],
      requests: {
        name: 'ft_legacy_http_requests_total',
        help: 'HTTP requests answered, by method and status',
      },
      duration: {
        name: 'ft_legacy_http_request_duration_seconds',
        help: 'Time from request to the end of the answer',
        buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30],
      },
      bodyBytesOut: { name: 'ft_legacy_http_sent_bytes_total', help: 'Body bytes sent' },
    });
  }

  observe(method: string, status: number, bytes: number, ms: number): void {
    this.#requests.observe([method], status, ms / 1000, 0, bytes);
  }
}

/** 200 while `FT_ROOT/files` can be read; else the reason (for a 503). */
export async function legacyHealth(realRoot: string): Promise<string | undefined> {
  try {
    await access(path.join(realRoot, 'files'), constants.R_OK | constants.X_OK);
    return undefined;
  } catch (err) {
    return `FT_ROOT/files is not readable (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
  }
}
