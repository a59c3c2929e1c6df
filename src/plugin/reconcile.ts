/**
 * After a start, tells the driver which volumes held before the start dockerd's running containers
 * still use, so that it releases the mount IDs dockerd forgot while netvol was down (a container
 * that ended then got an Unmount that failed, and dockerd only logged it). Runs after the socket
 * listens: dockerd may be waiting on netvol. When dockerd cannot be asked, nothing is released.
 */
import type { Logger } from '../log';
import { dockerSocketOf } from './announce';
import { runningContainersUse } from './docker-client';

/** What the driver offers for this (VolumeDriver implements it). */
export interface StaleMountRelease {
  mountedBeforeStart(): string[];
  releaseStaleMounts(namesInUse: ReadonlySet<string>): Promise<void>;
}

export interface ReconcileOptions {
  /** dockerd's API socket (`unix:///run/docker.sock` or a path); `''` turns this off. */
  dockerHost: string;
  driver: StaleMountRelease;
  logger: Logger;
  /** Bound of each API call. Default 10 s. */
  requestTimeoutMs?: number;
}

/** Resolves when done; never rejects. */
export async function releaseMountsDockerdForgot(opts: ReconcileOptions): Promise<void> {
  const log = opts.logger.child({ op: 'reconcile' });
  const names = opts.driver.mountedBeforeStart();
  if (names.length === 0) return;
  const socketPath = dockerSocketOf(opts.dockerHost);
  const keepAll = (why: string): void => {
    log.info(`not reconciling mount IDs with dockerd (${why}); a mount ID whose container ended while netvol was down stays held: see "Recovery" in the README`, {
      dockerHost: opts.dockerHost,
      volumes: names,
    });
  };
  if (!socketPath) return keepAll(opts.dockerHost ? 'dockerHost is not a unix socket' : 'dockerHost is off');
  const inUse = new Set<string>();
  try {
    for (const name of names) if (await runningContainersUse(socketPath, name, opts.requestTimeoutMs ?? 10_000)) inUse.add(name);
  } catch (err) {
    return keepAll(`dockerd could not be asked: ${(err as Error).message}`);
  }
  await opts.driver.releaseStaleMounts(inUse);
}
