/**
 * Bounds one backend call in time: `work` races a timer of `ms`. When the timer wins, `expire`
 * runs first (a connection drops the session the call was using) and its error is the call's;
 * `work` can ask `expired()` to stop retrying. The timer is cleared whichever way the call ends.
 */
export async function withDeadline<T>(ms: number, expire: () => Error, work: (expired: () => boolean) => Promise<T>): Promise<T> {
  let expired = false;
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      expired = true;
      reject(expire());
    }, ms);
  });
  try {
    return await Promise.race([work(() => expired), limit]);
  } finally {
    clearTimeout(timer);
  }
}
