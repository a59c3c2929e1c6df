import path from 'node:path';
import { IMAGE_FILE, type Backend } from '../backends';
import { isNetvolError, NetvolError, wrapError } from '../errors';
import type { Logger } from '../log';
import type { BackendPool } from './backends';
import { readMeta, VolumeMeta, writeMeta } from './catalog';
import { mountCount, type Ledger } from './ledger';
import { keyedRecord } from '../state';
import type { Mounts } from './mounts';
import { formatSize, specDifferences, VolumeSpec } from './options';
import type { SpaceCheck } from './space';

/** How long a Create waits for another host that is creating the same volume at the same moment. */
const CREATE_WAIT_MS = 45_000;

/** Options the backend cannot honour are refused at Create, before anything is touched, naming the backend. */
export function refuseUnsupported(name: string, spec: VolumeSpec, backend: Backend): void {
  if (spec.layout === 'image' && !backend.capabilities.imageVolumes) {
    throw new NetvolError(
      'INVALID_OPTION',
      `volume ${name}: backend ${backend.name} (${backend.type}) cannot hold image volumes, so the size option is not available on it: create the volume without size, or on a backend that has image volumes`,
      { volume: name },
    );
  }
}

/**
 * The options in which a Create differs from an existing volume. The size of a resized image
 * volume (netvolctl resize) matches both its current size and the size it was created with
 * (`createdSizeBytes` in its volume.json): dockerd keeps the options of the original Create and
 * re-sends them, so that Create must still succeed. Any other size is a difference, smaller or
 * larger: a Create never resizes.
 */
export function optionDifferences(have: Pick<VolumeMeta, 'spec' | 'createdSizeBytes'>, want: VolumeSpec): string[] {
  const diff = specDifferences(have.spec, want);
  const originalSize = have.spec.layout === 'image' && want.layout === 'image' && want.sizeBytes !== undefined && want.sizeBytes === have.createdSizeBytes;
  return originalSize ? diff.filter((d) => d !== 'size') : diff;
}

/** Create is idempotent: an existing volume with the same options is success, with other options a conflict. */
export function checkSameOptions(name: string, have: Pick<VolumeMeta, 'spec' | 'createdSizeBytes'>, want: VolumeSpec): void {
  const diff = optionDifferences(have, want);
  if (diff.length > 0) {
    const resized = diff.includes('size') && have.createdSizeBytes !== undefined && have.spec.sizeBytes !== undefined
      ? `; it was resized from ${formatSize(have.createdSizeBytes)} to ${formatSize(have.spec.sizeBytes)}, and a Create with either size matches (netvolctl resize grows it)`
      : '';
    throw new NetvolError(
      'OPTIONS_CONFLICT',
      `volume ${name} already exists with different options (${diff.join(', ')}): use the same options, or remove the volume first${resized}`,
      { volume: name },
    );
  }
}

/** A clone's data instead of an empty volume's: `fill` copies it into the new, empty folder (clone.ts). */
export interface CloneFill {
  from: string;
  fill(): Promise<void>;
}

/** Making a volume on its backend: a new one (folder, data folder or image, metadata), or adopting retained data. */
export class Creation {
  constructor(
    private readonly o: {
      hostId: string;
      pool: BackendPool;
      ledger: Ledger;
      mounts: Mounts;
      space: SpaceCheck;
      log: Logger;
    },
  ) {}

  /** A Create that matches retained data of an earlier volume of this name (onRemove=retain) adopts it. */
  async adoptRetained(backend: Backend, meta: VolumeMeta, spec: VolumeSpec): Promise<void> {
    const diff = optionDifferences(meta, spec);
    if (diff.length > 0) {
      throw new NetvolError(
        'OPTIONS_CONFLICT',
        `volume ${meta.name}: backend ${backend.name} holds retained data of an earlier volume with this name and other options (${diff.join(', ')}): create it with the same options to adopt the data, or choose another name`,
        { volume: meta.name },
      );
    }
    const adopted: VolumeMeta = { ...meta, retained: undefined };
    delete adopted.retained;
    await this.o.pool.bounded(writeMeta(backend, adopted), `adopting volume ${meta.name}`, meta.name);
    this.o.log.info('adopted retained volume', { volume: meta.name, backend: backend.name });
  }

