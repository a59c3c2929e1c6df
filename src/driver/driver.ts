import { promises as fs } from 'node:fs';
import path from 'node:path';
import { DATA_DIR, IMAGE_FILE, type Backend } from '../backends';
import type { Config } from '../config';
import { isNetvolError, NetvolError, wrapError } from '../errors';
import type { Logger } from '../log';
import type { StateStore } from '../state';
import { BackendPool } from './backends';
import { Catalog, Found, readMeta, VolumeMeta, writeMeta } from './catalog';
import { stopDataPath } from './fencing';
import { HostState, Ledger, mountCount, VolumeRecord } from './ledger';
import { VolumeLocks } from './locks';
import { Mounts, realMounts } from './mounts';
import { validateVolumeName } from './names';
import { formatSize, parseVolumeOptions, specDifferences, VolumeSpec } from './options';
import type { Handover } from './presence';
import { Removal } from './removal';
import { buildStatus, Usage } from './status';

export interface VolumeInfo {
  name: string;
  mountpoint: string;
  /** Absent when the backend cannot be read and this host knows the volume only from its own mounts. */
  createdAt?: string;
  status: Record<string, unknown>;
}

const USAGE_TTL_MS = 2000;
/** How long a Create waits for another host that is creating the same volume at the same moment. */
const CREATE_WAIT_MS = 45_000;

/**
 * The VolumeDriver: Docker's volume verbs over backends, quotas and this host's ledger. Speaks in
 * volumes and mount IDs; never in HTTP.
 *
 * The backend is the one truth: a volume's options are read from its volume.json whenever this host
 * has no live mount of it, and on shared backends every host's attachments are read from the hosts'
 * heartbeat files (see presence.ts). The ledger (state.json) holds only what this host alone knows.
 */
export class VolumeDriver {
  private readonly locks = new VolumeLocks();
  private readonly usageCache = new Map<string, { at: number; usage: Usage }>();
  private readonly ledger: Ledger;
  private readonly pool: BackendPool;
  private readonly catalog: Catalog;
  private readonly removal: Removal;

  constructor(
    private readonly config: Config,
    backends: ReadonlyMap<string, Backend>,
    store: StateStore<HostState>,
    private readonly log: Logger,
    /** The mounts this driver makes: the kernel's, unless a test passes a fake. */
    private readonly mounts: Mounts = realMounts,
  ) {
    this.ledger = new Ledger(store);
    this.pool = new BackendPool(config, backends, this.ledger, log, (backend, volumes, why) => this.fence(backend, volumes, why));
    this.catalog = new Catalog(this.pool, this.ledger, log);
    this.removal = new Removal(this.pool, config.hostId, log);
  }

  get scope(): 'local' | 'global' {
    return this.pool.scope;
  }

  mountpoint(name: string): string {
    return path.join(this.config.mountRoot, name);
  }

  async create(rawName: unknown, opts: unknown): Promise<void> {
    const name = validateVolumeName(rawName);
    const spec = parseVolumeOptions(name, opts, this.config.defaultBackend);
    refuseUnsupported(name, spec, this.pool.configured(spec.backend, name));
    const backend = await this.pool.open(spec.backend, name);
    await this.locks.run(name, async () => {
      const existing = await this.catalog.lookup(name, true);
      if (existing?.meta) return this.checkSameOptions(name, existing.meta.spec, spec);
      if (existing) throw this.catalog.unavailable(existing);
      const onBackend = await this.pool.bounded(readMeta(backend, name), `looking up volume ${name}`, name);
      if (onBackend?.retained) return this.adoptRetained(backend, onBackend, spec);
      await this.createNew(backend, name, spec);
    });
  }

  private checkSameOptions(name: string, have: VolumeSpec, want: VolumeSpec): void {
    const diff = specDifferences(have, want);
    if (diff.length > 0) {
      throw new NetvolError(
        'OPTIONS_CONFLICT',
        `volume ${name} already exists with different options (${diff.join(', ')}): use the same options, or remove the volume first`,
        { volume: name },
      );
    }
  }

