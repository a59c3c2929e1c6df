import type { BackendPool } from './backends';
import type { VolumeMeta } from './catalog';
import type { VolumeRecord } from './ledger';
import type { Mounts } from './mounts';
import type { Usage } from './status';

const USAGE_TTL_MS = 2000;

/**
 * How full a volume is: an image volume mounted here is measured inside its filesystem; one not
 * mounted here shows what was measured when it was last unmounted here, else the image file's
 * size on the backend; a folder volume asks the backend (answers kept for a moment, as `docker
 * volume inspect` loops are common).
 */
export class UsageMeter {
  private readonly cache = new Map<string, { at: number; usage: Usage }>();

  constructor(
    private readonly pool: BackendPool,
    private readonly mounts: Mounts,
    private readonly mountpoint: (name: string) => string,
  ) {}

  async measure(name: string, backendName: string, meta: VolumeMeta, record: VolumeRecord | undefined): Promise<Usage> {
    const spec = meta.spec;
    if (spec.layout === 'image' && record?.attached && (await this.mounts.isMounted(this.mountpoint(name)))) {
      const u = await this.mounts.usage(this.mountpoint(name));
      return { sizeBytes: spec.sizeBytes, usedBytes: u.usedBytes, availableBytes: u.availableBytes };
    }
    if (spec.layout === 'image' && record?.lastUsage) return { sizeBytes: spec.sizeBytes, ...record.lastUsage };
    const cached = this.cache.get(name);
    if (cached && Date.now() - cached.at < USAGE_TTL_MS) return cached.usage;
    const backend = await this.pool.open(backendName, name);
    const u = await this.pool.bounded(backend.usage(name), `measuring volume ${name}`, name);
    const usage: Usage =
      spec.layout === 'image'
        ? { sizeBytes: spec.sizeBytes, usedBytes: u.usedBytes, availableBytes: Math.max(0, (spec.sizeBytes ?? 0) - u.usedBytes) }
        : u;
    this.cache.set(name, { at: Date.now(), usage });
    return usage;
  }

  /** The volume is gone: a new one of that name is measured afresh. */
  forget(name: string): void {
    this.cache.delete(name);
  }
}
