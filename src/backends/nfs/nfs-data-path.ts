import { NetvolError } from '../../errors';
import type { Logger } from '../../log';
import type { NfsTarget } from '../../nfs';
import { cutOffFuseMount, findMount, run, type MountEntry } from '../../system';
import { checkMount, type DataPath, type StartRequest } from '../folder/data-path';
import { KERNEL_FS_TYPES, kernelMountArgs, Mounter, resolveMounter, startUserspace, stopUserspace, USERSPACE_COMMIT_WAIT_MS, USERSPACE_FS_TYPE, userspacePids } from './mounters';
import type { NfsOptions } from './options';

export interface NfsDataPathSettings {
  backend: string;
  options: NfsOptions;
  target: NfsTarget;
  /** Folder inside the export holding the volumes ("" for the export root). */
  folder: string;
  timeoutMs: number;
  logger: Logger;
}

/**
 * The kernel's NFS client (`mount -t nfs`) or, on hosts without one, one FUSE server process per
 * attached volume over netvol's own client library, started in its own session so that it
 * outlives netvol and is found again after a restart. Which of the two is decided once.
 */
export class NfsDataPath implements DataPath {
  readonly label = 'nfs volume';
  private choice: Promise<{ mounter: Mounter; why: string }> | undefined;

  constructor(private readonly s: NfsDataPathSettings) {}

  private mounter(): Promise<{ mounter: Mounter; why: string }> {
    this.choice ??= resolveMounter(this.s.options.mounter).then((choice) => {
      this.s.logger.info(`nfs data path: ${choice.mounter}`, { backend: this.s.backend, mounter: choice.mounter, why: choice.why });
      return choice;
    });
    return this.choice;
  }

  async open(): Promise<void> {
    await this.mounter();
  }

  /** The data path this backend uses on this host. */
  async statusFields(): Promise<Record<string, string>> {
    return { mounter: (await this.mounter()).mounter };
  }

  private limit(): number {
    return Math.min(this.s.timeoutMs, 5000);
  }

  /**
   * A live FUSE server that does not answer is waiting out an NFS server outage: it recovers by
   * itself, and re-attaching would throw away what it holds, so only an error (ENOTCONN) is dead.
   * A kernel mount must answer.
   */
  async check(_volume: string, mountpoint: string, entry: MountEntry, signal?: AbortSignal): Promise<'attached' | 'unreachable' | 'dead'> {
    if (entry.fsType === USERSPACE_FS_TYPE) {
      if ((await userspacePids(mountpoint)).length === 0) return 'dead';
      const result = await checkMount(mountpoint, this.limit(), signal);
      // A FUSE server that lives but does not answer in time waits for its server and resends by itself.
      if (result === 'hung') return 'unreachable';
      return result === 'ok' ? 'attached' : 'dead';
    }
    if (!KERNEL_FS_TYPES.includes(entry.fsType)) return 'dead';
    return (await checkMount(mountpoint, this.limit(), signal)) === 'ok' ? 'attached' : 'dead';
  }

  /** A dead mount is detached lazily; a FUSE server without its mount (it lost the race with an unmount) is ended. */
  async clear(mountpoint: string, entry: MountEntry | undefined): Promise<void> {
    if (entry?.fsType === USERSPACE_FS_TYPE) await stopUserspace(mountpoint, true, this.s.timeoutMs);
    else if (entry) await run('umount', ['-l', mountpoint], { timeoutMs: this.s.timeoutMs });
    else if ((await this.mounter()).mounter === 'userspace') await stopUserspace(mountpoint, true, this.s.timeoutMs);
  }

  async start(req: StartRequest): Promise<Record<string, unknown>> {
    const { mounter } = await this.mounter();
    if (mounter === 'kernel') {
      await run('mount', kernelMountArgs(this.s.options, this.s.folder, req.folder, req.mountpoint), { timeoutMs: this.s.timeoutMs, signal: req.signal }).catch((err: Error) => {
        throw new NetvolError('COMMAND_FAILED', `backend ${this.s.backend}: cannot attach volume ${req.volume}: ${err.message}`, { volume: req.volume, cause: err });
      });
    } else {
      const folderPath = [this.s.folder, req.folder].filter((p) => p !== '').join('/');
      await startUserspace({ ...this.s.target, backend: this.s.backend, timeoutMs: this.s.timeoutMs }, folderPath, req.mountpoint, req.logFile, req.volume, req.signal);
    }
    return { mounter };
  }

  /** A live FUSE server is unmounted cleanly (it commits what it holds first); a dead one, or one left without its mount, lazily. */
  async stop(volume: string, mountpoint: string, entry: MountEntry | undefined): Promise<void> {
    if (entry?.fsType === USERSPACE_FS_TYPE || (!entry && (await userspacePids(mountpoint)).length > 0)) {
      // A server without its mount is one an earlier detach unmounted, still committing (or dead).
      const live = entry ? (await this.check(volume, mountpoint, entry)) !== 'dead' : true;
      await stopUserspace(mountpoint, !live, this.s.timeoutMs, live ? USERSPACE_COMMIT_WAIT_MS : undefined);
    } else if (entry) {
      await run('umount', [mountpoint], { timeoutMs: this.s.timeoutMs });
    }
  }

  /** The FUSE server's connections are reset and it is killed before the mount is detached; a kernel mount has no process to kill: it is force-unmounted, lazily. */
  async fence(mountpoint: string): Promise<boolean> {
    const entry = await findMount(mountpoint);
    if (entry && KERNEL_FS_TYPES.includes(entry.fsType)) await run('umount', ['-f', '-l', mountpoint], { timeoutMs: this.limit() });
    else await cutOffFuseMount(mountpoint, await userspacePids(mountpoint), this.limit());
    return entry !== undefined;
  }
}
