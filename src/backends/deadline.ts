/**
 * Bounds one backend call in time: `work` races a timer of `ms` and, when given, the request's
 * `signal`. When either wins, `expire` runs first (a connection drops the session the call was
 * using, so a request stuck on it is given up) and its error is the call's; `work` can ask
 * `expired()` to stop retrying. The timer and the listener are cleared whichever way the call ends.
 */
export async function withDeadline<T>(ms: number, expire: (why: 'timeout' | 'aborted') => Error, work: (expired: () => boolean) => Promise<T>, signal?: AbortSignal): Promise<T> {
  let expired = false;
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const limit = new Promise<never>((_, reject) => {
    const end = (why: 'timeout' | 'aborted') => {
      if (expired) return;
      expired = true;
      reject(expire(why));
    };
    timer = setTimeout(() => end('timeout'), ms);
    if (signal?.aborted) end('aborted');
    else if (signal) {
      onAbort = () => end('aborted');
      signal.addEventListener('abort', onAbort, { once: true });
    }
  });
  try {
    if (expired) return await limit;
    return await Promise.race([work(() => expired), limit]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}

/** The words for a call cut off by the request's deadline rather than by its own timeout. */
export function abortedBecause(signal: AbortSignal | undefined): string {
  const reason = signal?.reason as { message?: unknown } | undefined;
  return typeof reason?.message === 'string' ? `stopped at the request's deadline (${reason.message})` : "stopped at the request's deadline";
}
