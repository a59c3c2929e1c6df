import type { Logger } from '../log';
import type { AttachStack } from './attach';
import type { BackendPool } from './backends';
import type { Found } from './catalog';
import { mountCount } from './ledger';
import { buildStatus, Usage } from './status';
import type { UsageMeter } from './usage';
import type { VolumeView } from './view';

/**
 * A volume's description for Get and List: its Status (options, usage, mount IDs), this host's
 * health and fencing, and on shared backends which hosts have it attached and who holds its lease.
 */
export class Describer {
  constructor(
    private readonly o: {
      hostId: string;
      pool: BackendPool;
      stack: AttachStack;
      usage: UsageMeter;
      log: Logger;
    },
  ) {}

  /**
   * Usage and health cost backend calls, so only Get measures them; List (which `docker volume ls`
   * never shows the Status of) describes from what it read.
   */
  async describe(found: Found, measure = true): Promise<VolumeView> {
    const { name, record, meta } = found;
    const { pool, stack, log } = this.o;
    const attached = record?.attached ?? false;
    const extra: Record<string, unknown> = {};
    let usage: Usage | undefined;
    if (measure && meta) {
      try {
        usage = await this.o.usage.measure(name, found.backend, meta, record);
      } catch (err) {
        log.warn('cannot measure volume usage', { volume: name, backend: found.backend, error: (err as Error).message });
      }
      const backend = pool.find(found.backend);
      if (backend?.statusFields) Object.assign(extra, await backend.statusFields(name).catch(() => ({})));
    }
    if (measure && record?.attached) extra.healthy = await stack.isLive(name, record).catch(() => false);
    if (record?.fenced) {
      extra.fenced = true;
      extra.fencedReason = record.fenced;
    }
    if (measure) await this.refreshPeers(found.backend, name);
    Object.assign(extra, this.clusterStatus(found));
    if (found.unreachable) extra.backendError = found.unreachable;
    const status = meta
      ? buildStatus(meta, usage, record?.mounts ?? {}, extra)
      : { backend: found.backend, layout: record?.layout, mounts: Object.keys(record?.mounts ?? {}), mountCount: mountCount(record?.mounts ?? {}), ...extra };
    return { name, mountpoint: attached ? stack.mountpoint(name) : '', createdAt: meta?.createdAt, status };
  }

  /** Reads the other hosts' heartbeat files now, so Get shows the cluster as it is (List uses the last beat's reading). */
  private async refreshPeers(backendName: string, volume: string): Promise<void> {
    const presence = this.o.pool.presenceOf(backendName);
    if (presence) await presence.readAll().catch((err: Error) => this.o.log.debug('cannot read the other hosts\' heartbeats', { volume, backend: backendName, error: err.message }));
  }

  /** Which hosts have the volume attached and who holds an image volume's lease, from the last heartbeats read. */
  private clusterStatus(found: Found): Record<string, unknown> {
    const presence = this.o.pool.presenceOf(found.backend);
    if (!presence) return {};
    const { hostId } = this.o;
    const others = presence.clusterView(found.name).filter((h) => h.alive !== false);
    const attachedOn = [...(found.record?.attached ? [hostId] : []), ...others.filter((h) => h.hold !== 'claim').map((h) => h.host)];
    const out: Record<string, unknown> = { attachedOn };
    const layout = found.meta?.spec.layout ?? found.record?.layout;
    if (layout === 'image') {
      const holder = presence.holdOf(found.name) === 'exclusive' ? hostId : others.find((h) => h.hold === 'exclusive')?.host;
      out.leaseHolder = holder ?? null;
    }
    if (others.length > 0) out.heartbeatAgeSeconds = Object.fromEntries(others.map((h) => [h.host, h.heartbeatAgeSeconds]));
    return out;
  }
}
