/**
 * What the driver offers the protocol layer (plugin/), declared here so both can use it while
 * imports still run plugin → driver: the driver says it implements VolumeDriverApi, and plugin/
 * re-exports these types as its own.
 */

/** A volume as the driver describes it; the protocol layer turns it into Docker's shape. */
export interface VolumeView {
  name: string;
  mountpoint: string;
  /** Absent when the backend cannot be read and this host knows the volume only from its own mounts. */
  createdAt?: string;
  status: Record<string, unknown>;
}

/** One method per Docker verb: what the protocol layer needs from a driver. */
export interface VolumeDriverApi {
  readonly scope: 'local' | 'global';
  create(name: unknown, opts: unknown): Promise<void>;
  remove(name: unknown): Promise<void>;
  mount(name: unknown, id: unknown): Promise<string>;
  unmount(name: unknown, id: unknown): Promise<void>;
  path(name: unknown): Promise<string>;
  get(name: unknown): Promise<VolumeView>;
  list(): Promise<VolumeView[]>;
}
