/**
 * A VolumeDriver over the real local backend in a private temporary folder and a fake mount seam
 * (see fake-mounts.ts): driver logic that needs no kernel mount, testable without root.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Backend, backendType } from '../../../src/backends';
import { buildConfig, Config } from '../../../src/config';
import { HostState, openLedger, VolumeDriver } from '../../../src/driver';
import type { RequestBudgets } from '../../../src/driver/locks';
import type { StateStore } from '../../../src/state';
import { FakeMounts } from './fake-mounts';
import { recordingLogger } from './driver-world';

export interface Rig {
  root: string;
  config: Config;
  mounts: FakeMounts;
  backend: Backend;
  driver: VolumeDriver;
  store: StateStore<HostState>;
  /** Parsed log records of every driver this rig made, in order. */
  records: Array<Record<string, unknown>>;
  /** A new driver over the same state file, backend and (fake) kernel, as after a daemon restart. */
  restart(): Promise<void>;
  mountpoint(name: string): string;
}

const roots: string[] = [];

/** Removes every rig's folder (nothing is really mounted under it). */
export async function removeRigs(): Promise<void> {
  for (const r of roots.splice(0)) await fs.rm(r, { recursive: true, force: true });
}

/** `backend` adds settings to the local backend's config block (e.g. allowOvercommit); `budgets` replaces the request budgets. */
export async function rig(tag: string, backend: Record<string, unknown> = {}, budgets?: RequestBudgets): Promise<Rig> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), `netvol-fake-mounts-${tag}-`));
  roots.push(root);
  const stateDir = path.join(root, 'state');
  const config = buildConfig({ stateDir, hostId: 'fake-host', backends: { local: { type: 'local', path: path.join(root, 'volumes'), ...backend } } }, 'unit test', {});
  const { log, records } = recordingLogger();
  const b = config.backends[0];
  const kind = backendType(b.type);
  if (!kind) throw new Error(`no backend type ${b.type}`);
  const made = kind.create(b.options, { name: b.name, hostId: config.hostId, workDir: path.join(stateDir, 'backends', b.name), timeoutMs: config.timeoutMs, logger: log });
  const mounts = new FakeMounts();
  const r = { root, config, mounts, backend: made, records, mountpoint: (name: string) => path.join(config.mountRoot, name) } as Rig;
  r.restart = async () => {
    r.store = await openLedger(path.join(stateDir, 'state.json'), (m) => log.error(m));
    r.driver = new VolumeDriver(config, new Map([[b.name, made]]), r.store, log, mounts, budgets);
  };
  await r.restart();
  return r;
}