  private async adoptRetained(backend: Backend, meta: VolumeMeta, spec: VolumeSpec): Promise<void> {
    const diff = specDifferences(meta.spec, spec);
    if (diff.length > 0) {
      throw new NetvolError(
        'OPTIONS_CONFLICT',
        `volume ${meta.name}: backend ${backend.name} holds retained data of an earlier volume with this name and other options (${diff.join(', ')}): create it with the same options to adopt the data, or choose another name`,
        { volume: meta.name },
      );
    }
    const adopted: VolumeMeta = { ...meta, retained: undefined };
    delete adopted.retained;
    await this.pool.bounded(writeMeta(backend, adopted), `adopting volume ${meta.name}`, meta.name);
    this.log.info('adopted retained volume', { volume: meta.name, backend: backend.name });
  }

  /**
   * Makes a new volume. The folder's mkdir on the backend is the atomic step: of several hosts
   * creating one name at once, one makes it, and the others wait for its volume.json and succeed
   * if the options agree.
   */
  private async createNew(backend: Backend, name: string, spec: VolumeSpec): Promise<void> {
    if (spec.layout === 'image' && !this.pool.settings(backend.name).allowOvercommit) {
      const free = await this.pool.bounded(backend.freeBytes(), `checking free space on backend ${backend.name}`, name);
      if ((spec.sizeBytes ?? 0) > free) {
        throw new NetvolError(
          'NO_SPACE',
          `volume ${name}: backend ${backend.name} has ${formatSize(free)} free, less than the requested size ${formatSize(spec.sizeBytes ?? 0)}: choose a smaller size, free space, or set allowOvercommit: true on the backend`,
          { volume: name },
        );
      }
    }
    const meta: VolumeMeta = { version: 1, name, createdAt: new Date().toISOString(), createdBy: this.config.hostId, spec };
    this.ledger.set(name, { backend: backend.name, layout: spec.layout, fs: spec.fs, mounts: {}, attached: false, pending: 'create' });
    await this.ledger.save();
    let made = false;
    try {
      const waitUntil = Date.now() + CREATE_WAIT_MS;
      for (;;) {
        made = await this.pool.bounded(backend.makeFolder(name, spec.layout === 'directory'), `creating the folder of volume ${name}`, name);
        if (made) break;
        const other = await this.pool.bounded(readMeta(backend, name), `looking up volume ${name}`, name);
        if (other && !other.retained) {
          this.checkSameOptions(name, other.spec, spec);
          this.log.info('volume was created by another host at the same moment; options agree', { volume: name, backend: backend.name, createdBy: other.createdBy });
          return;
        }
        if (Date.now() > waitUntil) {
          throw new NetvolError(
            'OPTIONS_CONFLICT',
            `volume ${name}: backend ${backend.name} already has a folder with this name that is not a netvol volume (no volume.json appeared in it within ${CREATE_WAIT_MS / 1000} s): move it away or choose another name`,
            { volume: name },
          );
        }
        await new Promise((r) => setTimeout(r, 250));
      }
      const attrs = { uid: spec.uid, gid: spec.gid, mode: spec.mode };
      if (spec.layout === 'directory') {
        if (spec.uid !== undefined || spec.gid !== undefined || spec.mode !== undefined) {
          await this.pool.bounded(backend.setDataAttributes(name, attrs), `setting owner and mode of volume ${name}`, name);
        }
      } else {
        const folder = await this.pool.bounded(backend.attach(name), `attaching volume ${name}`, name);
        try {
          await this.mounts.createImage(path.join(folder, IMAGE_FILE), spec.sizeBytes as number, spec.fs ?? 'ext4', attrs);
        } finally {
          await this.pool.bounded(backend.detach(name), `detaching volume ${name}`, name);
        }
      }
      await this.pool.bounded(writeMeta(backend, meta), `writing the metadata of volume ${name}`, name);
    } catch (err) {
      if (made) await backend.removeFolder(name).catch((e) => this.log.error('cannot clean up half-created volume', { volume: name, error: (e as Error).message }));
      throw isNetvolError(err) && err.message.includes(name) ? err : wrapError(err, 'INTERNAL', `cannot create volume ${name}`, name);
    } finally {
      const record = this.ledger.get(name);
      if (record?.pending === 'create') delete record.pending;
      this.ledger.tidy(name);
      await this.ledger.save();
    }
    this.log.info('created volume', { volume: name, backend: backend.name, layout: spec.layout, sizeBytes: spec.sizeBytes });
  }

