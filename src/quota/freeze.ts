import { spawnSync } from 'node:child_process';
import { NetvolError } from '../errors';
import { run } from '../system';

const FREEZE_TIMEOUT_MS = 30_000;

/**
 * A mounted image frozen with fsfreeze(8): writers block (their data is flushed first) until
 * thaw(); readers go on. `deadlineMs`, when given, is the longest it may stay frozen: past it the filesystem is
 * thawed by a timer even if the caller never calls thaw() (a stuck copy must not stall the
 * containers writing to it forever); `expired` then says so. A daemon that exits (stopped, or an
 * uncaught error) thaws what it froze on its way out; only a SIGKILL can leave a freeze behind.
 */
export interface Freeze {
  thaw(): Promise<void>;
  readonly expired: boolean;
}

/** Filesystems this process has frozen and not yet thawed: thawed synchronously should the process exit meanwhile. */
const frozenNow = new Set<string>();
let exitHookInstalled = false;

function thawAllAtExit(): void {
  for (const mp of frozenNow) spawnSync('fsfreeze', ['-u', mp], { stdio: 'ignore', timeout: FREEZE_TIMEOUT_MS });
}

export async function freeze(mountpoint: string, deadlineMs?: number, signal?: AbortSignal): Promise<Freeze> {
  if (!exitHookInstalled) {
    process.on('exit', thawAllAtExit);
    exitHookInstalled = true;
  }
  frozenNow.add(mountpoint);
  try {
    await run('fsfreeze', ['-f', mountpoint], { timeoutMs: FREEZE_TIMEOUT_MS, signal });
  } catch (err) {
    // A freeze killed by its timeout may have got through: thaw in any case.
    await run('fsfreeze', ['-u', mountpoint], { timeoutMs: FREEZE_TIMEOUT_MS }).catch(() => undefined);
    frozenNow.delete(mountpoint);
    throw err;
  }
  let thawed: Promise<void> | undefined;
  let expired = false;
  const thaw = (): Promise<void> => {
    thawed ??= (async () => {
      clearTimeout(timer);
      await thawRetrying(mountpoint);
      frozenNow.delete(mountpoint);
    })();
    return thawed;
  };
  const timer =
    deadlineMs === undefined
      ? undefined
      : setTimeout(() => {
          expired = true;
          thaw().catch(() => undefined); // the caller's own thaw() reports it
        }, deadlineMs);
  return {
    thaw,
    get expired() {
      return expired;
    },
  };
}

/** Thaws, retrying: a filesystem left frozen would hang every writer of the volume. No signal: it must run. */
async function thawRetrying(mountpoint: string): Promise<void> {
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

/**
 * Runs `work` with the filesystem mounted at `mountpoint` frozen (see freeze()): its dirty data is
 * written out and every write to it waits until the thaw, so what `work` copies of its image is a
 * point-in-time, clean copy. The thaw runs whatever `work` did, also when it failed or was aborted;
 * keep `work` short (a reflink), since the volume's writers are blocked meanwhile, unless the caller
 * asked for a consistent copy.
 */
export async function withFrozen<T>(mountpoint: string, work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  const frozen = await freeze(mountpoint, undefined, signal).catch((err: Error) => {
    throw new NetvolError('COMMAND_FAILED', `cannot freeze the filesystem at ${mountpoint} for a point-in-time copy: ${err.message}`, { cause: err });
  });
  try {
    return await work();
  } finally {
    await frozen.thaw();
  }
}
