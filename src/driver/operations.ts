import type { Logger } from '../log';
import type { Readable } from 'node:stream';
import type { AdminApi, GcOptions, GcReport, ResizeResult, ArchiveFile, BackupOptions, BackupStream, RestoreOptions, RestoreResult, VerifyResult, StatsSweep, VolumeDetails, VolumeHold, VolumeRef } from './admin-api';
import { startBackup } from './backup';
import { restoreInto, verifyAgainst } from './restore';
import type { AttachStack } from './attach';
import type { BackendPool } from './backends';
import type { Catalog } from './catalog';
import type { CloneRequest, CloneResult, Cloner } from './clone';
import { GarbageCollector } from './gc';
import { adminMountId } from './holds';
import type { Inventory } from './inventory';
import type { Ledger } from './ledger';
import type { VolumeLocks } from './locks';
import type { Mounts } from './mounts';
import { Resizer } from './resize';
import type { SpaceCheck } from './space';
import type { VolumeStats } from './stats';
import type { VolumeDriverApi } from './view';

/** The driver's parts an admin operation may use (the same objects the verbs use). */
export interface DriverParts {
  hostId: string;
  /** This daemon run's id: the mount IDs of its admin holds carry it (holds.ts). */
  runId: string;
  timeoutMs: number;
  stateDir: string;
  mountRoot: string;
  verbs: VolumeDriverApi;
  pool: BackendPool;
  ledger: Ledger;
  catalog: Catalog;
  stack: AttachStack;
  locks: VolumeLocks;
  mounts: Mounts;
  inventory: Inventory;
  /** The free-space check of image volumes (Create and resize share its per-backend lock). */
  space: SpaceCheck;
  stats: VolumeStats;
  log: Logger;
  /** -o from= and netvolctl clone (clone.ts). */
  cloner: Cloner;
}

/**
 * The admin operations (AdminApi) over the driver's parts: each operation lives in its own file of
 * this folder; this class only wires them. Mutating operations take the volume's lock or an admin
 * hold (a counted mount) exactly as the Docker verbs do, so they never race a Mount or Remove.
 */
export class VolumeOperations implements AdminApi {
  private readonly resizer: Resizer;

  constructor(private readonly p: DriverParts) {
    this.resizer = new Resizer(p, (name, purpose) => this.hold(name, purpose));
  }

  listAll(measure: boolean): Promise<VolumeDetails[]> {
    return this.p.inventory.listAll(measure);
  }

  inspect(name: string): Promise<VolumeDetails> {
    return this.p.inventory.inspect(name);
  }

  clone(name: string, request: CloneRequest): Promise<CloneResult> {
    return this.p.cloner.clone(name, request);
  }

  sweepStats(concurrency: number, signal?: AbortSignal): Promise<StatsSweep> {
    return this.p.stats.sweep(concurrency, signal);
  }

  volumesHere(): VolumeRef[] {
    return this.p.stats.here();
  }

  hostFacts(ref: VolumeRef): { mounts: number; leaseHeld?: boolean } {
    return this.p.stats.hostFacts(ref);
  }

  async hold(name: string, purpose: string): Promise<VolumeHold> {
    const id = adminMountId(purpose, this.p.runId);
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

  resize(name: string, size: unknown): Promise<ResizeResult> {
    return this.resizer.resize(name, size);
  }

  gc(opts: GcOptions): Promise<GcReport> {
    return new GarbageCollector(this.p).run(opts);
  }

  create(name: string, options: Record<string, string>): Promise<void> {
    return this.p.verbs.create(name, options);
  }

  backup(name: string, opts: BackupOptions): Promise<BackupStream> {
    return startBackup(this.p, (n, why) => this.hold(n, why), name, opts);
  }

  restore(name: string, input: Readable | ArchiveFile, opts: RestoreOptions, signal: AbortSignal): Promise<RestoreResult> {
    return restoreInto(this.p, (n, why) => this.hold(n, why), name, input, opts, signal);
  }

  verify(name: string, input: Readable, signal: AbortSignal): Promise<VerifyResult> {
    return verifyAgainst(this.p, (n, why) => this.hold(n, why), name, input, signal);
  }
}