  /**
   * On a shared backend, Remove and Mount of one volume on two hosts must not both go ahead: Remove
   * first creates a removal marker and then looks for live attachments; Mount first publishes its
   * attachment and then looks for the marker. Whatever the timing, one of them sees the other.
   */
  async remove(rawName: unknown): Promise<void> {
    const name = validateVolumeName(rawName);
    await this.locks.run(name, async () => {
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
      if (presence) await this.removal.mark(presence, backend, name);
      const policy = found.meta.spec.onRemove;
      const record: VolumeRecord = found.record ?? { backend: backend.name, layout: found.meta.spec.layout, fs: found.meta.spec.fs, mounts: {}, attached: false };
      this.ledger.set(name, record);
      try {
        if (record.attached) await this.detach(name, record, backend);
        record.pending = 'remove';
        record.onRemove = policy;
        await this.ledger.save();
        await this.removal.applyPolicy(backend, name, policy);
      } catch (err) {
        delete record.pending;
        delete record.onRemove;
        this.ledger.tidy(name);
        await this.ledger.save();
        if (presence) await this.removal.unmark(backend, name);
        throw err;
      }
      this.ledger.drop(name);
      this.usageCache.delete(name);
      this.catalog.forget(name);
      await this.ledger.save();
      this.log.info('removed volume', { volume: name, backend: backend.name, onRemove: policy });
    });
  }

  async mount(rawName: unknown, id: unknown): Promise<string> {
    const name = validateVolumeName(rawName);
    const mountId = this.mountId(name, id);
    return this.locks.run(name, async () => {
      const found = await this.catalog.lookup(name);
      if (!found) throw this.catalog.notFound(name);
      let record = found.record;
      if (!found.meta) {
        // The backend cannot be read: only a mount this host already has, and that still works, can be counted.
        if (!(record && record.attached && (await this.isLive(name, record)))) throw this.catalog.unavailable(found);
      } else if (!record) {
        record = { backend: found.backend, layout: found.meta.spec.layout, fs: found.meta.spec.fs, mounts: {}, attached: false };
        this.ledger.set(name, record);
      }
      const r = record as VolumeRecord;
      try {
        if (!(r.attached && (await this.isLive(name, r)))) await this.attach(name, r, found.meta as VolumeMeta);
      } catch (err) {
        this.ledger.tidy(name);
        throw err;
      }
      r.mounts[mountId] = (r.mounts[mountId] ?? 0) + 1;
      await this.ledger.save();
      return this.mountpoint(name);
    });
  }

  private mountId(name: string, id: unknown): string {
    if (typeof id !== 'string' || !/^[A-Za-z0-9_.-]{1,128}$/.test(id)) {
      throw new NetvolError('INVALID_OPTION', `volume ${name}: mount ID is missing or malformed`, { volume: name });
    }
    return id;
  }

  /** Whether the volume's mountpoint is mounted and its backend attachment works. */
  private async isLive(name: string, record: VolumeRecord): Promise<boolean> {
    if (!(await this.mounts.isMounted(this.mountpoint(name)))) return false;
    const backend = this.pool.find(record.backend);
    if (!backend || !backend.capabilities.networked) return true;
    return (await this.pool.bounded(backend.health(name), `checking volume ${name}`, name).catch(() => 'dead')) === 'attached';
  }

  /**
   * The attach stack: on a shared backend, publish this host's attachment (an image volume takes its
   * single-writer lease), check no other host is removing it and that it still exists; then the
   * backend's attachment; then the loop or bind mount.
   */
  private async attach(name: string, record: VolumeRecord, known: VolumeMeta | undefined): Promise<void> {
    const backend = await this.pool.open(record.backend, name);
    const mp = this.mountpoint(name);
    if (await this.mounts.isMounted(mp)) await this.unmountMountpoint(name, record, true);
    await fs.mkdir(mp, { recursive: true, mode: 0o755 });
    const presence = this.pool.presenceOf(backend);
    let meta = known;
    if (presence) {
      if (record.layout === 'image') {
        await presence.claimExclusive(name, this.pool.judgeDeadline(backend, 90_000));
      } else {
        presence.setHold(name, 'shared');
        await this.pool.bounded(presence.publish(), `recording the attachment of volume ${name}`, name).catch(async (err) => {
          await presence.release(name);
          throw err;
        });
      }
      try {
        await this.removal.checkNotRemoving(presence, backend, name);
        meta = await this.pool.bounded(readMeta(backend, name), `looking up volume ${name}`, name);
        if (!meta || meta.retained) throw this.catalog.notFound(name);
      } catch (err) {
        await presence.release(name);
        throw err;
      }
    }
    let folder: string;
    try {
      folder = await this.pool.bounded(backend.attach(name), `attaching volume ${name} from backend ${backend.name}`, name);
    } catch (err) {
      if (presence) await presence.release(name);
      throw err;
    }
    record.attached = true;
    await this.ledger.save();
    try {
      if (record.layout === 'image') {
        await this.mounts.mountImage(path.join(folder, IMAGE_FILE), mp, record.fs ?? 'ext4');
      } else {
        await this.mounts.bind(path.join(folder, DATA_DIR), mp);
      }
    } catch (err) {
      await this.pool.bounded(backend.detach(name), `detaching volume ${name}`, name).catch(() => undefined);
      if (presence) await presence.release(name);
      record.attached = false;
      await this.ledger.save();
      throw wrapError(err, 'COMMAND_FAILED', `cannot mount volume ${name}`, name);
    }
    delete record.fenced;
    if (meta) this.catalog.remember(name, meta);
    this.log.info('attached volume', { volume: name, backend: backend.name, mountpoint: mp });
  }

