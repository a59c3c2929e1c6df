import type { Backend } from '../backends';
import type { Logger } from '../log';
import { withTimeout } from '../system';
import { Mounts, realMounts } from './mounts';

/**
 * Fencing one volume on this host, without any lock: the backend cuts its helper off the server
 * (nothing buffered may arrive later), then the image is unmounted lazily and its loop device freed.
 * Failures are logged, never thrown: fencing goes as far as it can. Used by the daemon and by the
 * caretaker that stands in for it.
 */
export async function stopDataPath(backend: Backend, name: string, mountpoint: string, timeoutMs: number, log: Logger, mounts: Mounts = realMounts): Promise<void> {
  if (backend.fence) {
    await withTimeout(backend.fence(name), timeoutMs, `fencing volume ${name}`, name).catch((err: Error) =>
      log.error('cannot stop the data path of a fenced volume', { volume: name, backend: backend.name, error: err.message }),
    );
  }
  await mounts.unmountImage(mountpoint, { lazy: true }).catch((err: Error) => log.error('cannot unmount a fenced volume', { volume: name, backend: backend.name, error: err.message }));
}
