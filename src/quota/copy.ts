import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NetvolError, wrapError } from '../errors';
import { CommandFailedError, firstStderrLine, run, unmount } from '../system';
import type { ImageAttributes, ImageFs } from './image';

/** A copy through this host has no per-call timeout of its own: the caller's signal ends it. This only stops a runaway. */
const COPY_TIMEOUT_MS = 24 * 3600_000;
const FS_TOOL_TIMEOUT_MS = 120_000;

function copyError(err: unknown, what: string): NetvolError {
  const stderr = err instanceof CommandFailedError ? err.stderr : '';
  if (/No space left|Disk quota exceeded/i.test(stderr)) return new NetvolError('NO_SPACE', `${what}: no space left on the target`, { cause: err });
  return wrapError(err, 'COMMAND_FAILED', what);
}

export interface CopyTreeOptions {
  /**
   * The target sets a symlink's own owner and times (default). False (an sshfs target, where they
   * would reach the link's target): links are made with none of their own, and the owners and
   * times of everything else are applied after the copy, never through a link.
   */
  symlinkAttributes?: boolean;
}

/** Entries of one folder whose owners and times are applied at once. */
const ATTR_BATCH = 16;

/**
 * Copies the contents of the folder `src` into the existing folder `dst` (and `src`'s own owner,
 * mode and times onto `dst`) with cp -a: owners, modes, times, symlinks, hard links, extended
 * attributes and holes kept; a reflink where both sides are on one filesystem that has them.
 */
export async function copyTree(src: string, dst: string, signal?: AbortSignal, opts: CopyTreeOptions = {}): Promise<void> {
  const linkAttrs = opts.symlinkAttributes !== false;
  const preserve = linkAttrs ? [] : ['--no-preserve=ownership,timestamps'];
  await run('cp', ['-a', ...preserve, '--reflink=auto', '--sparse=always', '--', `${src}/.`, `${dst}/`], { timeoutMs: COPY_TIMEOUT_MS, signal }).catch((err) => {
    if (!signal?.aborted && onlyUnsupportedTimes(err)) return;
    throw copyError(err, `cannot copy the files of ${src} to ${dst}`);
  });
  if (!linkAttrs) {
    await applyOwnersAndTimes(src, dst, '', signal).catch((err) => {
      throw copyError(err, `cannot give the copy in ${dst} the owners and times of ${src}`);
    });
  }
}

/**
 * The owner, mode and times of every entry below `src` but symlinks onto its copy below `dst`,
 * each folder's after its contents (setting them inside would change its mtime); the mode again
 * after the owner, as a chown drops setuid and setgid. Times to the microsecond (utimes' precision).
 */
async function applyOwnersAndTimes(src: string, dst: string, rel: string, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted();
  const from = path.join(src, rel);
  const st = await fs.lstat(from, { bigint: true });
  if (st.isSymbolicLink()) return;
  if (st.isDirectory()) {
    const names = await fs.readdir(from);
    for (let i = 0; i < names.length; i += ATTR_BATCH) {
      await Promise.all(names.slice(i, i + ATTR_BATCH).map((n) => applyOwnersAndTimes(src, dst, path.join(rel, n), signal)));
    }
  }
  const to = path.join(dst, rel);
  await fs.chown(to, Number(st.uid), Number(st.gid));
  await fs.chmod(to, Number(st.mode & 0o7777n));
  await fs.utimes(to, Number(st.atimeNs / 1000n) / 1e6, Number(st.mtimeNs / 1000n) / 1e6);
}

/**
 * cp copies everything and only reports, at the end, that the target filesystem cannot set the
 * times of some entries (a symlink's, on the userspace NFS mount): the copy is complete otherwise.
 */
function onlyUnsupportedTimes(err: unknown): boolean {
  if (!(err instanceof CommandFailedError) || err.exitCode !== 1) return false;
  const lines = err.stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  return lines.length > 0 && lines.every((l) => /^cp: preserving times for .*: Operation not supported$/.test(l));
}

const reflinksByDevice = new Map<bigint, Promise<boolean>>();

/**
 * Whether the filesystem holding `dir` makes reflinks: probed once per filesystem, by cloning a
 * one-byte file at `names[0]` (a name in `dir`) to `names[1]` (both removed), so that a caller can
 * skip what only a reflink makes cheap (a backup's freeze for a snapshot) where there are none.
 */
export async function reflinksIn(dir: string, names: [string, string]): Promise<boolean> {
  const dev = (await fs.stat(dir, { bigint: true })).dev;
  let known = reflinksByDevice.get(dev);
  if (!known) {
    const [a, b] = names.map((n) => path.join(dir, n));
    known = (async () => {
      try {
        await fs.writeFile(a, 'x', { mode: 0o600, flag: 'wx' });
        await run('cp', ['--reflink=always', '--', a, b], { timeoutMs: COPY_TIMEOUT_MS });
        return true;
      } catch {
        return false;
      } finally {
        await fs.rm(a, { force: true }).catch(() => undefined);
        await fs.rm(b, { force: true }).catch(() => undefined);
      }
    })();
    reflinksByDevice.set(dev, known);
  }
  return known;
}

/**
 * Copies an image file to a new file (0600), keeping holes: by sharing blocks where the filesystem
 * has reflinks (constant time), else by copying its data. `reflinkOnly`: never copy data, fail at
 * once where there are no reflinks (a point-in-time copy taken while the image is frozen). Leaves
 * no `dst` when it fails.
 */
