import type { Logger } from '../log';
import { withTimeout } from '../system';
import type { StatsSweep, VolumeRef, VolumeSample } from './admin-api';
import type { AttachStack } from './attach';
import type { BackendPool } from './backends';
import { listMetas, VolumeMeta } from './catalog';
import { Ledger, mountCount } from './ledger';
import type { Mounts } from './mounts';
import type { UsageMeter } from './usage';

/**
 * The facts behind the metrics (metrics/): a sweep that measures every live volume (usage, inodes,
 * this host's health) and every backend (whether it can be listed) — slow, run in the background
 * a few volumes at a time, every call bounded — and the facts this host keeps in memory (mount
 * counts, leases held), cheap enough to read at every scrape.
 */
export class VolumeStats {
  constructor(
    private readonly o: { hostId: string; timeoutMs: number; pool: BackendPool; ledger: Ledger; stack: AttachStack; mounts: Mounts; usage: UsageMeter; log: Logger },
  ) {}

  /** Measures every live volume on every backend, `concurrency` volumes at a time; stops early when `signal` aborts. */
  async sweep(concurrency: number, signal?: AbortSignal): Promise<StatsSweep> {
    const { pool } = this.o;
    const backends: StatsSweep['backends'] = [];
    const names = pool.names();
    const listed: VolumeMeta[][] = names.map(() => []);
    await Promise.all(
      names.map(async (name, i) => {
        try {
          const backend = await pool.open(name);
          listed[i] = await pool.bounded(listMetas(backend), `listing backend ${name}`);
          backends.push({ name, up: true });
        } catch (err) {
          backends.push({ name, up: false, error: (err as Error).message });
        }
      }),
    );
    // A name on two backends is the first backend's, in config order, as the catalog finds it.
    const seen = new Set<string>();
    const todo: Array<() => Promise<VolumeSample>> = listed
      .flat()
      .filter((m) => !seen.has(m.name) && seen.add(m.name))
      .map((m) => () => this.measure(m));
    // A backend that cannot be listed: the volumes this host has attached from it still get their health checked.
    const down = new Set(backends.filter((b) => !b.up).map((b) => b.name));
    for (const [name, record] of Object.entries(this.o.ledger.records)) {
      if (down.has(record.backend) && (record.attached || record.fenced !== undefined) && record.pending === undefined && !seen.has(name)) {
        seen.add(name);
        todo.push(() => this.healthOnly(name, record.backend, record.layout));
      }
    }
    const volumes: VolumeSample[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < todo.length && !signal?.aborted) volumes.push(await todo[next++]());
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, todo.length)) }, worker));
    backends.sort((a, b) => a.name.localeCompare(b.name));
    return { volumes, backends };
  }

  /** One volume: its usage (as its Status shows it), inodes when mounted here, and this host's health of it when attached here. */
  private async measure(meta: VolumeMeta): Promise<VolumeSample> {
    const { name } = meta;
    const backend = meta.spec.backend;
    const record = this.recordOf(name, backend);
    const sample: VolumeSample = { name, backend, layout: meta.spec.layout };
    try {
      await withTimeout(
        (async () => {
          if (record?.fenced !== undefined && !record.attached) sample.healthy = false; // its data path was stopped: its containers get I/O errors
          if (record?.attached) {
            const live = await this.o.stack.liveness(name, record);
            sample.healthy = live === 'live';
            // A mount whose server does not answer is not measured: a statfs there could hang.
            if (live === 'unreachable') return;
          }
          const usage = await this.o.usage.measure(name, backend, meta, record);
          sample.usedBytes = usage.usedBytes;
          sample.availableBytes = usage.availableBytes;
          sample.capacityBytes = meta.spec.layout === 'image' ? meta.spec.sizeBytes : usage.usedBytes + usage.availableBytes;
          if (record?.attached && sample.healthy) {
            const fsu = await this.o.mounts.usage(this.o.stack.mountpoint(name));
            sample.inodes = fsu.inodes;
            sample.inodesFree = fsu.inodesFree;
          }
        })(),
        this.o.timeoutMs,
        `measuring volume ${name} for the metrics`,
        name,
      );
    } catch (err) {
      sample.error = (err as Error).message;
      this.o.log.debug('cannot measure volume for the metrics', { volume: name, backend, error: sample.error });
    }
    return sample;
  }

  /** A volume attached (or fenced) here whose backend cannot be listed: only whether its attachment works. */
  private async healthOnly(name: string, backend: string, layout: VolumeSample['layout']): Promise<VolumeSample> {
    const sample: VolumeSample = { name, backend, layout, healthy: false, error: `backend ${backend} cannot be listed` };
    const record = this.recordOf(name, backend);
    if (record?.attached) sample.healthy = await withTimeout(this.o.stack.liveness(name, record), this.o.timeoutMs, `checking volume ${name} for the metrics`, name).then((l) => l === 'live', () => false);
    return sample;
  }

  /** The volumes this host has a record of (mounted, attached, or with an operation in flight): shown at once, before the next sweep finds them. */
  here(): VolumeRef[] {
    return Object.entries(this.o.ledger.records)
      .filter(([, r]) => r.pending === undefined)
      .map(([name, r]) => ({ name, backend: r.backend, layout: r.layout }));
  }

  /** This host's mount count of a volume, and whether it holds its single-writer lease (image volumes on shared backends; undefined elsewhere). */
  hostFacts(ref: VolumeRef): { mounts: number; leaseHeld?: boolean } {
    const record = this.recordOf(ref.name, ref.backend);
    const presence = ref.layout === 'image' ? this.o.pool.presenceOf(ref.backend) : undefined;
    return { mounts: record ? mountCount(record.mounts) : 0, leaseHeld: presence ? presence.holdOf(ref.name) === 'exclusive' : undefined };
  }

  private recordOf(name: string, backend: string) {
    const record = this.o.ledger.get(name);
    return record?.backend === backend ? record : undefined;
  }
}
