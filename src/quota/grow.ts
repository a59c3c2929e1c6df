import { promises as fs } from 'node:fs';
import path from 'node:path';
import { NetvolError, wrapError } from '../errors';
import { findMount, fsUsage, run } from '../system';
import { loopBackingFile, mountImage, unmountImage, type ImageFs } from './image';

const GROW_TIMEOUT_MS = 40_000;
const STEP_TIMEOUT_MS = 20_000;
/** resize2fs on an unmounted image writes new group descriptors and bitmaps: seconds even for terabytes. */
const OFFLINE_RESIZE_TIMEOUT_MS = 120_000;

/** What growImage() found and did. */
export interface GrowResult {
  /** The loop device under the mount. */
  device: string;
  /** Size of the image file before (bytes). */
  fileBytesBefore: number;
  /** Size of the loop device after its capacity was refreshed (bytes): the image file's size. */
  deviceBytes: number;
  /** Size of the filesystem after the grow, as statfs reports it (its own bookkeeping excluded). */
  filesystemBytes: number;
}

/**
 * The image behind a mounted image volume: its loop device and the file that device serves (the
 * data.img reached through the backend's data path: the local disk, sshfs or the userspace NFS
 * mount). Fails when `target` is not a loop-mounted image.
 */
export async function imageBehind(target: string): Promise<{ device: string; file: string; fileBytes: number }> {
  const entry = await findMount(target);
  if (!entry) throw new NetvolError('INTERNAL', `${target} is not mounted`);
  const file = await loopBackingFile(entry.source);
  if (!file) throw new NetvolError('INTERNAL', `${target} is not a loop-mounted image (it is mounted from ${entry.source})`);
  if (file.endsWith(' (deleted)')) throw new NetvolError('INTERNAL', `the image behind ${target} was deleted or replaced on its backend`);
  return { device: entry.source, file, fileBytes: (await fs.stat(file)).size };
}

/** Bytes of a block device, from sysfs (512-byte sectors, whatever the device's block size). */
async function deviceBytes(device: string): Promise<number> {
  const sectors = Number((await fs.readFile(`/sys/block/${path.basename(device)}/size`, 'utf8')).trim());
  return sectors * 512;
}

/** CAP_SYS_RESOURCE, bit 24 of the capability sets: the kernel grows a mounted ext4 only for a process that has it. */
const CAP_SYS_RESOURCE = 24n;

/**
 * Whether this process may grow a mounted ext4 filesystem: the kernel's online resize
 * (EXT4_IOC_RESIZE_FS) checks CAP_SYS_RESOURCE, which root has on a host but a container or a
 * managed plugin may not be given (xfs_growfs needs only CAP_SYS_ADMIN).
 */
export async function canGrowMountedExt4(): Promise<boolean> {
  const status = await fs.readFile('/proc/self/status', 'utf8').catch(() => '');
  const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  return hex !== undefined && ((BigInt(`0x${hex}`) >> CAP_SYS_RESOURCE) & 1n) === 1n;
}

/** Extends the image file to `sizeBytes` (sparse: no data is written) and makes the new size durable. */
async function extendFile(file: string, fileBytes: number, sizeBytes: number, signal?: AbortSignal): Promise<void> {
  if (fileBytes >= sizeBytes) return;
  await run('truncate', ['--no-create', '-s', String(sizeBytes), file], { timeoutMs: STEP_TIMEOUT_MS, signal });
  await run('sync', [file], { timeoutMs: STEP_TIMEOUT_MS, signal });
}

function refuseShrink(fileBytes: number, sizeBytes: number): void {
  if (fileBytes > sizeBytes) {
    throw new NetvolError('INVALID_OPTION', `the image is already ${fileBytes} bytes, more than the ${sizeBytes} asked: an image never shrinks`);
  }
}

