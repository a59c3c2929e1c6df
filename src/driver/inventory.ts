import { isArchiveName, VOLUME_FILE } from '../backends';
import type { Logger } from '../log';
import type { VolumeDetails } from './admin-api';
import type { BackendPool } from './backends';
import type { Catalog, Found } from './catalog';
import type { Describer } from './describe';
import type { Ledger } from './ledger';
import { mountCount } from './ledger';

/** How many volume folders are read at once on one backend. */
const CONCURRENCY = 16;

interface RawMeta {
  name?: unknown;
  createdAt?: unknown;
  createdBy?: unknown;
  retained?: unknown;
  spec?: { layout?: unknown; fs?: unknown; sizeBytes?: unknown; onRemove?: unknown };
}

/**
 * The inventory behind `netvolctl ls` and `inspect`: every folder on every backend that holds a
 * netvol volume — live ones (described as Get describes them), retained ones (removed with
 * onRemove=retain, adopted by a matching Create) and archives (removed with onRemove=archive).
 */
export class Inventory {
  constructor(
    private readonly o: { hostId: string; pool: BackendPool; ledger: Ledger; catalog: Catalog; describer: Describer; mountpoint: (name: string) => string; log: Logger },
  ) {}

  async listAll(measure: boolean): Promise<VolumeDetails[]> {
    const out: VolumeDetails[] = [];
    const live = await this.o.catalog.listAll();
    const liveNames = new Set(live.map((f) => `${f.backend}/${f.name}`));
    out.push(...(await Promise.all(live.map((f) => this.describeLive(f, measure)))));
    await Promise.all(
      this.o.pool.names().map(async (backendName) => {
        try {
          const backend = await this.o.pool.open(backendName);
          const folders = (await this.o.pool.bounded(backend.listFolders(), `listing backend ${backendName}`)).filter((f) => !liveNames.has(`${backendName}/${f}`));
          let next = 0;
          const worker = async (): Promise<void> => {
            while (next < folders.length) {
              const folder = folders[next++];
              const raw = await this.o.pool.bounded(backend.readFile(folder, VOLUME_FILE), `reading ${folder} on backend ${backendName}`).catch(() => undefined);
              const d = raw ? this.describeRemoved(backendName, folder, raw) : undefined;
              if (d) out.push(d);
            }
          };
          await Promise.all(Array.from({ length: Math.min(CONCURRENCY, folders.length) }, worker));
        } catch (err) {
          this.o.log.warn('cannot list backend for the inventory', { backend: backendName, error: (err as Error).message });
        }
      }),
    );
    return out.sort((a, b) => a.name.localeCompare(b.name) || a.folder.localeCompare(b.folder));
  }

  /** A live volume by name; else, its retained or archived copies (the first of them). */
  async inspect(name: string): Promise<VolumeDetails> {
    const found = await this.o.catalog.lookup(name);
    if (found) return this.describeLive(found, true);
    const removed = (await this.listAll(false)).filter((d) => d.name === name);
    if (removed.length > 0) return removed[0];
    throw this.o.catalog.notFound(name);
  }

  private async describeLive(found: Found, measure: boolean): Promise<VolumeDetails> {
    const view = await this.o.describer.describe(found, measure);
    const s = view.status;
    const record = found.record;
    const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
    return {
      name: found.name,
      backend: found.backend,
      state: found.meta ? 'live' : 'unreadable',
      folder: found.name,
      layout: found.meta?.spec.layout ?? record?.layout,
      fs: found.meta?.spec.fs,
      sizeBytes: found.meta?.spec.sizeBytes,
      usedBytes: num(s.usedBytes),
      availableBytes: num(s.availableBytes),
      onRemove: found.meta?.spec.onRemove,
      createdAt: found.meta?.createdAt,
      createdBy: found.meta?.createdBy,
      attachedOn: Array.isArray(s.attachedOn) ? (s.attachedOn as string[]) : record?.attached ? [this.o.hostId] : [],
      leaseHolder: s.leaseHolder === undefined ? undefined : (s.leaseHolder as string | null),
      healthy: typeof s.healthy === 'boolean' ? s.healthy : undefined,
      mountCount: mountCount(record?.mounts ?? {}),
      mountpoint: view.mountpoint,
      error: found.unreachable,
      status: s,
    };
  }

  private describeRemoved(backend: string, folder: string, raw: Buffer): VolumeDetails | undefined {
    let meta: RawMeta;
    try {
      meta = JSON.parse(raw.toString('utf8')) as RawMeta;
    } catch {
      return undefined;
    }
    if (typeof meta.name !== 'string' || typeof meta.spec !== 'object' || meta.spec === null) return undefined;
    const archived = isArchiveName(folder);
    if (!archived && meta.retained !== true) return undefined;
    const spec = meta.spec;
    return {
      name: meta.name,
      backend,
      state: archived ? 'archived' : 'retained',
      folder,
      layout: spec.layout === 'image' ? 'image' : 'directory',
      fs: spec.fs === 'xfs' || spec.fs === 'ext4' ? spec.fs : undefined,
      sizeBytes: typeof spec.sizeBytes === 'number' ? spec.sizeBytes : undefined,
      onRemove: spec.onRemove === 'retain' || spec.onRemove === 'archive' || spec.onRemove === 'delete' ? spec.onRemove : undefined,
      createdAt: typeof meta.createdAt === 'string' ? meta.createdAt : undefined,
      createdBy: typeof meta.createdBy === 'string' ? meta.createdBy : undefined,
      attachedOn: [],
      mountCount: 0,
      mountpoint: '',
    };
  }
}
