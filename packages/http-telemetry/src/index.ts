export { AccessLog, type AnsweredError } from './access-log.js';
export { createLogger, type LoggerHandle, type LoggerOptions } from './logger.js';
export { isoTime, logFormat } from './log-format.js';
export { logResponseError } from './response-errors.js';
export { RequestMetrics, type RequestMetricsOptions } from './request-metrics.js';
export {
  bufferedLogDestination,
  type LogDestination,
  type LogDestinationOptions,
} from './log-destination.js';