/**
 * Grows the filesystem image mounted at `target` to `sizeBytes`. Each step is safe to repeat, so a
 * grow cut short (a kill -9 between two steps) is finished by calling this again with the same
 * size; never shrinks (an image already larger than `sizeBytes` is refused). `signal` kills the
 * running step.
 *
 * 'online' (containers use the mount and keep writing meanwhile):
 * 1. the image file is extended through the path the loop device serves, so the data path's own
 *    view of the file (the sshfs or FUSE inode) sees the new size at once, then fsynced, so a crash
 *    cannot leave a filesystem larger than its file;
 * 2. the loop device takes the file's new size (`losetup -c`);
 * 3. the filesystem grows to the device's size: `resize2fs` (ext4, online through the kernel, which
 *    needs CAP_SYS_RESOURCE: refused up front, before any change, without it) or `xfs_growfs`.
 *
 * 'offline' (only the caller holds the mount): ext4 is grown unmounted, which needs no capability:
 * the image is unmounted, extended, checked read-only (`e2fsck -f -n`: a filesystem with errors is
 * not grown) and grown by `resize2fs`, then mounted again at `target`, also when a step failed. xfs
 * grows only mounted, so it is grown as online.
 */
export async function growImage(target: string, fsType: ImageFs, sizeBytes: number, how: 'online' | 'offline', signal?: AbortSignal): Promise<GrowResult> {
  const { device, file, fileBytes } = await imageBehind(target);
  refuseShrink(fileBytes, sizeBytes);
  if (fsType === 'ext4' && how === 'offline') return growExt4Unmounted(target, file, fileBytes, sizeBytes, signal);
  if (fsType === 'ext4' && !(await canGrowMountedExt4())) {
    throw new NetvolError(
      'PERMISSION',
      'the kernel grows a mounted ext4 filesystem only for a process with CAP_SYS_RESOURCE, which this netvol process lacks; nothing was changed',
    );
  }
  try {
    await extendFile(file, fileBytes, sizeBytes, signal);
    if ((await deviceBytes(device)) !== sizeBytes) await run('losetup', ['-c', device], { timeoutMs: STEP_TIMEOUT_MS, signal });
    const capacity = await deviceBytes(device);
    if (capacity !== sizeBytes) {
      throw new NetvolError('COMMAND_FAILED', `loop device ${device} shows ${capacity} bytes after losetup -c, not the image's ${sizeBytes}`);
    }
    if (fsType === 'ext4') await run('resize2fs', [device], { timeoutMs: GROW_TIMEOUT_MS, signal });
    else await run('xfs_growfs', ['-d', target], { timeoutMs: GROW_TIMEOUT_MS, signal });
    const after = await fsUsage(target);
    return { device, fileBytesBefore: fileBytes, deviceBytes: capacity, filesystemBytes: after.sizeBytes };
  } catch (err) {
    throw wrapError(err, 'COMMAND_FAILED', `cannot grow image ${path.basename(file)} to ${sizeBytes} bytes`);
  }
}

/** ext4 grown with its image unmounted (see growImage 'offline'); mounted again at `target` whatever happened. */
async function growExt4Unmounted(target: string, file: string, fileBytes: number, sizeBytes: number, signal?: AbortSignal): Promise<GrowResult> {
  await unmountImage(target, { signal });
  let failure: unknown;
  try {
    await extendFile(file, fileBytes, sizeBytes, signal);
    try {
      await run('e2fsck', ['-f', '-n', file], { timeoutMs: GROW_TIMEOUT_MS, signal });
    } catch (err) {
      if (signal?.aborted) throw err;
      throw new NetvolError('COMMAND_FAILED', `its ext4 filesystem has errors (e2fsck -f -n found some), so it was not grown: repair it first (e2fsck -f on data.img with no host using the volume), then resize again`, { cause: err });
    }
    // -f: e2fsck -n just checked it, but does not record the check, which resize2fs looks for. Not
    // killed at the request's deadline: an offline resize2fs cut off midway can damage the filesystem.
    signal?.throwIfAborted();
    await run('resize2fs', ['-f', file], { timeoutMs: OFFLINE_RESIZE_TIMEOUT_MS });
  } catch (err) {
    failure = wrapError(err, 'COMMAND_FAILED', `cannot grow image ${path.basename(file)} to ${sizeBytes} bytes`);
  }
  await mountImage(file, target, 'ext4');
  if (failure) throw failure;
  const { device } = await imageBehind(target);
  return { device, fileBytesBefore: fileBytes, deviceBytes: await deviceBytes(device), filesystemBytes: (await fsUsage(target)).sizeBytes };
}
