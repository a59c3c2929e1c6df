import { promises as fs } from 'node:fs';
import path from 'node:path';
import { DATA_DIR, IMAGE_FILE, type Backend } from '../backends';
import { isNetvolError, NetvolError, wrapError } from '../errors';
import type { Logger } from '../log';
import type { BackendPool } from './backends';
import { Catalog, readMeta, VolumeMeta } from './catalog';
import { stopDataPath } from './fencing';
import type { Ledger, VolumeRecord } from './ledger';
import type { Mounts } from './mounts';
import type { Removal } from './removal';

/**
 * The attach stack of one volume on this host, bottom to top: on a shared backend this host's
 * published attachment (an image volume's single-writer lease), the backend's attachment (sshfs,
 * an NFS mount, or the local folder), then the loop mount of the image or the bind mount of the
 * data folder at the volume's mountpoint. Built and taken down in that order; fencing cuts it off.
 * Callers hold the volume's lock (fencing excepted).
 */
export class AttachStack {
  constructor(
    private readonly o: {
      mountRoot: string;
      timeoutMs: number;
      pool: BackendPool;
      ledger: Ledger;
      catalog: Catalog;
      removal: Removal;
      mounts: Mounts;
      log: Logger;
    },
  ) {}

  /** Where the volume is mounted on this host. */
  mountpoint(name: string): string {
    return path.join(this.o.mountRoot, name);
  }

  /** Whether the volume's mountpoint is mounted and its backend attachment works. */
  async isLive(name: string, record: VolumeRecord): Promise<boolean> {
    return (await this.liveness(name, record)) === 'live';
  }

  /**
   * How the volume's stack on this host is: 'live' (mounted, its backend attachment works),
   * 'unreachable' (mounted, but the backend's server does not answer: its helper waits and
   * reconnects by itself, so the stack must be left as it is) or 'down' (to be attached again).
   * A check that does not finish in time proves nothing dead: it counts as 'unreachable'.
   */
  async liveness(name: string, record: VolumeRecord): Promise<'live' | 'unreachable' | 'down'> {
    if (!(await this.o.mounts.isMounted(this.mountpoint(name)))) return 'down';
    const backend = this.o.pool.find(record.backend);
    if (!backend || !backend.capabilities.networked) return 'live';
    const health = await this.o.pool.bounded(backend.health(name), `checking volume ${name}`, name).catch((err: Error) => {
      this.o.log.warn('the check of an attached volume did not finish; leaving its attachment as it is', { volume: name, backend: record.backend, error: err.message });
      return 'unreachable' as const;
    });
    return health === 'attached' ? 'live' : health === 'unreachable' ? 'unreachable' : 'down';
  }

  /** The answer to a Mount while the volume's server does not answer (liveness 'unreachable'). */
  unreachable(name: string, record: VolumeRecord): NetvolError {
    return new NetvolError(
      'BACKEND_UNAVAILABLE',
      `volume ${name}: the server of backend ${record.backend} does not answer; this host's attachment of the volume waits for it and reconnects by itself (containers already using the volume resume then); the mount was not counted: try again when the server answers`,
      { volume: name },
    );
  }

  /** On a shared backend: this host's attachment published (an image volume takes its single-writer lease). */
  private async publishAttachment(name: string, record: VolumeRecord, backend: Backend): Promise<void> {
    const { pool } = this.o;
    const presence = pool.presenceOf(backend);
    if (!presence) return;
    if (record.layout === 'image') {
      await presence.claimExclusive(name, pool.judgeDeadline(backend, 90_000));
      return;
    }
    presence.setHold(name, 'shared');
    await pool.bounded(presence.publish(), `recording the attachment of volume ${name}`, name).catch(async (err) => {
      await presence.release(name);
      throw err;
    });
  }

  /**
   * A Mount's error from the shared bookkeeping (heartbeats, the removal marker, volume.json): the
   * heartbeat's errors speak of the backend and this host, so the volume being mounted and what to
   * do are added.
   */
  private mountFailed(err: unknown, name: string, backend: Backend): unknown {
    // These say what holds the volume and what to do already.
    if (isNetvolError(err) && ['LEASE_HELD', 'REMOVING', 'NOT_FOUND', 'IN_USE'].includes(err.code)) return err;
    const e = wrapError(err, 'BACKEND_UNAVAILABLE', `volume ${name} cannot be mounted`, name);
    return new NetvolError(e.code, `${e.message}; check that backend ${backend.name} is reachable from this host, then try again`, { volume: name, cause: err });
  }

