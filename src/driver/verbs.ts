import type { Backend } from '../backends';
import type { Config } from '../config';
import { NetvolError } from '../errors';
import type { Logger } from '../log';
import { keyedRecord, type StateStore } from '../state';
import { noteRequestBackend } from '../system';
import { AttachStack } from './attach';
import { BackendPool } from './backends';
import { Catalog, readMeta } from './catalog';
import { checkSameOptions, Creation, refuseUnsupported } from './create';
import { Describer } from './describe';
import { DetachRetries } from './detach-retries';
import { isEarlierAdminHold, newRunId } from './holds';
import { Inventory } from './inventory';
import { HostState, Ledger, mountCount, VolumeRecord } from './ledger';
import { RequestBudgets, VolumeLocks } from './locks';
import { Mounts, realMounts } from './mounts';
import { validateVolumeName } from './names';
import { cloneSource, parseVolumeOptions, refuseBelowMinimum } from './options';
import { Cloner } from './clone';
import type { Handover } from './presence';
import { VolumeOperations } from './operations';
import { Recovery } from './recovery';
import { Removal } from './removal';
import { SpaceCheck } from './space';
import { VolumeStats } from './stats';
import { UsageMeter } from './usage';
import type { VolumeDriverApi, VolumeView } from './view';

/**
 * The VolumeDriver: Docker's volume verbs, the class dockerd's requests reach through plugin/.
 * Speaks in volumes and mount IDs, never in HTTP; each verb validates its input, takes the volume's
 * lock and hands the work to the part whose job it is (see README.md in this folder).
 *
 * The backend is the one truth: a volume's options are read from its volume.json whenever this host
 * has no live mount of it (catalog.ts), and on shared backends every host's attachments are read
 * from the hosts' heartbeat files (presence.ts). The ledger (state.json) holds only what this host
 * alone knows (ledger.ts).
 */
export class VolumeDriver implements VolumeDriverApi {
  private readonly locks: VolumeLocks;
  private readonly detachRetries: DetachRetries;
  private readonly ledger: Ledger;
  private readonly pool: BackendPool;
  private readonly catalog: Catalog;
  private readonly removal: Removal;
  private readonly stack: AttachStack;
  private readonly usage: UsageMeter;
  private readonly describer: Describer;
  private readonly creation: Creation;
  private readonly recovery: Recovery;
  /** `-o from=` on Create, and netvolctl clone (clone.ts). */
  private readonly cloner: Cloner;
  /** The operations Docker has no verb for, served by the admin API (admin/). */
  readonly operations: VolumeOperations;
  /** This daemon run: admin holds of other runs are released at restore (holds.ts). */
  private readonly runId = newRunId();
  /** Mount IDs (with their counts) each volume held when this daemon started, until reconciled with dockerd. */
  private heldAtStart = new Map<string, Map<string, number>>();

  constructor(
    private readonly config: Config,
    backends: ReadonlyMap<string, Backend>,
    store: StateStore<HostState>,
    private readonly log: Logger,
    /** The mounts this driver makes: the kernel's, unless a test passes a fake. */
    mounts: Mounts = realMounts,
    /** How long each request may run (see locks.ts); tests pass short ones. */
    budgets?: RequestBudgets,
  ) {
    this.locks = new VolumeLocks(budgets, log);
    this.detachRetries = new DetachRetries((name) => this.retryDetach(name), log, budgets?.detachRetryMs);
    const ledger = (this.ledger = new Ledger(store));
    const pool = (this.pool = new BackendPool(config, backends, ledger, log, (backend, volumes, why) => this.stack.fence(backend, volumes, why)));
    const catalog = (this.catalog = new Catalog(pool, ledger, log));
    const removal = (this.removal = new Removal(pool, config.hostId, log));
    const stack = (this.stack = new AttachStack({ mountRoot: config.mountRoot, timeoutMs: config.timeoutMs, pool, ledger, catalog, removal, mounts, log }));
    this.usage = new UsageMeter(pool, mounts, (name) => stack.mountpoint(name));
    this.describer = new Describer({ hostId: config.hostId, pool, stack, usage: this.usage, log });
    const space = new SpaceCheck(pool);
    this.creation = new Creation({ hostId: config.hostId, pool, ledger, mounts, space, log });
    this.recovery = new Recovery({ pool, ledger, locks: this.locks, stack, removal, mounts, log });
    const inventory = new Inventory({ hostId: config.hostId, pool, ledger, catalog, describer: this.describer, mountpoint: (name) => stack.mountpoint(name), log });
    this.cloner = new Cloner({
      pool, ledger, catalog, locks: this.locks, creation: this.creation, mounts, defaultBackend: config.defaultBackend, log,
      hold: (name, purpose) => this.operations.hold(name, purpose),
    });
    this.operations = new VolumeOperations({
      hostId: config.hostId, runId: this.runId, timeoutMs: config.timeoutMs, stateDir: config.stateDir, mountRoot: config.mountRoot, verbs: this, pool, ledger, catalog, stack, locks: this.locks, mounts, inventory, space, log,
      cloner: this.cloner,
      stats: new VolumeStats({ hostId: config.hostId, timeoutMs: config.timeoutMs, pool, ledger, stack, mounts, usage: this.usage, log }),
    });
  }