  private async unmountMountpoint(name: string, record: VolumeRecord, lazy = false): Promise<void> {
    const mp = this.mountpoint(name);
    if (record.layout === 'image') {
      // The image file only grows on the backend, so remember what the filesystem inside says.
      const u = await this.mounts.usage(mp).catch(() => undefined);
      if (u && (await this.mounts.isMounted(mp))) record.lastUsage = { usedBytes: u.usedBytes, availableBytes: u.availableBytes };
      await this.mounts.unmountImage(mp);
    } else if (await this.mounts.isMounted(mp)) await this.mounts.unmount(mp, { lazy });
  }

  private async detach(name: string, record: VolumeRecord, backend: Backend): Promise<void> {
    try {
      await this.unmountMountpoint(name, record);
      await fs.rmdir(this.mountpoint(name)).catch(() => undefined);
      await this.pool.bounded(backend.detach(name), `detaching volume ${name}`, name);
    } catch (err) {
      throw wrapError(err, 'COMMAND_FAILED', `cannot unmount volume ${name} (is a process outside Docker still using it?)`, name);
    }
    record.attached = false;
    this.catalog.forget(name);
    const presence = this.pool.presenceOf(backend);
    if (presence) await presence.release(name);
    this.log.info('detached volume', { volume: name });
  }

  /**
   * Fencing, called when this host could not renew its heartbeat in time while holding image
   * volumes: stop their data path now (the backend kills its helper and resets its connections, then
   * the image is unmounted lazily and its loop device freed), without waiting for any lock. Their
   * containers get I/O errors; the next Mount attaches again once the volume is free.
   */
  private async fence(backend: Backend, volumes: string[], why: string): Promise<void> {
    await Promise.all(
      volumes.map(async (name) => {
        const record = this.ledger.get(name);
        if (!record || !record.attached) return;
        await stopDataPath(backend, name, this.mountpoint(name), this.config.timeoutMs, this.log, this.mounts);
        record.attached = false;
        record.fenced = why;
        this.catalog.forget(name);
        this.log.error('fenced volume: its containers now get I/O errors; it attaches again at the next Mount once it is free', { volume: name, backend: backend.name, reason: why });
      }),
    );
    await this.ledger.save();
  }

  async unmount(rawName: unknown, id: unknown): Promise<void> {
    const name = validateVolumeName(rawName);
    const mountId = this.mountId(name, id);
    await this.locks.run(name, async () => {
      const record = this.ledger.get(name);
      if (!record || !record.mounts[mountId]) {
        this.log.warn('unmount of a mount ID netvol does not hold: nothing to do', { volume: name, mountId });
        return;
      }
      record.mounts[mountId] -= 1;
      if (record.mounts[mountId] <= 0) delete record.mounts[mountId];
      try {
        if (mountCount(record.mounts) === 0) {
          delete record.fenced;
          if (record.attached) await this.detach(name, record, await this.pool.open(record.backend, name));
        }
      } finally {
        this.ledger.tidy(name);
        await this.ledger.save();
      }
    });
  }

  async path(rawName: unknown): Promise<string> {
    const name = validateVolumeName(rawName);
    const found = await this.catalog.lookup(name);
    if (!found) throw this.catalog.notFound(name);
    return found.record?.attached ? this.mountpoint(name) : '';
  }

  async get(rawName: unknown): Promise<VolumeInfo> {
    const name = validateVolumeName(rawName);
    const found = await this.catalog.lookup(name);
    if (!found) throw this.catalog.notFound(name);
    return this.info(found);
  }

