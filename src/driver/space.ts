import type { Backend } from '../backends';
import { NetvolError } from '../errors';
import type { BackendPool } from './backends';
import { listMetas } from './catalog';
import { VolumeLocks } from './locks';
import { formatSize } from './options';

/** How many volumes' usage is read at once while adding up what a backend has promised. */
const USAGE_CONCURRENCY = 16;

/** What the image volumes on a backend have been promised and do not hold yet. */
export interface Promised {
  /** Bytes: each image volume's size less what its image already occupies on disk. */
  bytes: number;
  /** How many image volumes still have space promised. */
  volumes: number;
}

/**
 * Adds up what image volumes on a backend may still take from its free space. An image is a sparse
 * file: the blocks it already occupies are gone from the backend's free space, so only the rest of
 * its size is still promised. Read from every volume's volume.json and the backend's usage count,
 * so volumes made by other hosts are counted too (best effort: one being made elsewhere at this
 * very moment may not have its volume.json yet).
 */
export async function promisedSpace(pool: BackendPool, backend: Backend, except: string): Promise<Promised> {
  const images = (await listMetas(backend)).filter((m) => m.spec.layout === 'image' && m.name !== except);
  let bytes = 0;
  let volumes = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < images.length) {
      const meta = images[next++];
      const held = (await backend.usage(meta.name)).usedBytes;
      const rest = Math.max(0, (meta.spec.sizeBytes ?? 0) - held);
      if (rest > 0) {
        bytes += rest;
        volumes += 1;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(USAGE_CONCURRENCY, images.length) }, worker));
  return { bytes, volumes };
}

/**
 * The free-space check of an image volume's Create, on backends that do not allow overcommit: the
 * new size plus what is already promised must fit the backend's free space. The check and the
 * making of the volume run under one lock per backend, so two Creates on this host never both
 * take the last space; across hosts the count is as good as the backend's volume.json files.
 */
export class SpaceCheck {
  /** One per backend name; these are not requests on a volume, so they emit no timings. */
  private readonly locks = new VolumeLocks(undefined, undefined, null);

  constructor(private readonly pool: BackendPool) {}

  /** Runs `make` once `sizeBytes` is known to fit (or at once when the backend allows overcommit or the volume is a folder). */
  async reserve<T>(backend: Backend, name: string, sizeBytes: number | undefined, make: () => Promise<T>): Promise<T> {
    if (sizeBytes === undefined || this.pool.settings(backend.name).allowOvercommit) return make();
    return this.locks.run(backend.name, async () => {
      await this.check(backend, name, sizeBytes);
      return make();
    });
  }

  // --- resize -----------------------------------------------------------------------------------
  /**
   * Runs `grow` once an image volume's growth to `newSizeBytes` is known to fit (at once when the
   * backend allows overcommit): the volume's new promise (its new size less what its image already
   * occupies) must fit the free space less what the other image volumes are promised. Under the same
   * per-backend lock as Create, so a Create and a resize never both take the last space.
   */
  async reserveGrowth<T>(backend: Backend, name: string, newSizeBytes: number, grow: () => Promise<T>): Promise<T> {
    if (this.pool.settings(backend.name).allowOvercommit) return grow();
    return this.locks.run(backend.name, async () => {
      const held = (await this.pool.bounded(backend.usage(name), `measuring volume ${name}`, name)).usedBytes;
      await this.check(backend, name, Math.max(0, newSizeBytes - held), `growing it to ${formatSize(newSizeBytes)} needs ${formatSize(Math.max(0, newSizeBytes - held))} more`);
      return grow();
    });
  }

  /** `asked` says what the space is for in the error; by default "the requested size <size>". */
  private async check(backend: Backend, name: string, sizeBytes: number, asked = `the requested size ${formatSize(sizeBytes)}`): Promise<void> {
    const { pool } = this;
    const [free, promised] = await Promise.all([
      pool.bounded(backend.freeBytes(), `checking free space on backend ${backend.name}`, name),
      pool.bounded(promisedSpace(pool, backend, name), `adding up the space promised to image volumes on backend ${backend.name}`, name),
    ]);
    const left = Math.max(0, free - promised.bytes);
    if (sizeBytes <= left) return;
    if (promised.bytes === 0) {
      throw new NetvolError(
        'NO_SPACE',
        `volume ${name}: backend ${backend.name} has ${formatSize(free)} free, less than ${asked}: choose a smaller size, free space, or set allowOvercommit: true on the backend`,
        { volume: name },
      );
    }
    const count = promised.volumes === 1 ? '1 image volume on it is' : `${promised.volumes} image volumes on it are`;
    throw new NetvolError(
      'NO_SPACE',
      `volume ${name}: backend ${backend.name} has ${formatSize(free)} free and ${count} still promised ${formatSize(promised.bytes)} (their sizes less what their images already hold), so ${formatSize(left)} is left, less than ${asked}: choose a smaller size, free space on the backend, or set allowOvercommit: true on the backend`,
      { volume: name },
    );
  }
}
