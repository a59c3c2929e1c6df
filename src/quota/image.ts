import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NetvolError, wrapError } from '../errors';
import { findMount, firstStderrLine, readMountTable, run, unmount } from '../system';

export type ImageFs = 'ext4' | 'xfs';

export interface ImageAttributes {
  uid?: number;
  gid?: number;
  mode?: number;
}

const MKFS_TIMEOUT_MS = 60_000;
const MOUNT_TIMEOUT_MS = 30_000;

const MiB = 1024 * 1024;

/**
 * mkfs.ext4's argv for an image of `sizeBytes`: as much of `size` usable as ext4 allows, keeping a
 * journal. Left to itself, mke2fs gives filesystems under 512 MiB 1 KiB blocks and an inode per
 * 4 KiB, and sizes the journal by block count (a 1 GiB volume gets 32 MiB of journal); for a volume
 * with a quota both are a poor trade.
 * - `-m 0`: no blocks reserved for root; the volume belongs to its containers;
 * - 1 KiB blocks under 64 MiB (ext4's smallest journal, 1024 blocks, is then 1 MiB, not 4 MiB),
 *   4 KiB from there on;
 * - under 512 MiB, one inode per 16 KiB (mke2fs's own ratio for larger filesystems);
 * - under 4 GiB, a journal of 1/64 of the size (at least 1024 blocks); from 4 GiB mke2fs's own
 *   (64 MiB and up, under 1 %). The journal holds metadata only (ordered mode), so this bounds how
 *   much metadata waits for a checkpoint, not what a crash can lose;
 * - lazy init and nodiscard: formatting a 100 GiB image takes under a second and the sparse file
 *   stays sparse (the kernel zeroes inode tables in the background).
 * Existing images are not touched: all of this applies when an image is made.
 */
export function mkfsExt4Args(file: string, sizeBytes: number, attrs: ImageAttributes = {}): string[] {
  const ext = ['lazy_itable_init=1', 'lazy_journal_init=1', 'nodiscard'];
  if (attrs.uid !== undefined || attrs.gid !== undefined) ext.push(`root_owner=${attrs.uid ?? 0}:${attrs.gid ?? 0}`);
  const blockSize = sizeBytes < 64 * MiB ? 1024 : 4096;
  const args = ['-q', '-F', '-m', '0', '-b', String(blockSize)];
  if (sizeBytes < 512 * MiB) args.push('-i', '16384');
  if (sizeBytes < 4096 * MiB) args.push('-J', `size=${Math.max((1024 * blockSize) / MiB, Math.floor(sizeBytes / 64 / MiB))}`);
  return [...args, '-E', ext.join(','), file];
}

/**
 * Creates a sparse file of `sizeBytes` at `file` and formats it, with an empty root (databases
 * refuse a data directory that holds lost+found) and the owner and mode of `attrs`. Undone on
 * failure: no half-made image is left behind. When `signal` aborts, the running mkfs/debugfs/mount
 * is killed and the image removed.
 */
