import type { Logger } from '../log';
import type { Readable } from 'node:stream';
import type { AdminApi, BackupOptions, BackupStream, RestoreOptions, RestoreResult, VerifyResult, VolumeDetails, VolumeHold } from './admin-api';
import { startBackup } from './backup';
import { restoreInto, verifyAgainst } from './restore';
import type { AttachStack } from './attach';
import type { BackendPool } from './backends';
import type { Catalog } from './catalog';
import { adminMountId } from './holds';
import type { Inventory } from './inventory';
import type { Ledger } from './ledger';
import type { VolumeLocks } from './locks';
import type { Mounts } from './mounts';
import type { VolumeDriverApi } from './view';

/** The driver's parts an admin operation may use (the same objects the verbs use). */
export interface DriverParts {
  hostId: string;
  timeoutMs: number;
  verbs: VolumeDriverApi;
  pool: BackendPool;
  ledger: Ledger;
  catalog: Catalog;
  stack: AttachStack;
  locks: VolumeLocks;
  mounts: Mounts;
  inventory: Inventory;
  log: Logger;
}

/**
 * The admin operations (AdminApi) over the driver's parts: each operation lives in its own file of
 * this folder; this class only wires them. Mutating operations take the volume's lock or an admin
 * hold (a counted mount) exactly as the Docker verbs do, so they never race a Mount or Remove.
 */
export class VolumeOperations implements AdminApi {
  constructor(private readonly p: DriverParts) {}

  listAll(measure: boolean): Promise<VolumeDetails[]> {
    return this.p.inventory.listAll(measure);
  }

  inspect(name: string): Promise<VolumeDetails> {
    return this.p.inventory.inspect(name);
  }

  async hold(name: string, purpose: string): Promise<VolumeHold> {
    const id = adminMountId(purpose);
    const mountpoint = await this.p.verbs.mount(name, id);
    const record = this.p.ledger.get(name);
    let released = false;
    return {
      name,
      backend: record?.backend ?? '',
      layout: record?.layout ?? 'directory',
      fs: record?.fs,
      mountpoint,
      release: async () => {
        if (released) return;
        released = true;
        await this.p.verbs.unmount(name, id);
      },
    };
  }

  create(name: string, options: Record<string, string>): Promise<void> {
    return this.p.verbs.create(name, options);
  }

  backup(name: string, opts: BackupOptions): Promise<BackupStream> {
    return startBackup(this.p, (n, why) => this.hold(n, why), name, opts);
  }

  restore(name: string, input: Readable, opts: RestoreOptions, signal: AbortSignal): Promise<RestoreResult> {
    return restoreInto(this.p, (n, why) => this.hold(n, why), name, input, opts, signal);
  }

  verify(name: string, input: Readable, signal: AbortSignal): Promise<VerifyResult> {
    return verifyAgainst(this.p, (n, why) => this.hold(n, why), name, input, signal);
  }
}
