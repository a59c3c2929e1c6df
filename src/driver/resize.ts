import { NetvolError, quoteUserValue, wrapError } from '../errors';
import type { ResizeResult, VolumeHold } from './admin-api';
import { VolumeMeta, writeMeta } from './catalog';
import { liveHere, mountCount } from './ledger';
import { validateVolumeName } from './names';
import type { DriverParts } from './operations';
import { formatSize, parseSize } from './options';

/**
 * `netvolctl resize VOL SIZE`: grows an image volume's quota. Where it happens:
 * - mounted on this host (containers use it): online, under the volume's lock; the containers keep
 *   writing meanwhile;
 * - mounted on no host: offline, under an admin hold (the volume is mounted here for the resize only,
 *   counted like a container's mount, so Remove waits and a daemon that dies releases it at start);
 * - attached on another host (a shared backend, the holder of its lease): refused, naming that host,
 *   since only the host whose loop device serves the image can grow its filesystem.
 *
 * The grow, in an order that a kill -9 at any point leaves usable and that a re-run finishes: the
 * image file, the loop device's capacity and the filesystem first (each step a no-op when done,
 * see quota/grow.ts), the new size in volume.json last. Until that write, Status shows the old
 * size and the file may be larger than it; a re-run with the size asked finishes the job, and one
 * with a size below the file's is refused, naming the size that finishes it.
 */
export class Resizer {
  constructor(
    private readonly p: DriverParts,
    private readonly hold: (name: string, purpose: string) => Promise<VolumeHold>,
  ) {}

  async resize(rawName: unknown, rawSize: unknown): Promise<ResizeResult> {
    const started = Date.now();
    const name = validateVolumeName(rawName);
    const sizeBytes = parseNewSize(name, rawSize);
    const found = await this.p.catalog.lookup(name);
    if (!found) throw this.p.catalog.notFound(name);
    if (!found.meta) throw this.p.catalog.unavailable(found);
    const meta = found.meta;
    const current = refuseShape(name, meta, sizeBytes);
    if (sizeBytes === current) {
      return { name, backend: found.backend, fs: meta.spec.fs ?? 'ext4', oldSizeBytes: current, newSizeBytes: current, mode: 'unchanged', durationMs: Date.now() - started };
    }
    let hold: VolumeHold | undefined;
    if (!liveHere(found.record)) {
      await this.refuseIfAttachedElsewhere(name, found.backend);
      hold = await this.hold(name, 'resize').catch((err: unknown) => {
        throw attachedElsewhereFromHold(err, name);
      });
    }
    try {
      return await this.p.locks.run(name, (signal) => this.grow(name, sizeBytes, hold !== undefined, started, signal), 'resize');
    } finally {
      await hold?.release().catch((err: Error) => {
        this.p.log.error('resized volume, but cannot release the mount taken for it; it stays mounted here until the next netvol start', { volume: name, error: err.message });
      });
    }
  }

  /** A shared backend's live holders of the volume other than this host: resize must run where the image is mounted. */
  private async refuseIfAttachedElsewhere(name: string, backendName: string): Promise<void> {
    const { pool } = this.p;
    const backend = await pool.open(backendName, name);
    const presence = pool.presenceOf(backend);
    if (!presence) return;
    const holders = await pool.bounded(presence.liveHolders(name, pool.judgeDeadline(backend, 40_000)), `reading which hosts have volume ${name} attached`, name);
    if (holders.length === 0) return;
    const hosts = [...new Set(holders.map((h) => h.host))].join(', ');
    throw new NetvolError(
      'LEASE_HELD',
      `volume ${name} is attached on host ${hosts}: only the host that has an image volume mounted can grow it; run netvolctl resize there (or stop its containers there, then run it here)`,
      { volume: name },
    );
  }

