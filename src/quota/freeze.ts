import { NetvolError } from '../errors';
import { run } from '../system';

const FREEZE_TIMEOUT_MS = 30_000;

/**
 * Runs `work` with the filesystem mounted at `mountpoint` frozen (fsfreeze -f): its dirty data is
 * written out and every write to it waits until the thaw, so what `work` copies of its image is a
 * point-in-time, clean copy. The thaw runs whatever `work` did, also when it failed or was aborted;
 * keep `work` short (a reflink), since the volume's writers are blocked meanwhile, unless the caller
 * asked for a consistent copy.
 */
export async function withFrozen<T>(mountpoint: string, work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  await run('fsfreeze', ['--freeze', mountpoint], { timeoutMs: FREEZE_TIMEOUT_MS, signal }).catch((err: Error) => {
    throw new NetvolError('COMMAND_FAILED', `cannot freeze the filesystem at ${mountpoint} for a point-in-time copy: ${err.message}`, { cause: err });
  });
  try {
    return await work();
  } finally {
    await thaw(mountpoint);
  }
}

/** Thaws, retrying: a filesystem left frozen would hang every writer of the volume. No signal: it must run. */
async function thaw(mountpoint: string): Promise<void> {
  let last: unknown;
  for (let i = 0; i < 5; i++) {
    try {
      await run('fsfreeze', ['--unfreeze', mountpoint], { timeoutMs: FREEZE_TIMEOUT_MS });
      return;
    } catch (err) {
      // "Invalid argument": not frozen (any more); nothing to do.
      if (/Invalid argument/i.test((err as Error).message)) return;
      last = err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new NetvolError('COMMAND_FAILED', `cannot thaw the filesystem at ${mountpoint}: ${(last as Error).message}; its writers wait until \`fsfreeze --unfreeze ${mountpoint}\` succeeds`, { cause: last });
}