  /**
   * Builds the stack: on a shared backend, publish this host's attachment (an image volume takes its
   * single-writer lease), check no other host is removing it and that it still exists; then the
   * backend's attachment; then the loop or bind mount. Each step failing undoes the ones below it.
   * `signal` is the request's deadline: the backend and the mount stop when it aborts, and the undo
   * runs without it (it must finish; the volume's lock waits for it).
   */
  async attach(name: string, record: VolumeRecord, known: VolumeMeta | undefined, signal?: AbortSignal): Promise<void> {
    const { pool, ledger, mounts, log } = this.o;
    const backend = await pool.open(record.backend, name);
    const mp = this.mountpoint(name);
    // A dead stack's mount stays on the mountpoint until the new attachment works: taken off
    // first, a failed attach would leave a plain folder of this host's disk there, and writes
    // through the path would land on it (fsynced, then hidden by the next mount) instead of failing.
    const deadMountHere = await mounts.isMounted(mp);
    await fs.mkdir(mp, { recursive: true, mode: 0o755 });
    const presence = pool.presenceOf(backend);
    let meta = known;
    if (presence) {
      await this.publishAttachment(name, record, backend).catch((err: unknown) => {
        throw this.mountFailed(err, name, backend);
      });
      try {
        await this.o.removal.checkNotRemoving(presence, backend, name);
        meta = await pool.bounded(readMeta(backend, name), `looking up volume ${name}`, name);
        if (!meta || meta.retained) throw this.o.catalog.notFound(name);
      } catch (err) {
        await presence.release(name);
        throw this.mountFailed(err, name, backend);
      }
    }
    // Recorded before the backend starts its helper: a daemon killed while the helper starts leaves
    // a record saying something may be attached here, and the restore detaches it (recovery.ts).
    record.attached = true;
    await ledger.save();
    let folder: string;
    try {
      folder = await pool.bounded(backend.attach(name, signal), `attaching volume ${name} from backend ${backend.name}`, name);
    } catch (err) {
      if (presence) await presence.release(name);
      // The dead mount is still there: the record keeps saying so, so an Unmount takes it down.
      record.attached = deadMountHere;
      await ledger.save();
      throw err;
    }
    try {
      if (deadMountHere) await this.unmountMountpoint(name, record, path.join(folder, IMAGE_FILE), true);
      if (record.layout === 'image') {
        await mounts.mountImage(path.join(folder, IMAGE_FILE), mp, record.fs ?? 'ext4', signal);
      } else {
        await mounts.bind(path.join(folder, DATA_DIR), mp, signal);
      }
    } catch (err) {
      await pool.bounded(backend.detach(name), `detaching volume ${name}`, name).catch(() => undefined);
      if (presence) await presence.release(name);
      record.attached = false;
      await ledger.save();
      throw wrapError(err, 'COMMAND_FAILED', `cannot mount volume ${name}`, name);
    }
    delete record.fenced;
    if (meta) this.o.catalog.remember(name, meta);
    log.info('attached volume', { volume: name, backend: backend.name, mountpoint: mp });
  }

  /** Takes the stack down: the loop or bind mount, the mountpoint folder, the backend's attachment, then this host's published attachment. */
  async detach(name: string, record: VolumeRecord, backend: Backend, signal?: AbortSignal): Promise<void> {
    try {
      const home = backend.attachedPath?.(name);
      await this.unmountMountpoint(name, record, home === undefined ? undefined : path.join(home, IMAGE_FILE), false, signal);
      await fs.rmdir(this.mountpoint(name)).catch(() => undefined);
      await this.o.pool.bounded(backend.detach(name, signal), `detaching volume ${name}`, name);
    } catch (err) {
      throw wrapError(err, 'COMMAND_FAILED', `cannot unmount volume ${name} (is a process outside Docker still using it?)`, name);
    }
    record.attached = false;
    this.o.catalog.forget(name);
    const presence = this.o.pool.presenceOf(backend);
    if (presence) await presence.release(name);
    this.o.log.info('detached volume', { volume: name, backend: backend.name });
  }

  /** `image`: where the volume's image is on this host, so that a loop device a crash left on it unmounted is freed too. */
  private async unmountMountpoint(name: string, record: VolumeRecord, image: string | undefined, lazy = false, signal?: AbortSignal): Promise<void> {
    const { mounts } = this.o;
    const mp = this.mountpoint(name);
    if (record.layout === 'image') {
      // The image file only grows on the backend, so remember what the filesystem inside says.
      const u = await mounts.usage(mp).catch(() => undefined);
      if (u && (await mounts.isMounted(mp))) record.lastUsage = { usedBytes: u.usedBytes, availableBytes: u.availableBytes };
      await mounts.unmountImage(mp, { signal, file: image });
    } else if (await mounts.isMounted(mp)) await mounts.unmount(mp, { lazy, signal });
  }

  /**
   * Fencing, called when this host could not renew its heartbeat in time while holding image
   * volumes: stop their data path now (the backend kills its helper and resets its connections, then
   * the image is unmounted lazily and its loop device freed), without waiting for any lock. Their
   * containers get I/O errors; the next Mount attaches again once the volume is free.
   */
  async fence(backend: Backend, volumes: string[], why: string): Promise<void> {
    await Promise.all(
      volumes.map(async (name) => {
        const record = this.o.ledger.get(name);
        if (!record || !record.attached) return;
        await stopDataPath(backend, name, this.mountpoint(name), this.o.timeoutMs, this.o.log, this.o.mounts);
        record.attached = false;
        record.fenced = why;
        this.o.catalog.forget(name);
        this.o.log.error('fenced volume: its containers now get I/O errors; it attaches again at the next Mount once it is free', { volume: name, backend: backend.name, reason: why });
      }),
    );
    await this.o.ledger.save();
  }
}