  /**
   * Under the volume's lock, with the volume mounted on this host (by containers, or by the admin
   * hold when `held`). Offline only when the hold is the volume's one mount here: a container (or
   * another admin operation) that mounted it since keeps it online, so it is never unmounted under them.
   */
  private async grow(name: string, sizeBytes: number, held: boolean, started: number, signal: AbortSignal): Promise<ResizeResult> {
    const { catalog, ledger, mounts, pool, stack, space, log } = this.p;
    // Read again under the lock: another resize may have run meanwhile.
    const found = await catalog.lookup(name);
    if (!found) throw catalog.notFound(name);
    if (!found.meta) throw catalog.unavailable(found);
    const meta = found.meta;
    const current = refuseShape(name, meta, sizeBytes);
    const fsType = meta.spec.fs ?? 'ext4';
    const mp = stack.mountpoint(name);
    const record = ledger.get(name);
    if (!record?.attached || !(await mounts.isMounted(mp))) {
      throw new NetvolError('IN_USE', `volume ${name} was unmounted on this host while the resize waited for it; run netvolctl resize again`, { volume: name });
    }
    const mode = held && mountCount(record.mounts) === 1 ? 'offline' : 'online';
    const fileBytes = await mounts.imageBytes(mp);
    if (fileBytes > sizeBytes) {
      throw new NetvolError(
        'INVALID_OPTION',
        `volume ${name}: its image is already ${formatSize(fileBytes)} (an earlier resize to that size was cut short before it was recorded): run netvolctl resize ${name} ${sizeArg(fileBytes)} to finish it`,
        { volume: name },
      );
    }
    const backend = await pool.open(found.backend, name);
    const grow = async () => {
      try {
        return await mounts.growImage(mp, fsType, sizeBytes, mode, signal);
      } catch (err) {
        throw growFailed(err, name, mode);
      }
    };
    const grown = sizeBytes > current ? await space.reserveGrowth(backend, name, sizeBytes, grow) : await grow();
    const resized: VolumeMeta = {
      ...meta,
      spec: { ...meta.spec, sizeBytes },
      createdSizeBytes: meta.createdSizeBytes ?? current,
      resizedAt: new Date().toISOString(),
      resizedBy: this.p.hostId,
    };
    await pool.bounded(writeMeta(backend, resized), `recording the new size of volume ${name}`, name);
    catalog.remember(name, resized);
    log.info('resized volume', { volume: name, backend: backend.name, mode, fs: fsType, oldSizeBytes: current, newSizeBytes: sizeBytes, filesystemBytes: grown.filesystemBytes });
    return { name, backend: backend.name, fs: fsType, oldSizeBytes: current, newSizeBytes: sizeBytes, mode, filesystemBytes: grown.filesystemBytes, durationMs: Date.now() - started };
  }
}

/** The size asked, as Create's `size` option takes it ("2G", "512M", "1.5T", bytes), rounded down to 4 KiB as Create does. */
export function parseNewSize(name: string, raw: unknown): number {
  const n = typeof raw === 'string' ? parseSize(raw) : typeof raw === 'number' && Number.isInteger(raw) ? raw : undefined;
  const rounded = n === undefined ? 0 : Math.floor(n / 4096) * 4096;
  if (rounded <= 0) {
    throw new NetvolError('INVALID_OPTION', `volume ${name}: invalid size ${quoteUserValue(raw)}: give a size such as 512M, 10G or 1.5T`, { volume: name });
  }
  return rounded;
}

/** Refuses what resize cannot do to this volume; returns its current size. */
export function refuseShape(name: string, meta: VolumeMeta, sizeBytes: number): number {
  if (meta.spec.layout !== 'image' || meta.spec.sizeBytes === undefined) {
    throw new NetvolError(
      'INVALID_OPTION',
      `volume ${name} is a directory volume (created without size): it has no quota to grow; only image volumes (created with -o size=…) can be resized`,
      { volume: name },
    );
  }
  const current = meta.spec.sizeBytes;
  if (sizeBytes < current) {
    throw new NetvolError(
      'INVALID_OPTION',
      `volume ${name} is ${formatSize(current)}, more than the ${formatSize(sizeBytes)} asked: resize only grows a volume (an image cannot shrink under its filesystem); give a size above ${formatSize(current)}, or copy the data into a new, smaller volume`,
      { volume: name },
    );
  }
  return current;
}

/** A size as `netvolctl resize` takes it back: whole GiB or MiB where exact, else bytes. */
function sizeArg(n: number): string {
  const MiB = 1024 * 1024;
  if (n % (1024 * MiB) === 0) return `${n / (1024 * MiB)}G`;
  if (n % MiB === 0) return `${n / MiB}M`;
  return String(n);
}

/** The admin hold's Mount refused because another host holds the lease (it attached meanwhile): say where to run resize. */
function attachedElsewhereFromHold(err: unknown, name: string): unknown {
  if (!(err instanceof NetvolError) || err.code !== 'LEASE_HELD') return err;
  return new NetvolError('LEASE_HELD', `cannot resize volume ${name} on this host: ${err.message}; or run netvolctl resize on that host`, { volume: name, cause: err });
}

/** A grow that failed, named: the volume, what happened, what to do. */
function growFailed(err: unknown, name: string, mode: 'online' | 'offline'): NetvolError {
  const e = wrapError(err, 'COMMAND_FAILED', `cannot resize volume ${name}`, name);
  if (e.code === 'PERMISSION' && mode === 'online') {
    return new NetvolError(
      'PERMISSION',
      `${e.message}: stop the containers using it and run netvolctl resize again (with no host using it, it grows offline, which needs no capability), or run netvol with CAP_SYS_RESOURCE`,
      { volume: name, cause: err },
    );
  }
  if (e.code === 'INVALID_OPTION' || e.code === 'TIMEOUT') return e;
  return new NetvolError(e.code, `${e.message}; the volume stays usable at its old size: run netvolctl resize again to finish the job`, { volume: name, cause: err });
}
