import { ERROR_CODES, ErrorCategory, ErrorCode } from './codes';

/**
 * The base of every error netvol raises on purpose. `message` is written to be read after
 * dockerd's prefix ("VolumeDriver.Create: "): a lowercase sentence naming the volume, what failed,
 * and what to do. It never holds a secret; `cause` keeps the original error for the logs.
 */
export class NetvolError extends Error {
  readonly code: ErrorCode;
  readonly volume?: string;

  constructor(code: ErrorCode, message: string, opts: { volume?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'NetvolError';
    this.code = code;
    this.volume = opts.volume;
  }

  get category(): ErrorCategory {
    return ERROR_CODES[this.code].category;
  }
}

export function isNetvolError(err: unknown, code?: ErrorCode): err is NetvolError {
  return err instanceof NetvolError && (code === undefined || err.code === code);
}

/** Wraps any error with context while keeping a NetvolError's code ("couldn't X: cause"). */
export function wrapError(err: unknown, code: ErrorCode, message: string, volume?: string): NetvolError {
  if (err instanceof NetvolError) {
    return new NetvolError(err.code, `${message}: ${err.message}`, { volume: volume ?? err.volume, cause: err });
  }
  const detail = err instanceof Error ? err.message : String(err);
  return new NetvolError(code, `${message}: ${detail}`, { volume, cause: err });
}
