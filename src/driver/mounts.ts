import { createImage, GrowResult, growImage, ImageAttributes, ImageFs, imageBehind, mountImage, unmountImage } from '../quota';
import { bindMount, findMount, FsUsage, fsUsage, unmount } from '../system';

/**
 * The mounts the driver makes on this host, as one seam: a volume's image is made, loop-mounted
 * and unmounted, a folder is bind-mounted, a mountpoint is looked up and unmounted. The daemon uses
 * the real kernel (`realMounts`, over quota/ and system/); unit tests may pass a fake so the
 * driver's bookkeeping can be tested without root. Backends' own mounts (sshfs, NFS, FUSE) are the
 * backends' business, not this seam's.
 */
export interface Mounts {
  /** Makes a sparse image of `sizeBytes` at `file` and formats it, with owner and mode on its root. */
  createImage(file: string, sizeBytes: number, fs: ImageFs, attrs: ImageAttributes, signal?: AbortSignal): Promise<void>;
  /** Loop-mounts the image `file` on `target`; nothing to do if `target` already holds it. Stops (and frees the loop device it took) when `signal` aborts. */
  mountImage(file: string, target: string, fs: ImageFs, signal?: AbortSignal): Promise<void>;
  /**
   * Unmounts an image and frees its loop device; succeeds if nothing is mounted. `lazy` even while
   * it is busy. With `file` (the image), also frees any loop device serving it that nothing has
   * mounted (a daemon killed between losetup and mount).
   */
  unmountImage(target: string, opts?: { lazy?: boolean; signal?: AbortSignal; file?: string }): Promise<void>;
  /** Bind-mounts the folder `source` on `target`. */
  bind(source: string, target: string, signal?: AbortSignal): Promise<void>;
  /** Whether something is mounted at exactly `target`. */
  isMounted(target: string): Promise<boolean>;
  /** Unmounts `target`; `lazy` detaches it even while it is busy. */
  unmount(target: string, opts?: { lazy?: boolean; signal?: AbortSignal }): Promise<void>;
  /** Used and available bytes of the filesystem holding `target`. */
  usage(target: string): Promise<FsUsage>;
  /** Bytes of the image file behind the image mounted at `target` (resize). */
  imageBytes(target: string): Promise<number>;
  /**
   * Grows the image mounted at `target` and its filesystem to `sizeBytes`; each step safe to repeat
   * (resize). 'online' while containers use it; 'offline' when only the caller holds the mount, which
   * may then be unmounted and mounted again meanwhile (ext4 grows unmounted).
   */
  growImage(target: string, fs: ImageFs, sizeBytes: number, how: 'online' | 'offline', signal?: AbortSignal): Promise<GrowResult>;
}

/** The kernel's mounts: loop devices and mkfs through quota/, mount(8) and the mount table through system/. */
export const realMounts: Mounts = {
  createImage: (file, sizeBytes, fs, attrs, signal) => createImage(file, sizeBytes, fs, attrs, signal),
  mountImage: (file, target, fs, signal) => mountImage(file, target, fs, signal),
  unmountImage: (target, opts) => unmountImage(target, opts),
  bind: (source, target, signal) => bindMount(source, target, undefined, signal),
  isMounted: async (target) => (await findMount(target)) !== undefined,
  unmount: (target, opts) => unmount(target, opts),
  usage: (target) => fsUsage(target),
  imageBytes: async (target) => (await imageBehind(target)).fileBytes,
  growImage: (target, fs, sizeBytes, how, signal) => growImage(target, fs, sizeBytes, how, signal),
};
