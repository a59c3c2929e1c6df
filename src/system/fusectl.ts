import { promises as fs } from 'node:fs';
import { run } from './exec';
import { findMount } from './mounts';
import { cutOff } from './sockets';

const CONNECTIONS = '/sys/fs/fuse/connections';

/**
 * Aborts the FUSE connection behind `mountpoint` (the kernel's fusectl `abort`): every request in
 * flight and every later one fails at once with ENOTCONN, whether or not the FUSE server process is
 * alive, stuck, or shares its /dev/fuse descriptor with another process. Killing the server alone
 * can leave callers hanging in the kernel when the descriptor lives on elsewhere. Returns false when
 * `mountpoint` is not a FUSE mount.
 */
export async function abortFuseConnection(mountpoint: string): Promise<boolean> {
  const entry = await findMount(mountpoint);
  if (!entry || !entry.fsType.startsWith('fuse')) return false;
  const minor = entry.device.split(':')[1];
  if (!minor) return false;
  const abort = `${CONNECTIONS}/${minor}/abort`;
  try {
    await fs.access(abort);
  } catch {
    // fusectl is not mounted in this mount namespace yet.
    await run('mount', ['-t', 'fusectl', 'none', CONNECTIONS], { timeoutMs: 5000 }).catch(() => undefined);
  }
  await fs.writeFile(abort, '1');
  return true;
}

/**
 * Fences a FUSE mount: stops its server processes (`pids`), aborts the FUSE connection while they
 * are stopped (pending and later calls fail at once), resets their TCP connections and kills them
 * (cutOff), then detaches the mount lazily. Returns whether there was anything to fence; a failure
 * to cut the processes off is thrown after the mount is detached.
 */
export async function cutOffFuseMount(mountpoint: string, pids: number[], timeoutMs: number): Promise<boolean> {
  const mounted = (await findMount(mountpoint)) !== undefined;
  let failure: unknown;
  if (pids.length > 0) await cutOff(pids, timeoutMs, () => abortFuseConnection(mountpoint).catch(() => false)).catch((err) => (failure = err));
  else if (mounted) await abortFuseConnection(mountpoint).catch(() => false);
  if (mounted) await run('umount', ['-l', mountpoint], { timeoutMs });
  if (failure) throw failure;
  return pids.length > 0 || mounted;
}
