import { NetvolError } from '../errors';

/** Races `work` against a timer; the caller's text says what was being waited for. */
export async function withTimeout<T>(work: Promise<T>, ms: number, what: string, volume?: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new NetvolError('TIMEOUT', `${what} did not finish within ${Math.round(ms / 1000)} s`, { volume })), ms);
  });
  try {
    return await Promise.race([work, limit]);
  } finally {
    clearTimeout(timer);
  }
}
