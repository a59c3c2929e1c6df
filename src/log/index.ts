export { createLogger, Logger } from './logger';
