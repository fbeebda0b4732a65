export { AccessLog } from './access-log.js';
export { RequestMetrics, type RequestMetricsOptions } from './request-metrics.js';
