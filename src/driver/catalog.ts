import { z } from 'zod';
import { VOLUME_FILE, type Backend } from '../backends';
import { NetvolError } from '../errors';
import type { Logger } from '../log';
import { noteRequestBackend } from '../system';
import type { BackendPool } from './backends';
import { Ledger, liveHere, mountCount, VolumeRecord } from './ledger';
import type { VolumeSpec } from './options';

/** The metadata file in each volume folder on a backend (see backends/layout). */
export const META_FILE = VOLUME_FILE;

const specSchema = z.object({
  backend: z.string(),
  layout: z.enum(['directory', 'image']),
  sizeBytes: z.number().int().positive().optional(),
  fs: z.enum(['ext4', 'xfs']).optional(),
  uid: z.number().int().optional(),
  gid: z.number().int().optional(),
  mode: z.number().int().optional(),
  onRemove: z.enum(['delete', 'retain', 'archive']),
});

const metaSchema = z.object({
  version: z.literal(1),
  name: z.string(),
  createdAt: z.string(),
  createdBy: z.string(),
  spec: specSchema,
  /** Set when the volume was removed with onRemove=retain: hidden, adopted by a matching Create. */
  retained: z.boolean().optional(),
  // --- resize (netvolctl resize): spec.sizeBytes is the current size; these say where it came from.
  /** The size the volume was created with, kept by its first resize: a re-sent Create with it still matches (see create.ts). */
  createdSizeBytes: z.number().int().positive().optional(),
  /** When and by which host the last resize was recorded (for people reading the file). */
  resizedAt: z.string().optional(),
  resizedBy: z.string().optional(),
  /** The volume it was cloned from (-o from= or netvolctl clone): a re-sent Create with that from succeeds without copying again. */
  clonedFrom: z.string().optional(),
});

export type VolumeMeta = z.infer<typeof metaSchema> & { spec: VolumeSpec };

/** Reads a volume's metadata; undefined when the folder is not a netvol volume (or an archive of one). */
export async function readMeta(backend: Backend, name: string): Promise<VolumeMeta | undefined> {
  const raw = await backend.readFile(name, META_FILE);
  if (!raw) return undefined;
  try {
    const parsed = metaSchema.safeParse(JSON.parse(raw.toString('utf8')));
    if (!parsed.success || parsed.data.name !== name) return undefined;
    return { ...parsed.data, spec: { ...parsed.data.spec, backend: backend.name } };
  } catch {
    return undefined;
  }
}

export async function writeMeta(backend: Backend, meta: VolumeMeta): Promise<void> {
  await backend.writeFile(meta.name, META_FILE, Buffer.from(`${JSON.stringify(meta, null, 1)}\n`));
}

/** Every live (not retained) volume on a backend, reading metadata a few folders at a time. */
export async function listMetas(backend: Backend, concurrency = 16): Promise<VolumeMeta[]> {
  const folders = await backend.listFolders();
  const out: VolumeMeta[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < folders.length) {
      const meta = await readMeta(backend, folders[next++]);
      if (meta && !meta.retained) out.push(meta);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, folders.length) }, worker));
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** A volume as a lookup found it: its backend, its metadata (read from the backend), and this host's record. */
export interface Found {
  name: string;
  backend: string;
  /** Undefined only when the backend cannot be read and this host has the volume mounted. */
  meta?: VolumeMeta;
  record?: VolumeRecord;
  /** Why the backend could not be read, when it could not. */
  unreachable?: string;
}

/**
 * The catalog: which volumes exist and with which options, read from the backends (the one truth).
 * A volume's metadata is read again whenever this host has no live mount of it; the metadata of
 * volumes mounted here, read when they were attached, is trusted while they stay mounted.
 */
export class Catalog {
  /** Metadata of volumes mounted here, read when they were attached: trusted only while they stay mounted. */
  private readonly attachedMeta = new Map<string, VolumeMeta>();

  constructor(
    private readonly pool: BackendPool,
    private readonly ledger: Ledger,
    private readonly log: Logger,
  ) {}

  /** Keeps the metadata of a volume just attached here. */
  remember(name: string, meta: VolumeMeta): void {
    this.attachedMeta.set(name, meta);
  }

  /** The volume is no longer mounted here: its metadata must be read again. */
  forget(name: string): void {
    this.attachedMeta.delete(name);
  }