  get scope(): 'local' | 'global' {
    return this.pool.scope;
  }

  mountpoint(name: string): string {
    return this.stack.mountpoint(name);
  }

  async create(rawName: unknown, opts: unknown): Promise<void> {
    const name = validateVolumeName(rawName);
    if (cloneSource(opts) !== undefined) {
      // A clone (-o from=SRC): its copy must end within the Create's budget, or it is undone.
      const o = opts as Record<string, unknown>;
      return this.locks.run(name, (signal) => this.cloner.createFrom(name, o, signal, this.locks.budgetOf('create')), 'create');
    }
    const spec = parseVolumeOptions(name, opts, this.config.defaultBackend);
    refuseUnsupported(name, spec, this.pool.configured(spec.backend, name));
    const backend = await this.pool.open(spec.backend, name);
    await this.locks.run(name, async (signal) => {
      noteRequestBackend(spec.backend);
      const existing = await this.catalog.lookup(name, true);
      if (existing?.meta) return checkSameOptions(name, existing.meta, spec);
      if (existing) throw this.catalog.unavailable(existing);
      const onBackend = await this.pool.bounded(readMeta(backend, name), `looking up volume ${name}`, name);
      if (onBackend?.retained) return this.creation.adoptRetained(backend, onBackend, spec);
      refuseBelowMinimum(name, spec, opts);
      await this.creation.makeNew(backend, name, spec, signal);
    }, 'create');
  }

  /** On a shared backend, Remove takes its half of the removal handshake first (see removal.ts). */
  async remove(rawName: unknown): Promise<void> {
    const name = validateVolumeName(rawName);
    await this.locks.run(name, async (signal) => {
      const found = await this.catalog.lookup(name);
      if (!found) {
        this.log.info('remove of a volume netvol does not know: nothing to do', { volume: name });
        return;
      }
      if (!found.meta) throw this.catalog.unavailable(found);
      const count = mountCount(found.record?.mounts ?? {});
      if (found.record && count > 0) {
        const ids = Object.keys(found.record.mounts).length;
        throw new NetvolError(
          'IN_USE',
          `volume ${name} is in use: ${count} mount${count === 1 ? '' : 's'} on this host (${ids} container mount ID${ids === 1 ? '' : 's'}); stop the containers using it first`,
          { volume: name },
        );
      }
      const backend = await this.pool.open(found.backend, name);
      const presence = this.pool.presenceOf(backend);
      const policy = found.meta.spec.onRemove;
      const record: VolumeRecord = found.record ?? { backend: backend.name, layout: found.meta.spec.layout, fs: found.meta.spec.fs, mounts: keyedRecord(), attached: false };
      this.ledger.set(name, record);
      if (presence) {
        // Saved before the marker is written: a crash from here on is undone at the next start (recovery.ts).
        record.marking = true;
        await this.ledger.save();
        try {
          await this.removal.mark(presence, backend, name);
        } catch (err) {
          delete record.marking;
          this.ledger.tidy(name);
          await this.ledger.save();
          throw err;
        }
      }
      try {
        if (record.attached) await this.stack.detach(name, record, backend, signal);
        record.pending = 'remove';
        record.onRemove = policy;
        delete record.marking;
        await this.ledger.save();
        await this.removal.applyPolicy(backend, name, policy);
      } catch (err) {
        delete record.pending;
        delete record.onRemove;
        delete record.marking;
        this.ledger.tidy(name);
        await this.ledger.save();
        if (presence) await this.removal.unmark(backend, name);
        throw err;
      }
      this.ledger.drop(name);
      this.usage.forget(name);
      this.catalog.forget(name);
      await this.ledger.save();
      this.log.info('removed volume', { volume: name, backend: backend.name, onRemove: policy });
    }, 'remove');
  }