export async function createImage(file: string, sizeBytes: number, fsType: ImageFs, attrs: ImageAttributes = {}, signal?: AbortSignal): Promise<void> {
  const handle = await fs.open(file, 'wx', 0o600);
  try {
    try {
      await handle.truncate(sizeBytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (fsType === 'ext4') {
      await run('mkfs.ext4', mkfsExt4Args(file, sizeBytes, attrs), { timeoutMs: MKFS_TIMEOUT_MS, signal });
      await removeLostFound(file, signal);
    } else {
      // mkfs.xfs makes no lost+found (only xfs_repair does).
      await run('mkfs.xfs', ['-q', '-f', '-K', file], { timeoutMs: MKFS_TIMEOUT_MS, signal });
    }
    const needsRootFix = attrs.mode !== undefined || (fsType === 'xfs' && (attrs.uid !== undefined || attrs.gid !== undefined));
    if (needsRootFix) await fixRoot(file, fsType, attrs, signal);
  } catch (err) {
    await fs.rm(file, { force: true }).catch(() => undefined);
    throw wrapError(err, 'COMMAND_FAILED', `cannot format image ${path.basename(file)} as ${fsType}`);
  }
}

/**
 * mke2fs always makes /lost+found; debugfs removes it from the unmounted image (no loop device
 * needed). e2fsck finds nothing wrong without it; only a repair that has orphans to put there
 * (e2fsck -p or -y) makes it again. debugfs exits 0 even when a request fails, so its stderr is read.
 */
async function removeLostFound(file: string, signal?: AbortSignal): Promise<void> {
  const { stderr } = await run('debugfs', ['-w', '-R', 'rmdir lost+found', file], { timeoutMs: MKFS_TIMEOUT_MS, signal });
  const why = firstStderrLine(stderr);
  if (why) throw new NetvolError('COMMAND_FAILED', `debugfs failed to remove lost+found: ${why}`);
}

/** Mounts the new image on a private temporary folder to set its root's owner and mode. */
async function fixRoot(file: string, fsType: ImageFs, attrs: ImageAttributes, signal?: AbortSignal): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'netvol-mkfs-'));
  try {
    await mountImage(file, dir, fsType, signal);
    try {
      if (attrs.uid !== undefined || attrs.gid !== undefined) await fs.chown(dir, attrs.uid ?? -1, attrs.gid ?? -1);
      if (attrs.mode !== undefined) await fs.chmod(dir, attrs.mode);
    } finally {
      await unmountImage(dir);
    }
  } finally {
    await fs.rmdir(dir).catch(() => undefined);
  }
}

/**
 * Attaches `file` to a loop device (direct I/O, so pages are not cached twice) and mounts it on
 * `target`. If `target` already holds this image (an earlier netvol process mounted it), nothing
 * is done. When `signal` aborts, losetup or mount is killed and what was half made is undone: a
 * mount that got through is unmounted and a loop device this call took is freed.
 */
export async function mountImage(file: string, target: string, fsType: ImageFs, signal?: AbortSignal): Promise<void> {
  const existing = await findMount(target);
  if (existing) {
    const backing = await loopBackingFile(existing.source);
    if (backing === file) return;
    throw new NetvolError('INTERNAL', `${target} is already a mountpoint of ${existing.source}`);
  }
  await fs.mkdir(target, { recursive: true, mode: 0o755 });
  // One image, one loop device: two filesystems over one image corrupt it. A device still serving
  // this very file (a process keeps a lazily unmounted mount alive) is mounted again — the kernel
  // then shares its filesystem; a device left on an older file at this path is refused.
  const attached = await loopsAttachedTo(file);
  const stale = attached.filter((l) => !l.sameFile);
  if (stale.length > 0) {
    throw new NetvolError(
      'IN_USE',
      `image ${path.basename(file)} is still attached on ${stale.map((l) => l.device).join(', ')} from an earlier attachment that a process may still use: stop what uses it, then detach it (losetup -d)`,
    );
  }
  const reuse = attached.find((l) => l.sameFile)?.device;
  const device = reuse ?? (await attachLoop(file, signal));
  try {
    await run('mount', ['-t', fsType, '-o', 'nodev,nosuid', device, target], { timeoutMs: MOUNT_TIMEOUT_MS, signal });
  } catch (err) {
    // A mount(8) killed after the kernel mounted the image leaves that mount behind: undo it too.
    if ((await findMount(target))?.source === device) await unmount(target, { timeoutMs: MOUNT_TIMEOUT_MS }).catch(() => undefined);
    if (!reuse) await run('losetup', ['-d', device]).catch(() => undefined);
    throw wrapError(err, 'COMMAND_FAILED', `cannot mount image ${path.basename(file)}`);
  }
}

/**
 * A free loop device attached to `file`. A losetup killed by `signal` may have attached one before
 * it died: any device serving this file that was not there before is freed again.
 */
