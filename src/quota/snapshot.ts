import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NetvolError, wrapError } from '../errors';
import { findMount, run, unmount } from '../system';
import type { ImageFs } from './image';

const MOUNT_TIMEOUT_MS = 30_000;

/** A point-in-time copy of an image, mounted read-only for reading; remove() unmounts it and deletes the copy. */
export interface MountedSnapshot {
  /** Where the copy's filesystem is mounted (read-only). */
  dir: string;
  remove(): Promise<void>;
}

/**
 * Mounts the image copy `copy` read-only in a private temporary folder: ext4 with `noload` and xfs
 * with `norecovery` (the copy was taken frozen, so its journal holds nothing to replay, and a
 * read-only mount must never write), xfs also `nouuid` (the copy shares the live image's UUID).
 * `mount -o loop` takes a loop device that is freed again at the unmount. remove() undoes all of it,
 * the copy file included, and never throws.
 */
export async function mountSnapshot(copy: string, fsType: ImageFs, signal?: AbortSignal): Promise<MountedSnapshot> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'netvol-snapshot-'));
  const remove = async (): Promise<void> => {
    if (await findMount(dir).catch(() => undefined)) await unmount(dir, { timeoutMs: MOUNT_TIMEOUT_MS }).catch(() => unmount(dir, { lazy: true }).catch(() => undefined));
    await fs.rmdir(dir).catch(() => undefined);
    await fs.rm(copy, { force: true }).catch(() => undefined);
  };
  const opts = fsType === 'xfs' ? 'loop,ro,norecovery,nouuid,nodev,nosuid,noexec' : 'loop,ro,noload,nodev,nosuid,noexec';
  try {
    await run('mount', ['-t', fsType, '-o', opts, copy, dir], { timeoutMs: MOUNT_TIMEOUT_MS, signal });
  } catch (err) {
    await remove();
    throw wrapError(err, 'COMMAND_FAILED', `cannot mount the snapshot ${path.basename(copy)}`);
  }
  if (!(await findMount(dir))) {
    await remove();
    throw new NetvolError('COMMAND_FAILED', `the snapshot ${path.basename(copy)} was not mounted`);
  }
  return { dir, remove };
}
