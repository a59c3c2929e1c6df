export { ERROR_CODES, ErrorCategory, ErrorCode } from './codes';
export { NetvolError, isNetvolError, wrapError } from './netvol-error';
export { registerSecret, redact, redactString, isSecretKey } from './redact';
export { fromErrno } from './errno';
export { validationMessages, issuesText, describeValue, quoteUserValue, QUOTE_LIMIT } from './validation';
