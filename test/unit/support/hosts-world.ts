/**
 * Several VolumeDrivers in one process, each a "host" with its own hostId, state file and mount root,
 * all over one folder of the real local backend that is declared shared across hosts. A stand-in for
 * one SFTP or NFS server seen by several hosts, fast enough for the unit tier (the multihost tier
 * runs the same rules through real dockerds, sshd and nfs-ganesha).
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Backend } from '../../../src/backends';
import { backendType } from '../../../src/backends';
import { buildConfig } from '../../../src/config';
import { HostState, openLedger, VolumeDriver } from '../../../src/driver';
import type { StateStore } from '../../../src/state';
import { readMountTable, run } from '../../../src/system';
import { recordingLogger } from './driver-world';

export interface Host {
  id: string;
  driver: VolumeDriver;
  store: StateStore<HostState>;
  backend: Backend;
  records: Array<Record<string, unknown>>;
  mountpoint(name: string): string;
  /** While true, this host's heartbeat writes fail as if the server were unreachable from it. */
  cutOff: boolean;
  /** Stops this host's daemon (its heartbeat stops; mounts stay), as netvol being stopped. */
  stop(): Promise<void>;
  /** Starts a new daemon over the same state file and backend, as after a restart, and runs its restore(). */
  start(): Promise<void>;
}

export interface HostsWorld {
  root: string;
  shared: string;
  hosts: Host[];
  cleanup(): Promise<void>;
}

export async function makeHosts(tag: string, ids: string[], leaseSeconds = 5): Promise<HostsWorld> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), `netvol-hosts-${tag}-`));
  const shared = path.join(root, 'server');
  const hosts: Host[] = [];
  for (const id of ids) {
    const stateDir = path.join(root, id);
    const config = buildConfig(
      { stateDir, hostId: id, timeoutSeconds: 5, backends: { nas: { type: 'local', path: shared, leaseSeconds } } },
      'unit test',
      {},
    );
    const { log, records } = recordingLogger();
    const b = config.backends[0];
    const backend = (backendType(b.type) as NonNullable<ReturnType<typeof backendType>>).create(b.options, {
      name: b.name,
      hostId: id,
      workDir: path.join(stateDir, 'backends', b.name),
      timeoutMs: config.timeoutMs,
      logger: log,
    });
    const host: Host = { id, backend, records, cutOff: false, mountpoint: (name) => path.join(config.mountRoot, name) } as Host;
    // Declare the local folder shared, and let the test cut this host's heartbeat off.
    Object.defineProperty(backend, 'capabilities', { value: { ...backend.capabilities, networked: false, sharedAcrossHosts: true } });
    const writeFile = backend.writeFile.bind(backend);
    backend.writeFile = async (name, file, data) => {
      if (host.cutOff && name.startsWith('.netvol-hosts')) {
        await new Promise((r) => setTimeout(r, 100));
        throw new Error('network unreachable (cut off by the test)');
      }
      return writeFile(name, file, data);
    };
    const open = async () => {
      host.store = await openLedger(path.join(stateDir, 'state.json'), (m) => log.error(m));
      host.driver = new VolumeDriver(config, new Map([[b.name, backend]]), host.store, log);
    };
    await open();
    host.stop = async () => {
      await host.driver.close();
    };
    host.start = async () => {
      await open();
      await host.driver.restore();
    };
    hosts.push(host);
  }
  return {
    root,
    shared,
    hosts,
    cleanup: async () => {
      for (const h of hosts) await h.driver.close().catch(() => undefined);
      const mine = (await readMountTable()).filter((m) => m.mountPoint.startsWith(`${root}/`)).reverse();
      for (const m of mine) {
        await run('umount', ['-l', m.mountPoint]).catch(() => undefined);
        if (m.source.startsWith('/dev/loop')) await run('losetup', ['-d', m.source]).catch(() => undefined);
      }
      await fs.rm(root, { recursive: true, force: true });
    },
  };
}
