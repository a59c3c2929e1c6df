/** Docker's VolumeDriver wire types (docker/go-plugins-helpers volume/api.go, as dockerd 20.10 sends them). */
import type { VolumeInfo } from '../driver';

export interface NameRequest {
  Name?: unknown;
}
export interface CreateRequest extends NameRequest {
  Opts?: unknown;
}
export interface MountRequest extends NameRequest {
  ID?: unknown;
}

export interface DockerVolume {
  Name: string;
  Mountpoint?: string;
  CreatedAt?: string;
  Status?: Record<string, unknown>;
}

/** A volume as the driver describes it (one type with the driver's VolumeInfo); the protocol layer turns it into a DockerVolume. */
export type VolumeView = VolumeInfo;

/** What the protocol layer needs from a driver: one method per Docker verb. */
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

export const PLUGIN_CONTENT_TYPE = 'application/vnd.docker.plugins.v1.2+json';
