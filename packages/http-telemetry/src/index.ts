export { AccessLog } from './access-log.js';
export { logResponseError } from './response-errors.js';
export { RequestMetrics, type RequestMetricsOptions } from './request-metrics.js';