async function attachLoop(file: string, signal?: AbortSignal): Promise<string> {
  try {
    // 512-byte sectors always: with direct I/O the kernel would otherwise give the device the
    // backing file's direct-I/O alignment, which is the block size (4096) for a file on XFS that
    // shares extents (a reflinked clone and its source), and an xfs image with 512-byte sectors
    // (or ext4 with 1 KiB blocks) could then no longer be mounted. Where 512 is too fine for
    // direct I/O the kernel uses the page cache for that device instead.
    return (await run('losetup', ['--find', '--show', '--direct-io=on', '--sector-size', '512', file], { timeoutMs: MOUNT_TIMEOUT_MS, signal })).stdout.trim();
  } catch (err) {
    for (const l of await loopsAttachedTo(file).catch(() => [])) if (l.sameFile) await run('losetup', ['-d', l.device]).catch(() => undefined);
    throw err;
  }
}

/**
 * Unmounts an image mounted by mountImage() and frees its loop device. Succeeds if not mounted.
 * `lazy` (fencing) detaches the mount even while processes use it; the loop device then goes away
 * with their last reference (losetup -d marks it for auto-clear).
 */
export async function unmountImage(target: string, opts: { lazy?: boolean; signal?: AbortSignal; file?: string } = {}): Promise<void> {
  const entry = await findMount(target);
  if (entry) {
    await unmount(target, { timeoutMs: MOUNT_TIMEOUT_MS, lazy: opts.lazy, signal: opts.signal });
    if (entry.source.startsWith('/dev/loop')) await run('losetup', ['-d', entry.source]).catch(() => undefined);
  }
  if (opts.file) await freeUnmountedLoops(opts.file);
}

/**
 * Frees the loop devices serving `file` (or an earlier file at that path) that nothing has mounted:
 * what a daemon killed between losetup and mount left. One still open elsewhere (a lazily
 * unmounted filesystem in use) is only marked, and goes with its last user (losetup -d sets
 * auto-clear on a busy device).
 */
async function freeUnmountedLoops(file: string): Promise<void> {
  // By path only, never a stat of the file: on a networked backend it may sit on a mount whose server does not answer.
  const devices = (await loopsBackedBy(file).catch(() => [])).map((l) => l.name);
  if (devices.length === 0) return;
  const mounted = new Set((await readMountTable()).map((e) => e.source));
  for (const device of devices) if (!mounted.has(device)) await run('losetup', ['-d', device]).catch(() => undefined);
}

/** Loop devices whose backing path is `file` (also one since deleted), from losetup's listing. */
async function loopsBackedBy(file: string): Promise<Array<{ name: string; 'back-ino': number | string; 'back-maj:min': string }>> {
  const { stdout } = await run('losetup', ['-J', '-l', '-O', 'NAME,BACK-INO,BACK-MAJ:MIN,BACK-FILE'], { timeoutMs: MOUNT_TIMEOUT_MS });
  if (!stdout.trim()) return [];
  type Row = { name: string; 'back-ino': number | string; 'back-maj:min': string; 'back-file': string | null };
  return (JSON.parse(stdout) as { loopdevices: Row[] }).loopdevices.filter((l) => [file, `${file} (deleted)`].includes((l['back-file'] ?? '').trim()));
}

/** The file behind a loop device, or undefined when it is not one. */
export async function loopBackingFile(device: string): Promise<string | undefined> {
  const name = path.basename(device);
  if (!name.startsWith('loop')) return undefined;
  try {
    return (await fs.readFile(`/sys/block/${name}/loop/backing_file`, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

/**
 * Loop devices whose backing path is `file` (also a file since replaced or deleted at that path, or
 * one on an earlier mount at that path), and whether each still serves that very file (same device
 * and inode). `losetup -j` would match by inode only and miss the stale ones.
 */
async function loopsAttachedTo(file: string): Promise<Array<{ device: string; sameFile: boolean }>> {
  const found = await loopsBackedBy(file);
  if (found.length === 0) return [];
  const st = await fs.stat(file);
  const major = Math.floor(st.dev / 256) & 0xfff;
  const minor = (st.dev & 0xff) | (Math.floor(st.dev / 4096) & ~0xff);
  return found.map((l) => ({ device: l.name, sameFile: Number(l['back-ino']) === st.ino && l['back-maj:min'].trim() === `${major}:${minor}` }));
}