  /**
   * A volume's description. Usage and health cost backend calls, so only Get measures them; List
   * (which `docker volume ls` never shows the Status of) describes from what it read.
   */
  private async info(found: Found, measure = true): Promise<VolumeInfo> {
    const { name, record, meta } = found;
    const attached = record?.attached ?? false;
    const extra: Record<string, unknown> = {};
    let usage: Usage | undefined;
    if (measure && meta) {
      try {
        usage = await this.usage(name, found.backend, meta, record);
      } catch (err) {
        this.log.warn('cannot measure volume usage', { volume: name, error: (err as Error).message });
      }
      const backend = this.pool.find(found.backend);
      if (backend?.statusFields) Object.assign(extra, await backend.statusFields(name).catch(() => ({})));
    }
    if (measure && record?.attached) extra.healthy = await this.isLive(name, record).catch(() => false);
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
    return { name, mountpoint: attached ? this.mountpoint(name) : '', createdAt: meta?.createdAt, status };
  }

  /** Reads the other hosts' heartbeat files now, so Get shows the cluster as it is (List uses the last beat's reading). */
  private async refreshPeers(backendName: string, volume: string): Promise<void> {
    const backend = this.pool.find(backendName);
    const presence = backend && this.pool.presenceOf(backend);
    if (presence) await presence.readAll().catch((err: Error) => this.log.debug('cannot read the other hosts\' heartbeats', { volume, error: err.message }));
  }

  /** Which hosts have the volume attached and who holds an image volume's lease, from the last heartbeats read. */
  private clusterStatus(found: Found): Record<string, unknown> {
    const backend = this.pool.find(found.backend);
    const presence = backend && this.pool.presenceOf(backend);
    if (!presence) return {};
    const others = presence.clusterView(found.name).filter((h) => h.alive !== false);
    const attachedOn = [...(found.record?.attached ? [this.config.hostId] : []), ...others.filter((h) => h.hold !== 'claim').map((h) => h.host)];
    const out: Record<string, unknown> = { attachedOn };
    const layout = found.meta?.spec.layout ?? found.record?.layout;
    if (layout === 'image') {
      const holder = presence.holdOf(found.name) === 'exclusive' ? this.config.hostId : others.find((h) => h.hold === 'exclusive')?.host;
      out.leaseHolder = holder ?? null;
    }
    if (others.length > 0) out.heartbeatAgeSeconds = Object.fromEntries(others.map((h) => [h.host, h.heartbeatAgeSeconds]));
    return out;
  }

  private async usage(name: string, backendName: string, meta: VolumeMeta, record: VolumeRecord | undefined): Promise<Usage> {
    const spec = meta.spec;
    if (spec.layout === 'image' && record?.attached && (await this.mounts.isMounted(this.mountpoint(name)))) {
      const u = await this.mounts.usage(this.mountpoint(name));
      return { sizeBytes: spec.sizeBytes, usedBytes: u.usedBytes, availableBytes: u.availableBytes };
    }
    if (spec.layout === 'image' && record?.lastUsage) return { sizeBytes: spec.sizeBytes, ...record.lastUsage };
    const cached = this.usageCache.get(name);
    if (cached && Date.now() - cached.at < USAGE_TTL_MS) return cached.usage;
    const backend = await this.pool.open(backendName, name);
    const u = await this.pool.bounded(backend.usage(name), `measuring volume ${name}`, name);
    const usage: Usage =
      spec.layout === 'image'
        ? { sizeBytes: spec.sizeBytes, usedBytes: u.usedBytes, availableBytes: Math.max(0, (spec.sizeBytes ?? 0) - u.usedBytes) }
        : u;
    this.usageCache.set(name, { at: Date.now(), usage });
    return usage;
  }

  /** Every volume on every backend (see Catalog.listAll), described from what was read. */
  async list(): Promise<VolumeInfo[]> {
    const found = await this.catalog.listAll();
    return Promise.all(found.map((f) => this.info(f, false)));
  }

  /**
   * At start, before the socket listens: finish or undo operations a crash interrupted, and make
   * the records agree with the kernel's mount table for volumes nobody holds.
   */
  async restore(): Promise<void> {
    for (const [name, record] of Object.entries(this.ledger.records)) {
      try {
        await this.locks.run(name, () => this.restoreOne(name, record));
      } catch (err) {
        this.log.error('cannot restore volume; will retry on its next use', { volume: name, error: (err as Error).message });
      }
    }
    await this.ledger.save();
  }