  async mount(rawName: unknown, id: unknown): Promise<string> {
    const name = validateVolumeName(rawName);
    const mountId = this.mountId(name, id);
    return this.locks.run(name, async (signal) => {
      const found = await this.catalog.lookup(name);
      if (!found) throw this.catalog.notFound(name);
      let record = found.record;
      if (!found.meta) {
        // The backend cannot be read: only a mount this host already has, and that still works, can be counted.
        const live = record?.attached ? await this.stack.liveness(name, record) : 'down';
        if (live === 'unreachable') throw this.stack.unreachable(name, record as VolumeRecord);
        if (live !== 'live') throw this.catalog.unavailable(found);
      } else if (!record) {
        record = { backend: found.backend, layout: found.meta.spec.layout, fs: found.meta.spec.fs, mounts: keyedRecord(), attached: false };
        this.ledger.set(name, record);
      }
      const r = record as VolumeRecord;
      try {
        // A stack whose server does not answer is left as it is (its helper reconnects by itself):
        // attaching it again would cut off its containers and wait in vain for the server.
        const live = r.attached ? await this.stack.liveness(name, r) : 'down';
        if (live === 'unreachable') throw this.stack.unreachable(name, r);
        if (live === 'down') await this.stack.attach(name, r, found.meta, signal);
      } catch (err) {
        this.ledger.tidy(name);
        throw err;
      }
      r.mounts[mountId] = (r.mounts[mountId] ?? 0) + 1;
      await this.ledger.save();
      return this.mountpoint(name);
    }, 'mount');
  }

  async unmount(rawName: unknown, id: unknown): Promise<void> {
    const name = validateVolumeName(rawName);
    const mountId = this.mountId(name, id);
    await this.locks.run(name, async (signal) => {
      const record = this.ledger.get(name);
      if (record) noteRequestBackend(record.backend);
      if (!record || !record.mounts[mountId]) {
        this.log.warn('unmount of a mount ID netvol does not hold: nothing to do', { volume: name, backend: record?.backend, mountId });
        return;
      }
      record.mounts[mountId] -= 1;
      if (record.mounts[mountId] <= 0) delete record.mounts[mountId];
      await this.detachIfUnused(name, record, signal);
    }, 'unmount');
  }

  /**
   * After mount IDs were released (lock held): the last one gone, the volume is detached as by an
   * Unmount. A detach that fails is tried again in the background (detach-retries.ts).
   */
  private async detachIfUnused(name: string, record: VolumeRecord, signal?: AbortSignal): Promise<void> {
    try {
      if (mountCount(record.mounts) === 0) {
        delete record.fenced;
        if (record.attached) await this.stack.detach(name, record, await this.pool.open(record.backend, name), signal);
      }
      this.detachRetries.forget(name);
    } catch (err) {
      if (mountCount(record.mounts) === 0 && record.attached) this.detachRetries.schedule(name, record.backend);
      throw err;
    } finally {
      this.ledger.tidy(name);
      await this.ledger.save();
    }
  }

  /** One background attempt (see detach-retries.ts): under the volume's lock, only while no mount ID came back. */
  private retryDetach(name: string): Promise<void> {
    return this.locks.run(name, async (signal) => {
      const record = this.ledger.get(name);
      if (!record || !record.attached || mountCount(record.mounts) > 0) return;
      noteRequestBackend(record.backend);
      await this.detachIfUnused(name, record, signal);
      this.log.info('a detach that had failed finished in the background', { volume: name, backend: record.backend });
    }, 'detach');
  }

  /** The volumes that held mount IDs when this daemon started and are not yet reconciled (see releaseStaleMounts). */
  mountedBeforeStart(): string[] {
    return [...this.heldAtStart.keys()];
  }