  /**
   * Finds a live volume. Its metadata comes from the backend unless this host has it mounted; a
   * volume removed elsewhere is therefore not found. When a backend cannot be read: a volume this
   * host has mounted is still described from what this host knows; otherwise the lookup fails
   * (unless `lenient`, used by Create for the backends it does not create on).
   */
  async lookup(name: string, lenient = false): Promise<Found | undefined> {
    const record = this.ledger.get(name);
    if (record?.pending) return undefined;
    const cached = this.attachedMeta.get(name);
    if (record) noteRequestBackend(record.backend);
    if (record && cached && liveHere(record)) return { name, backend: record.backend, meta: cached, record };
    const all = this.pool.names();
    const order = record ? [record.backend, ...all.filter((b) => b !== record.backend)] : all;
    const results = await Promise.allSettled(
      order.map(async (backendName) => {
        const backend = await this.pool.open(backendName);
        return this.pool.bounded(readMeta(backend, name), `looking up volume ${name} on backend ${backendName}`, name);
      }),
    );
    for (let i = 0; i < order.length; i++) {
      const r = results[i];
      if (r.status === 'fulfilled' && r.value && !r.value.retained) {
        const mine = record?.backend === order[i] ? record : undefined;
        if (mine && liveHere(mine)) this.attachedMeta.set(name, r.value);
        noteRequestBackend(order[i]);
        return { name, backend: order[i], meta: r.value, record: mine };
      }
    }
    const failures = order
      .map((b, i) => ({ b, r: results[i] }))
      .filter((x): x is { b: string; r: PromiseRejectedResult } => x.r.status === 'rejected')
      .map(({ b, r }) => ({ backend: b, why: (r.reason as Error)?.message ?? String(r.reason) }));
    for (const f of failures) this.log.warn('backend unavailable while looking up a volume', { volume: name, backend: f.backend, error: f.why });
    if (record) {
      const failed = failures.find((f) => f.backend === record.backend);
      if (failed) return { name, backend: record.backend, meta: cached, record, unreachable: failed.why };
      if (mountCount(record.mounts) > 0) this.log.warn('volume was removed from its backend while this host still has it mounted', { volume: name, backend: record.backend });
      else {
        this.ledger.drop(name);
        this.attachedMeta.delete(name);
        await this.ledger.save();
      }
      return undefined;
    }
    if (failures.length > 0 && !lenient) {
      throw new NetvolError(
        'BACKEND_UNAVAILABLE',
        `volume ${name}: cannot tell whether it exists: backend ${failures.map((f) => f.backend).join(', ')} could not be read (${failures[0].why}); try again when the backend is reachable`,
        { volume: name },
      );
    }
    return undefined;
  }

  /**
   * Every volume on every reachable backend, read from the backends, by name. A backend that cannot
   * be listed contributes the volumes this host has mounted from it, so a passing outage never makes
   * Docker forget volumes in use.
   */
  async listAll(): Promise<Found[]> {
    const found = new Map<string, Found>();
    await Promise.all(
      this.pool.names().map(async (backendName) => {
        try {
          const backend = await this.pool.open(backendName);
          for (const meta of await this.pool.bounded(listMetas(backend), `listing backend ${backendName}`)) {
            if (found.has(meta.name)) continue;
            const known = this.ledger.get(meta.name);
            found.set(meta.name, { name: meta.name, backend: backendName, meta, record: known?.backend === backendName ? known : undefined });
          }
        } catch (err) {
          const why = (err as Error).message;
          this.log.warn('cannot list backend; listing the volumes this host has on it', { backend: backendName, error: why });
          for (const [name, record] of Object.entries(this.ledger.records)) {
            if (record.backend === backendName && !record.pending && !found.has(name)) found.set(name, { name, backend: backendName, meta: this.attachedMeta.get(name), record, unreachable: why });
          }
        }
      }),
    );
    return [...found.keys()].sort().map((name) => found.get(name) as Found);
  }

  notFound(name: string): NetvolError {
    return new NetvolError('NOT_FOUND', `volume ${name} not found on any netvol backend (${this.pool.names().join(', ')})`, { volume: name });
  }

  unavailable(found: Found): NetvolError {
    return new NetvolError('BACKEND_UNAVAILABLE', `volume ${found.name}: backend ${found.backend} cannot be read (${found.unreachable ?? 'unknown error'}); try again when it is reachable`, { volume: found.name });
  }
}
