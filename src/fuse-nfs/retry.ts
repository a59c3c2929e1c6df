import { isTransportError } from '../nfs';

export interface RetryPolicy {
  /** Give up after this many milliseconds of failed attempts; 0 retries for ever, as a "hard" NFS mount does. */
  giveUpAfterMs: number;
  /** Called once per outage, when the first attempt fails, and again when a call gets through. */
  onOutage?: (what: string, err: unknown) => void;
  onRecovery?: (what: string, ms: number) => void;
  /** True once the server is shutting down: waiting calls stop retrying. */
  stopping?: () => boolean;
}

/**
 * Runs `fn` until it succeeds or fails with something other than a transport error. The library
 * already reconnects and retransmits inside one call; this loop makes a server that stays away
 * longer than one call's deadline look like a delay to applications, not an error.
 *
 * `fn` receives whether this is a repeat: non-idempotent operations use it to recognise the
 * answer to a request the server had already carried out (EEXIST after a MKDIR, ENOENT after a
 * REMOVE) as success.
 */
export async function hard<T>(what: string, policy: RetryPolicy, fn: (repeat: boolean) => Promise<T>): Promise<T> {
  const started = Date.now();
  let failures = 0;
  for (;;) {
    try {
      const result = await fn(failures > 0);
      if (failures > 0) policy.onRecovery?.(what, Date.now() - started);
      return result;
    } catch (err) {
      if (!isTransportError(err) || policy.stopping?.()) throw err;
      if (policy.giveUpAfterMs > 0 && Date.now() - started > policy.giveUpAfterMs) throw err;
      if (failures === 0) policy.onOutage?.(what, err);
      failures++;
      await new Promise((r) => setTimeout(r, Math.min(1000, 50 * 2 ** Math.min(failures, 5))));
    }
  }
}