  /**
   * Reconciling with dockerd after a start: dockerd forgets a mount whose Unmount failed (netvol was
   * down when its container ended), so a mount ID recorded before this start may have no container
   * left. For each volume of mountedBeforeStart() not in `namesInUse` (the volumes dockerd's running
   * containers use), the mount IDs recorded before this start are released as Unmounts would, and
   * the volume is detached once none is left. IDs a Mount acquired after the start are never
   * touched. Each volume is reconciled once; later calls do nothing for it.
   */
  async releaseStaleMounts(namesInUse: ReadonlySet<string>): Promise<void> {
    const held = this.heldAtStart;
    this.heldAtStart = new Map();
    for (const [name, ids] of held) {
      if (namesInUse.has(name)) continue;
      try {
        await this.locks.run(name, async (signal) => {
          const record = this.ledger.get(name);
          if (!record) return;
          const released: string[] = [];
          for (const [id, count] of ids) {
            const now = record.mounts[id];
            if (!now) continue;
            if (now > count) record.mounts[id] = now - count;
            else delete record.mounts[id];
            released.push(id);
          }
          if (released.length === 0) return;
          this.log.info('released mount IDs recorded before this start: no running container uses the volume (dockerd forgot them while netvol was down)', {
            volume: name,
            backend: record.backend,
            mountIds: released,
          });
          await this.detachIfUnused(name, record, signal);
        }, 'unmount');
      } catch (err) {
        this.log.error('cannot release the stale mount IDs of volume; it stays held here: restart netvol to try again', {
          volume: name,
          error: (err as Error).message,
        });
      }
    }
  }

  async path(rawName: unknown): Promise<string> {
    const name = validateVolumeName(rawName);
    const found = await this.catalog.lookup(name);
    if (!found) throw this.catalog.notFound(name);
    return found.record?.attached ? this.mountpoint(name) : '';
  }

  async get(rawName: unknown): Promise<VolumeView> {
    const name = validateVolumeName(rawName);
    const found = await this.catalog.lookup(name);
    if (!found) throw this.catalog.notFound(name);
    return this.describer.describe(found);
  }

  /** Every volume on every backend (see Catalog.listAll), described from what was read. */
  async list(): Promise<VolumeView[]> {
    const found = await this.catalog.listAll();
    return Promise.all(found.map((f) => this.describer.describe(f, false)));
  }

  private mountId(name: string, id: unknown): string {
    if (typeof id !== 'string' || !/^[A-Za-z0-9_.-]{1,128}$/.test(id)) {
      throw new NetvolError('INVALID_OPTION', `volume ${name}: mount ID is missing or malformed`, { volume: name });
    }
    return id;
  }

  /** At start, before the socket listens (see recovery.ts); notes the mount IDs held before this start. */
  async restore(): Promise<void> {
    this.releaseEarlierAdminHolds();
    await this.recovery.restore();
    for (const [name, record] of Object.entries(this.ledger.records)) {
      const ids = Object.entries(record.mounts);
      if (ids.length > 0) this.heldAtStart.set(name, new Map(ids));
    }
  }

  /**
   * Admin holds (backup, clone, resize) taken by an earlier daemon run died with it: they are
   * released before the restore, which then detaches a volume nothing else holds.
   */
  private releaseEarlierAdminHolds(): void {
    for (const [name, record] of Object.entries(this.ledger.records)) {
      const ids = Object.keys(record.mounts).filter((id) => isEarlierAdminHold(id, this.runId));
      if (ids.length === 0) continue;
      for (const id of ids) delete record.mounts[id];
      this.log.warn('released admin holds of an earlier netvol run (the operation ended with that daemon)', { volume: name, backend: record.backend, mountIds: ids });
    }
  }

  /** At start, after the socket listens (see recovery.ts). */
  remountAll(): Promise<void> {
    return this.recovery.remountAll();
  }

  /**
   * Stops the heartbeats (mounts stay) and saves the ledger. Returns, per shared backend where this
   * host still has volumes attached, what a caretaker needs to keep their attachments alive and
   * fenced while the daemon is away.
   */
  async close(): Promise<Handover[]> {
    this.detachRetries.close();
    const handovers = this.pool.stopHeartbeats();
    await this.ledger.save();
    await this.pool.closeBackends();
    return handovers;
  }
}
