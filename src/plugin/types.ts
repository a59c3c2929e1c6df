/** Docker's VolumeDriver wire types (docker/go-plugins-helpers volume/api.go, as dockerd 20.10 sends them). */

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

/**
 * A volume as the driver describes it, and what the protocol layer needs from a driver (one method
 * per Docker verb). Both are declared in driver/ so the driver can say it implements them while
 * imports keep running plugin → driver.
 */
export type { VolumeView, VolumeDriverApi } from '../driver';

export const PLUGIN_CONTENT_TYPE = 'application/vnd.docker.plugins.v1.2+json';