export async function copyImageFile(src: string, dst: string, opts: { reflinkOnly?: boolean; signal?: AbortSignal } = {}): Promise<void> {
  // A reflink shares the holes too (and cp takes --reflink=always only with the default --sparse).
  const how = opts.reflinkOnly ? ['--reflink=always'] : ['--reflink=auto', '--sparse=always'];
  await run('cp', [...how, '--', src, dst], { timeoutMs: COPY_TIMEOUT_MS, signal: opts.signal }).catch(async (err) => {
    await fs.rm(dst, { force: true }).catch(() => undefined);
    throw copyError(err, `cannot copy image ${path.basename(src)}`);
  });
  await fs.chmod(dst, 0o600).catch(() => undefined);
}

/**
 * Makes a copied image its own volume: grows it to `growTo` (file, then filesystem: ext4 offline
 * with e2fsck and resize2fs, xfs online on a private loop mount), applies a new owner and mode to its root, and gives an xfs copy a new UUID
 * (the kernel refuses to mount two xfs filesystems with one UUID, so the copy could never be used
 * beside its source). Mounting also replays the journal of a copy taken from a live filesystem.
 * Nothing to do (and no mount) for an ext4 copy that keeps its size and root.
 */
export async function adoptImageCopy(file: string, fsType: ImageFs, change: { growTo?: number; attrs?: ImageAttributes }, signal?: AbortSignal): Promise<void> {
  const attrs = change.attrs ?? {};
  const touchRoot = attrs.uid !== undefined || attrs.gid !== undefined || attrs.mode !== undefined;
  const size = (await fs.stat(file)).size;
  const grow = change.growTo !== undefined && change.growTo > size;
  if (!grow && !touchRoot && fsType === 'ext4') return;
  if (grow) await fs.truncate(file, change.growTo);
  try {
    // ext4 grows offline: an online resize needs CAP_SYS_RESOURCE, which a daemon in a container
    // may lack. e2fsck first replays the journal of a copy taken from a mounted filesystem.
    if (grow && fsType === 'ext4') await growExt4Offline(file, signal);
    const onlineGrow = grow && fsType === 'xfs';
    if (onlineGrow || touchRoot || fsType === 'xfs') {
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'netvol-clone-'));
      try {
        const opts = ['loop', 'nodev', 'nosuid', ...(fsType === 'xfs' ? ['nouuid'] : [])].join(',');
        await run('mount', ['-t', fsType, '-o', opts, file, dir], { timeoutMs: FS_TOOL_TIMEOUT_MS, signal });
        try {
          if (onlineGrow) await run('xfs_growfs', [dir], { timeoutMs: FS_TOOL_TIMEOUT_MS, signal });
          if (attrs.uid !== undefined || attrs.gid !== undefined) await fs.chown(dir, attrs.uid ?? -1, attrs.gid ?? -1);
          if (attrs.mode !== undefined) await fs.chmod(dir, attrs.mode);
        } finally {
          await unmount(dir, { timeoutMs: FS_TOOL_TIMEOUT_MS });
        }
      } finally {
        await fs.rmdir(dir).catch(() => undefined);
      }
    }
    if (fsType === 'xfs') await run('xfs_admin', ['-U', 'generate', file], { timeoutMs: FS_TOOL_TIMEOUT_MS, signal });
  } catch (err) {
    throw wrapError(err, 'COMMAND_FAILED', `cannot make the copied image ${path.basename(file)} a volume of its own`);
  }
}

/**
 * e2fsck -f (exit 1: it fixed something, such as replaying the journal of a copy taken from a
 * mounted filesystem, which is fine), then resize2fs to the file's size. e2fsck -y makes a
 * lost+found the volume did not have (netvol images have none): it is removed again.
 */
async function growExt4Offline(file: string, signal?: AbortSignal): Promise<void> {
  const hadLostFound = !firstStderrLine((await run('debugfs', ['-R', 'stat /lost+found', file], { timeoutMs: FS_TOOL_TIMEOUT_MS, signal })).stderr);
  await run('e2fsck', ['-f', '-y', file], { timeoutMs: FS_TOOL_TIMEOUT_MS, signal }).catch((err) => {
    if (!(err instanceof CommandFailedError && err.exitCode === 1)) throw err;
  });
  if (!hadLostFound) {
    const { stderr } = await run('debugfs', ['-w', '-R', 'rmdir lost+found', file], { timeoutMs: FS_TOOL_TIMEOUT_MS, signal });
    if (firstStderrLine(stderr)) throw new NetvolError('COMMAND_FAILED', `debugfs failed to remove the lost+found e2fsck made: ${firstStderrLine(stderr)}`);
  }
  await run('resize2fs', [file], { timeoutMs: FS_TOOL_TIMEOUT_MS, signal });
}

/** Mounts an image on a private folder for `work` (e.g. to copy files into a new image), then unmounts it. */
export async function withImageMounted<T>(file: string, fsType: ImageFs, work: (dir: string) => Promise<T>, signal?: AbortSignal): Promise<T> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'netvol-clone-'));
  try {
    await run('mount', ['-t', fsType, '-o', 'loop,nodev,nosuid', file, dir], { timeoutMs: FS_TOOL_TIMEOUT_MS, signal });
    try {
      return await work(dir);
    } finally {
      await unmount(dir, { timeoutMs: FS_TOOL_TIMEOUT_MS });
    }
  } finally {
    await fs.rmdir(dir).catch(() => undefined);
  }
}
