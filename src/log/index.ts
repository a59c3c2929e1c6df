export { createLogger, Logger } from './logger';
export { OperationTiming, OperationTimings, TimingListener, operationTimings, resultOf, timed, logTimings } from './timings';