  /**
   * Makes a new volume. The folder's mkdir on the backend is the atomic step: of several hosts
   * creating one name at once, one makes it, and the others wait for its volume.json and succeed
   * if the options agree. A half-made volume is removed again; the ledger marks it pending until
   * then, so a crash in between is undone at the next start. An image volume's size must fit the
   * backend's free space beside what other image volumes were promised (space.ts).
   */
  async makeNew(backend: Backend, name: string, spec: VolumeSpec, signal?: AbortSignal, clone?: CloneFill): Promise<void> {
    const held = this.o.ledger.get(name);
    if (held && mountCount(held.mounts) > 0) {
      // Its folder went away from the backend while containers here use it: a new volume made over
      // this record would forget their mount IDs, and the next start would unmount under them.
      throw new NetvolError(
        'IN_USE',
        `volume ${name}: backend ${held.backend} no longer has it, but it is still mounted on this host (mount IDs ${Object.keys(held.mounts).join(', ')}): stop the containers using it, then create it again`,
        { volume: name },
      );
    }
    await this.o.space.reserve(backend, name, spec.layout === 'image' ? spec.sizeBytes : undefined, () => this.make(backend, name, spec, signal, clone));
  }

  /** `signal` is the request's deadline: mkfs and its helpers are killed when it passes. */
  private async make(backend: Backend, name: string, spec: VolumeSpec, signal?: AbortSignal, clone?: CloneFill): Promise<void> {
    const { pool, ledger, log } = this.o;
    const meta: VolumeMeta = { version: 1, name, createdAt: new Date().toISOString(), createdBy: this.o.hostId, spec, ...(clone ? { clonedFrom: clone.from } : {}) };
    ledger.set(name, { backend: backend.name, layout: spec.layout, fs: spec.fs, mounts: keyedRecord(), attached: false, pending: 'create' });
    await ledger.save();
    let made = false;
    try {
      const waitUntil = Date.now() + CREATE_WAIT_MS;
      for (;;) {
        made = await pool.bounded(backend.makeFolder(name, spec.layout === 'directory'), `creating the folder of volume ${name}`, name);
        if (made) break;
        const other = await pool.bounded(readMeta(backend, name), `looking up volume ${name}`, name);
        if (other && !other.retained) {
          checkSameOptions(name, other, spec);
          log.info('volume was created by another host at the same moment; options agree', { volume: name, backend: backend.name, createdBy: other.createdBy });
          return;
        }
        if (Date.now() > waitUntil) {
          throw new NetvolError(
            'OPTIONS_CONFLICT',
            `volume ${name}: backend ${backend.name} already has a folder with this name that is not a netvol volume (no volume.json appeared in it within ${CREATE_WAIT_MS / 1000} s): move it away or choose another name`,
            { volume: name },
          );
        }
        await new Promise((r) => setTimeout(r, 250));
      }
      const attrs = { uid: spec.uid, gid: spec.gid, mode: spec.mode };
      if (clone) {
        await clone.fill();
      } else if (spec.layout === 'directory') {
        if (spec.uid !== undefined || spec.gid !== undefined || spec.mode !== undefined) {
          await pool.bounded(backend.setDataAttributes(name, attrs), `setting owner and mode of volume ${name}`, name);
        }
      } else {
        const folder = await pool.bounded(backend.attach(name), `attaching volume ${name}`, name);
        try {
          await this.o.mounts.createImage(path.join(folder, IMAGE_FILE), spec.sizeBytes as number, spec.fs ?? 'ext4', attrs, signal);
        } finally {
          await pool.bounded(backend.detach(name), `detaching volume ${name}`, name);
        }
      }
      await pool.bounded(writeMeta(backend, meta), `writing the metadata of volume ${name}`, name);
    } catch (err) {
      if (made) await backend.removeFolder(name).catch((e) => log.error('cannot clean up half-created volume', { volume: name, backend: backend.name, error: (e as Error).message }));
      throw isNetvolError(err) && err.message.includes(name) ? err : wrapError(err, 'INTERNAL', `cannot create volume ${name}`, name);
    } finally {
      const record = ledger.get(name);
      if (record?.pending === 'create') delete record.pending;
      ledger.tidy(name);
      await ledger.save();
    }
    log.info('created volume', { volume: name, backend: backend.name, layout: spec.layout, sizeBytes: spec.sizeBytes });
  }
}