  private async restoreOne(name: string, record: VolumeRecord): Promise<void> {
    if (record.pending === 'create') {
      const backend = await this.pool.open(record.backend, name);
      const meta = await this.pool.bounded(readMeta(backend, name), `checking half-created volume ${name}`, name);
      if (!meta) {
        await this.pool.bounded(backend.removeFolder(name), `removing half-created volume ${name}`, name);
        this.log.warn('removed a volume whose creation was interrupted', { volume: name });
      }
      delete record.pending;
      this.ledger.tidy(name);
      return;
    }
    if (record.pending === 'remove') {
      if (mountCount(record.mounts) === 0) {
        const policy = record.onRemove ?? 'delete';
        this.log.warn('finishing a remove that was interrupted', { volume: name, onRemove: policy });
        await this.removal.applyPolicy(await this.pool.open(record.backend, name), name, policy);
        this.ledger.drop(name);
        return;
      }
      delete record.pending;
      delete record.onRemove;
    }
    const mounted = await this.mounts.isMounted(this.mountpoint(name));
    if (mountCount(record.mounts) === 0 && (mounted || record.attached)) {
      await this.detach(name, record, await this.pool.open(record.backend, name));
    } else if (mountCount(record.mounts) > 0 && !mounted) {
      record.attached = false;
      // Not mounted after all (the host rebooted): drop the hold seeded from the ledger; the remount claims it afresh.
      const backend = await this.pool.open(record.backend, name);
      this.pool.presenceOf(backend)?.setHold(name, undefined);
    } else if (mountCount(record.mounts) > 0) {
      record.attached = true;
      await this.retakeHold(name, record);
    }
    this.ledger.tidy(name);
  }

  /**
   * After a restart, a volume still mounted here is published again; an image volume takes its lease
   * again, and if another live host holds it meanwhile, this host fences its own mount.
   */
  private async retakeHold(name: string, record: VolumeRecord): Promise<void> {
    const backend = await this.pool.open(record.backend, name);
    const presence = this.pool.presenceOf(backend);
    if (!presence) return;
    if (record.layout !== 'image') {
      presence.setHold(name, 'shared');
      await this.pool.bounded(presence.publish(), `recording the attachment of volume ${name}`, name);
      return;
    }
    try {
      await presence.confirmExclusive(name, this.pool.judgeDeadline(backend, 60_000));
    } catch (err) {
      if (!isNetvolError(err, 'LEASE_HELD')) throw err;
      await this.fence(backend, [name], `after a restart, another host holds the volume's lease (${err.message})`);
    }
  }

  /**
   * After the socket listens: re-attach every volume that has live mount IDs but lost its mount
   * (or whose network attachment died), each with its own lock and timeout.
   */
  async remountAll(): Promise<void> {
    await Promise.all(
      Object.entries(this.ledger.records).map(async ([name, record]) => {
        if (mountCount(record.mounts) === 0 || record.fenced) return;
        try {
          await this.locks.run(name, async () => {
            if (record.attached && (await this.isLive(name, record))) return;
            this.log.warn('re-attaching a volume that has live mounts but lost its mount', { volume: name });
            await this.attach(name, record, undefined);
            await this.ledger.save();
          });
        } catch (err) {
          this.log.error('cannot re-attach volume; the next Mount will retry', { volume: name, error: (err as Error).message });
        }
      }),
    );
  }

  /**
   * Stops the heartbeats (mounts stay) and saves the ledger. Returns, per shared backend where this
   * host still has volumes attached, what a caretaker needs to keep their attachments alive and
   * fenced while the daemon is away.
   */
  async close(): Promise<Handover[]> {
    const handovers = this.pool.stopHeartbeats();
    await this.ledger.save();
    await this.pool.closeBackends();
    return handovers;
  }
}

/** Options the backend cannot honour are refused at Create, before anything is touched, naming the backend. */
function refuseUnsupported(name: string, spec: VolumeSpec, backend: Backend): void {
  if (spec.layout === 'image' && backend.capabilities.imageVolumes === false) {
    throw new NetvolError(
      'INVALID_OPTION',
      `volume ${name}: backend ${backend.name} (${backend.type}) cannot hold image volumes, so the size option is not available on it: create the volume without size, or on a backend that has image volumes`,
      { volume: name },
    );
  }
}
