import { posix } from 'node:path';
import type { Logger } from '../../log';
import type { MountEntry } from '../../system';
import { checkMount, type DataPath, type StartRequest } from '../folder/data-path';
import type { SftpAccess } from './access';
import { fenceSshfs, SSHFS_FS_TYPE, sshfsPids, startSshfs, stopSshfs } from './sshfs';

/** One sshfs process per attached volume, started in its own session so that it outlives netvol, and found again after a restart. */
export class SshfsDataPath implements DataPath {
  readonly label = 'sshfs';

  constructor(
    private readonly backend: string,
    private readonly access: SftpAccess,
    private readonly timeoutMs: number,
    private readonly log: Logger,
  ) {}

  async check(volume: string, mountpoint: string, entry: MountEntry, signal?: AbortSignal): Promise<'attached' | 'unreachable' | 'dead'> {
    if (entry.fsType !== SSHFS_FS_TYPE) return 'dead';
    if ((await sshfsPids(mountpoint)).length === 0) return 'dead';
    const result = await checkMount(mountpoint, Math.min(this.timeoutMs, 5000), signal);
    if (result === 'ok') return 'attached';
    if (result === 'disconnected') {
      this.log.warn('sshfs attachment is dead', { volume, backend: this.backend, why: 'transport endpoint is not connected' });
      return 'dead';
    }
    // sshfs lives and waits for its server: it reconnects by itself once the server answers.
    // Replacing it now would cut off the containers that use it, and a new one could not reach the
    // server either, so it stays. A server that refuses at once (stopped, restarting) leaves the
    // attachment usable for a new container, as before; one that does not answer at all is
    // 'unreachable', so a Mount says so within one timeout instead of waiting on it again.
    if (result === 'failed') {
      this.log.warn('the server of an attached volume refused the request right now; sshfs will reconnect', { volume, backend: this.backend });
      return 'attached';
    }
    this.log.warn('the server of an attached volume does not answer right now; sshfs will reconnect', { volume, backend: this.backend, why: 'no answer in time' });
    return 'unreachable';
  }

  async clear(mountpoint: string, entry: MountEntry | undefined): Promise<void> {
    if (entry) await stopSshfs(mountpoint, true, this.timeoutMs);
  }

  /** Image volumes get no `reconnect` (see sshfsArgs). */
  async start(req: StartRequest): Promise<Record<string, unknown>> {
    await startSshfs(await this.access.sshfsTarget(), posix.join(this.access.options.path, req.folder), req.mountpoint, req.directoryLayout, req.logFile, req.volume, req.signal);
    return { reconnect: req.directoryLayout };
  }

  async stop(_volume: string, mountpoint: string, entry: MountEntry | undefined): Promise<void> {
    if (entry) await stopSshfs(mountpoint, false, this.timeoutMs);
  }

  fence(mountpoint: string): Promise<boolean> {
    return fenceSshfs(mountpoint, this.timeoutMs);
  }
}
