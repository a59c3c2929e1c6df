import { z } from 'zod';
import { asKeyed, keyedRecord, keyedSchema, StateStore } from '../state';

/**
 * This host's ledger: the only contents of state.json. It holds what this host alone knows — which
 * mount IDs hold a volume here, whether it is mounted here, operations in flight, the last usage it
 * measured — and never a copy of shared facts (a volume's options live in volume.json on its
 * backend, and who else has it attached lives in the hosts' heartbeat files there).
 */
const recordSchema = z.object({
  /** The backend the volume lives on. */
  backend: z.string().min(1),
  /** How this host mounts it, so it can be unmounted while the backend is unreachable. */
  layout: z.enum(['directory', 'image']),
  fs: z.enum(['ext4', 'xfs']).optional(),
  /** Mount ID → number of Mount calls not yet matched by an Unmount. */
  mounts: keyedSchema(z.number().int().nonnegative()),
  /** The volume is mounted at its mountpoint on this host. */
  attached: z.boolean(),
  /** An operation that had started and not finished when this was saved. */
  pending: z.enum(['create', 'remove']).optional(),
  /**
   * Remove's handshake is under way: this host may have written the volume's removal marker on the
   * shared backend. A restart that finds this without a pending remove takes its own marker away
   * (the Remove never got further), or other hosts would refuse to mount the volume for good.
   */
  marking: z.boolean().optional(),
  /** With pending remove: the volume's onRemove, so a restart can finish it. */
  onRemove: z.enum(['delete', 'retain', 'archive']).optional(),
  /** Image volumes: used/available bytes inside the filesystem, measured when it was last unmounted here. */
  lastUsage: z.object({ usedBytes: z.number().nonnegative(), availableBytes: z.number().nonnegative() }).optional(),
  /** Why this host stopped the volume's data path on its own (it could not renew its claim in time). */
  fenced: z.string().optional(),
});

/** Keyed by volume name and mount ID, records without a prototype: a volume may be named `constructor`. */
const stateSchema = z.object({ volumes: keyedSchema(recordSchema) });

export type VolumeRecord = z.infer<typeof recordSchema>;
export type HostState = z.infer<typeof stateSchema>;

export const STATE_VERSION = 2;
export const emptyState = (): HostState => ({ volumes: keyedRecord() });

/** Version 1 kept a copy of each volume's metadata in the record. */
const v1Schema = z.object({
  volumes: keyedSchema(
    z.object({
      backend: z.string(),
      meta: z.object({ spec: z.object({ layout: z.enum(['directory', 'image']), fs: z.enum(['ext4', 'xfs']).optional(), onRemove: z.enum(['delete', 'retain', 'archive']) }) }),
      mounts: keyedSchema(z.number().int().nonnegative()),
      attached: z.boolean(),
      pending: z.enum(['create', 'remove']).optional(),
      lastUsage: z.object({ usedBytes: z.number().nonnegative(), availableBytes: z.number().nonnegative() }).optional(),
    }),
  ),
});

/** Whether a record still says something only this host knows; records that do not are dropped. */
export function holdsHostFacts(r: VolumeRecord): boolean {
  return r.attached || r.pending !== undefined || r.marking === true || r.lastUsage !== undefined || r.fenced !== undefined || Object.keys(r.mounts).length > 0;
}

function fromV1(data: unknown): HostState {
  const v1 = v1Schema.parse(data);
  const out = emptyState();
  for (const [name, r] of Object.entries(v1.volumes)) {
    const record: VolumeRecord = {
      backend: r.backend,
      layout: r.meta.spec.layout,
      fs: r.meta.spec.fs,
      mounts: r.mounts,
      attached: r.attached,
      pending: r.pending,
      onRemove: r.pending === 'remove' ? r.meta.spec.onRemove : undefined,
      lastUsage: r.lastUsage,
    };
    for (const key of Object.keys(record) as Array<keyof VolumeRecord>) if (record[key] === undefined) delete record[key];
    if (holdsHostFacts(record)) out.volumes[name] = record;
  }
  return out;
}

/** Validates a state document of any known version and brings it to the current one. */
export function upgradeState(fromVersion: number, data: unknown): HostState {
  try {
    if (fromVersion === STATE_VERSION) return stateSchema.parse(data);
    if (fromVersion === 1) return fromV1(data);
  } catch (err) {
    if (!(err instanceof z.ZodError)) throw err;
    const first = err.issues[0];
    throw new Error(`${first.path.join('.') || 'the document'}: ${first.message.toLowerCase()}`);
  }
  throw new Error(`version ${fromVersion} is not one this netvol knows (1 to ${STATE_VERSION}); it may come from a newer netvol`);
}

/** Opens this host's ledger, migrating an older state file in place (it is rewritten at the next save). */
export function openLedger(file: string, onProblem: (msg: string) => void): Promise<StateStore<HostState>> {
  return StateStore.open<HostState>(file, STATE_VERSION, emptyState, onProblem, upgradeState);
}

/** How many Mount calls hold a volume here, over all its mount IDs. */
export function mountCount(mounts: Record<string, number>): number {
  return Object.values(mounts).reduce((a, b) => a + b, 0);
}

/** The volume is mounted here for containers, so the metadata read when it was attached still holds. */
export function liveHere(record: VolumeRecord | undefined): record is VolumeRecord {
  return record !== undefined && record.attached && mountCount(record.mounts) > 0;
}

/** The ledger as the driver uses it: this host's records by volume name, saved atomically after each change. */
export class Ledger {
  constructor(private readonly store: StateStore<HostState>) {}

  /** Every record, by volume name (live: changes are saved by save()). */
  get records(): Record<string, VolumeRecord> {
    return this.store.data.volumes;
  }

  get(name: string): VolumeRecord | undefined {
    return this.records[name];
  }

  set(name: string, record: VolumeRecord): void {
    record.mounts = asKeyed(record.mounts);
    this.records[name] = record;
  }

  drop(name: string): void {
    delete this.records[name];
  }

  /** Drops a record that no longer says anything only this host knows. */
  tidy(name: string): void {
    const record = this.records[name];
    if (record && !holdsHostFacts(record)) delete this.records[name];
  }

  save(): Promise<void> {
    return this.store.save();
  }
}
