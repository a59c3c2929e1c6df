import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Backend } from '../backends';
import type { Config } from '../config';
import { isNetvolError, NetvolError, wrapError } from '../errors';
import type { Logger } from '../log';
import { createImage, mountImage, unmountImage } from '../quota';
import type { StateStore } from '../state';
import { bindMount, findMount, fsUsage, unmount, withTimeout } from '../system';
import { readMeta, VolumeMeta, writeMeta, listMetas } from './catalog';
import { LeaseKeeper } from './lease';
import { VolumeLocks } from './locks';
import { archiveName, validateVolumeName } from './names';
import { formatSize, parseVolumeOptions, specDifferences, VolumeSpec } from './options';
import { buildStatus, Usage } from './status';

/** What this host remembers of a volume, persisted in the state file. */
export interface VolumeRecord {
  backend: string;
  meta: VolumeMeta;
  /** Mount ID → number of Mount calls not yet matched by an Unmount. */
  mounts: Record<string, number>;
  /** The volume is mounted at its mountpoint on this host. */
  attached: boolean;
  /** An operation that had started and not finished when this was saved. */
  pending?: 'create' | 'remove';
  /** Image volumes: used/available bytes inside the filesystem, measured when it was last unmounted here. */
  lastUsage?: { usedBytes: number; availableBytes: number };
}

export interface HostState {
  volumes: Record<string, VolumeRecord>;
}

export const STATE_VERSION = 1;
export const emptyState = (): HostState => ({ volumes: {} });

export interface VolumeInfo {
  name: string;
  mountpoint: string;
  createdAt: string;
  status: Record<string, unknown>;
}

const USAGE_TTL_MS = 2000;

function total(mounts: Record<string, number>): number {
  return Object.values(mounts).reduce((a, b) => a + b, 0);
}

/**
 * The VolumeDriver: Docker's volume verbs over backends, quotas and the state store. Speaks in
 * volumes and mount IDs; never in HTTP.
 */
export class VolumeDriver {
  private readonly locks = new VolumeLocks();
  private readonly opened = new Map<string, Promise<void>>();
  private readonly usageCache = new Map<string, { at: number; usage: Usage }>();
  private readonly leases: LeaseKeeper;

  constructor(
    private readonly config: Config,
    private readonly backends: ReadonlyMap<string, Backend>,
    private readonly store: StateStore<HostState>,
    private readonly log: Logger,
  ) {
    this.leases = new LeaseKeeper(config.hostId, log);
  }

  /** Image volumes on networked backends have one writer at a time. */
  private needsLease(backend: Backend, record: VolumeRecord): boolean {
    return backend.capabilities.networked && record.meta.spec.layout === 'image';
  }

  get scope(): 'local' | 'global' {
    if (this.config.scope !== 'auto') return this.config.scope;
    return [...this.backends.values()].some((b) => b.capabilities.networked) ? 'global' : 'local';
  }

  mountpoint(name: string): string {
    return path.join(this.config.mountRoot, name);
  }

  private get volumes(): Record<string, VolumeRecord> {
    return this.store.data.volumes;
  }

  /** A backend by name, opened on first use (and again after a failed open). */
  private async backend(name: string, volume?: string): Promise<Backend> {
    const backend = this.backends.get(name);
    if (!backend) {
      const known = [...this.backends.keys()].join(', ');
      throw new NetvolError('INVALID_OPTION', `${volume ? `volume ${volume}: ` : ''}unknown backend "${name}": configured backends are ${known}`, { volume });
    }
    let opening = this.opened.get(name);
    if (!opening) {
      opening = this.call(backend.open(), `opening backend ${name}`);
      this.opened.set(name, opening);
      opening.catch(() => this.opened.delete(name));
    }
    await opening;
    return backend;
  }

  /** Bounds any backend call by the configured timeout. */
  private call<T>(work: Promise<T>, what: string, volume?: string): Promise<T> {
    return withTimeout(work, this.config.timeoutMs, what, volume);
  }

  /** Finds a live volume: the state first, then every backend. Caches what it finds. */
  private async find(name: string): Promise<VolumeRecord | undefined> {
    const known = this.volumes[name];
    if (known && !known.pending) return known;
    if (known?.pending) return undefined;
    for (const backendName of this.backends.keys()) {
      let meta: VolumeMeta | undefined;
      try {
        const backend = await this.backend(backendName);
        meta = await this.call(readMeta(backend, name), `looking up volume ${name} on backend ${backendName}`, name);
      } catch (err) {
        this.log.warn('backend unavailable while looking up a volume', { volume: name, backend: backendName, error: (err as Error).message });
        continue;
      }
      if (meta && !meta.retained) {
        const record: VolumeRecord = { backend: backendName, meta, mounts: {}, attached: false };
        this.volumes[name] = record;
        await this.store.save();
        return record;
      }
    }
    return undefined;
  }

  private notFound(name: string): NetvolError {
    return new NetvolError('NOT_FOUND', `volume ${name} not found on any netvol backend (${[...this.backends.keys()].join(', ')})`, { volume: name });
  }

  async create(rawName: unknown, opts: unknown): Promise<void> {
    const name = validateVolumeName(rawName);
    const spec = parseVolumeOptions(name, opts, this.config.defaultBackend);
    const backend = await this.backend(spec.backend, name);
    await this.locks.run(name, async () => {
      const existing = await this.find(name);
      if (existing) return this.checkSameOptions(name, existing.meta.spec, spec);
      const onBackend = await this.call(readMeta(backend, name), `looking up volume ${name}`, name);
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
    await this.call(writeMeta(backend, adopted), `adopting volume ${meta.name}`, meta.name);
    this.volumes[meta.name] = { backend: backend.name, meta: adopted, mounts: {}, attached: false };
    await this.store.save();
    this.log.info('adopted retained volume', { volume: meta.name, backend: backend.name });
  }

  private async createNew(backend: Backend, name: string, spec: VolumeSpec): Promise<void> {
    if (spec.layout === 'image' && !this.backendConfig(backend.name).allowOvercommit) {
      const free = await this.call(backend.freeBytes(), `checking free space on backend ${backend.name}`, name);
      if ((spec.sizeBytes ?? 0) > free) {
        throw new NetvolError(
          'NO_SPACE',
          `volume ${name}: backend ${backend.name} has ${formatSize(free)} free, less than the requested size ${formatSize(spec.sizeBytes ?? 0)}: choose a smaller size, free space, or set allowOvercommit: true on the backend`,
          { volume: name },
        );
      }
    }
    const meta: VolumeMeta = { version: 1, name, createdAt: new Date().toISOString(), createdBy: this.config.hostId, spec };
    this.volumes[name] = { backend: backend.name, meta, mounts: {}, attached: false, pending: 'create' };
    await this.store.save();
    let made = false;
    try {
      made = await this.call(backend.makeFolder(name, spec.layout === 'directory'), `creating the folder of volume ${name}`, name);
      if (!made) {
        throw new NetvolError(
          'OPTIONS_CONFLICT',
          `volume ${name}: backend ${backend.name} already has a folder with this name that is not a netvol volume: move it away or choose another name`,
          { volume: name },
        );
      }
      const attrs = { uid: spec.uid, gid: spec.gid, mode: spec.mode };
      if (spec.layout === 'directory') {
        if (spec.uid !== undefined || spec.gid !== undefined || spec.mode !== undefined) {
          await this.call(backend.setDataAttributes(name, attrs), `setting owner and mode of volume ${name}`, name);
        }
      } else {
        const folder = await this.call(backend.attach(name), `attaching volume ${name}`, name);
        try {
          await createImage(path.join(folder, 'data.img'), spec.sizeBytes as number, spec.fs ?? 'ext4', attrs);
        } finally {
          await this.call(backend.detach(name), `detaching volume ${name}`, name);
        }
      }
      await this.call(writeMeta(backend, meta), `writing the metadata of volume ${name}`, name);
    } catch (err) {
      if (made) await backend.removeFolder(name).catch((e) => this.log.error('cannot clean up half-created volume', { volume: name, error: (e as Error).message }));
      delete this.volumes[name];
      await this.store.save();
      throw isNetvolError(err) && err.message.includes(name) ? err : wrapError(err, 'INTERNAL', `cannot create volume ${name}`, name);
    }
    delete this.volumes[name].pending;
    await this.store.save();
    this.log.info('created volume', { volume: name, backend: backend.name, layout: spec.layout, sizeBytes: spec.sizeBytes });
  }

  private backendConfig(name: string) {
    return this.config.backends.find((b) => b.name === name) as Config['backends'][number];
  }

  async remove(rawName: unknown): Promise<void> {
    const name = validateVolumeName(rawName);
    await this.locks.run(name, async () => {
      const record = await this.find(name);
      if (!record) {
        this.log.warn('remove of a volume netvol does not know: nothing to do', { volume: name });
        return;
      }
      const count = total(record.mounts);
      if (count > 0) {
        throw new NetvolError(
          'IN_USE',
          `volume ${name} is in use: ${count} mount${count === 1 ? '' : 's'} on this host (${Object.keys(record.mounts).length} container mount ID${Object.keys(record.mounts).length === 1 ? '' : 's'}); stop the containers using it first`,
          { volume: name },
        );
      }
      const backend = await this.backend(record.backend, name);
      if (record.attached) await this.detach(name, record, backend);
      const policy = record.meta.spec.onRemove;
      record.pending = 'remove';
      await this.store.save();
      try {
        await this.applyRemovePolicy(backend, name, record);
      } catch (err) {
        delete record.pending;
        await this.store.save();
        throw err;
      }
      delete this.volumes[name];
      this.usageCache.delete(name);
      await this.store.save();
      this.log.info('removed volume', { volume: name, onRemove: policy });
    });
  }

  /** What `docker volume rm` does to the data, by the volume's onRemove; safe to repeat after a crash. */
  private async applyRemovePolicy(backend: Backend, name: string, record: VolumeRecord): Promise<void> {
    const policy = record.meta.spec.onRemove;
    if (policy === 'delete') {
      await this.call(backend.removeFolder(name), `removing volume ${name}`, name);
    } else if (policy === 'retain') {
      await this.call(writeMeta(backend, { ...record.meta, retained: true }), `retaining volume ${name}`, name);
    } else if (await this.call(readMeta(backend, name), `looking up volume ${name}`, name)) {
      const to = archiveName(name, new Date());
      await this.call(backend.renameFolder(name, to), `archiving volume ${name}`, name);
      this.log.info('archived volume', { volume: name, archive: to });
    }
  }

  async mount(rawName: unknown, id: unknown): Promise<string> {
    const name = validateVolumeName(rawName);
    const mountId = this.mountId(name, id);
    return this.locks.run(name, async () => {
      const record = await this.find(name);
      if (!record) throw this.notFound(name);
      const mp = this.mountpoint(name);
      if (!(record.attached && (await this.isLive(name, record)))) await this.attach(name, record);
      record.mounts[mountId] = (record.mounts[mountId] ?? 0) + 1;
      await this.store.save();
      return mp;
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
    if (!(await findMount(this.mountpoint(name)))) return false;
    const backend = this.backends.get(record.backend);
    if (!backend || !backend.capabilities.networked) return true;
    return (await this.call(backend.health(name), `checking volume ${name}`, name).catch(() => 'dead')) === 'attached';
  }

  private async attach(name: string, record: VolumeRecord): Promise<void> {
    const backend = await this.backend(record.backend, name);
    const mp = this.mountpoint(name);
    if (await findMount(mp)) await this.unmountMountpoint(name, record, true);
    await fs.mkdir(mp, { recursive: true, mode: 0o755 });
    if (this.needsLease(backend, record)) {
      await this.call(this.leases.acquire(backend, name, this.backendConfig(backend.name).leaseSeconds), `taking the owner lease of volume ${name}`, name);
    }
    const folder = await this.call(backend.attach(name), `attaching volume ${name} from backend ${backend.name}`, name);
    record.attached = true;
    await this.store.save();
    try {
      if (record.meta.spec.layout === 'image') {
        await mountImage(path.join(folder, 'data.img'), mp, record.meta.spec.fs ?? 'ext4');
      } else {
        await bindMount(path.join(folder, 'data'), mp);
      }
    } catch (err) {
      await this.call(backend.detach(name), `detaching volume ${name}`, name).catch(() => undefined);
      if (this.needsLease(backend, record)) await this.leases.release(backend, name).catch(() => undefined);
      record.attached = false;
      await this.store.save();
      throw wrapError(err, 'COMMAND_FAILED', `cannot mount volume ${name}`, name);
    }
    this.log.info('attached volume', { volume: name, backend: backend.name, mountpoint: mp });
  }

  private async unmountMountpoint(name: string, record: VolumeRecord, lazy = false): Promise<void> {
    const mp = this.mountpoint(name);
    if (record.meta.spec.layout === 'image') {
      // The image file only grows on the backend, so remember what the filesystem inside says.
      const u = await fsUsage(mp).catch(() => undefined);
      if (u && (await findMount(mp))) record.lastUsage = { usedBytes: u.usedBytes, availableBytes: u.availableBytes };
      await unmountImage(mp);
    }
    else if (await findMount(mp)) await unmount(mp, { lazy });
  }

  private async detach(name: string, record: VolumeRecord, backend: Backend): Promise<void> {
    try {
      await this.unmountMountpoint(name, record);
      await fs.rmdir(this.mountpoint(name)).catch(() => undefined);
      await this.call(backend.detach(name), `detaching volume ${name}`, name);
    } catch (err) {
      throw wrapError(err, 'COMMAND_FAILED', `cannot unmount volume ${name} (is a process outside Docker still using it?)`, name);
    }
    record.attached = false;
    if (this.needsLease(backend, record)) {
      await this.call(this.leases.release(backend, name), `releasing the owner lease of volume ${name}`, name).catch((err: Error) =>
        this.log.warn('cannot remove the owner record; it expires by itself', { volume: name, error: err.message }),
      );
    }
    this.log.info('detached volume', { volume: name });
  }

  async unmount(rawName: unknown, id: unknown): Promise<void> {
    const name = validateVolumeName(rawName);
    const mountId = this.mountId(name, id);
    await this.locks.run(name, async () => {
      const record = this.volumes[name];
      if (!record || !record.mounts[mountId]) {
        this.log.warn('unmount of a mount ID netvol does not hold: nothing to do', { volume: name, mountId });
        return;
      }
      record.mounts[mountId] -= 1;
      if (record.mounts[mountId] <= 0) delete record.mounts[mountId];
      if (total(record.mounts) === 0 && record.attached) {
        try {
          await this.detach(name, record, await this.backend(record.backend, name));
        } finally {
          await this.store.save();
        }
      } else {
        await this.store.save();
      }
    });
  }

  async path(rawName: unknown): Promise<string> {
    const name = validateVolumeName(rawName);
    const record = await this.find(name);
    if (!record) throw this.notFound(name);
    return record.attached ? this.mountpoint(name) : '';
  }

  async get(rawName: unknown): Promise<VolumeInfo> {
    const name = validateVolumeName(rawName);
    const record = await this.find(name);
    if (!record) throw this.notFound(name);
    return this.info(name, record);
  }

  /**
   * A volume's description. Usage and health cost backend calls, so only Get measures them; List
   * (which `docker volume ls` never shows the Status of) describes from memory.
   */
  private async info(name: string, record: VolumeRecord, measure = true): Promise<VolumeInfo> {
    let usage: Usage | undefined;
    let healthy: boolean | undefined;
    if (measure) {
      try {
        usage = await this.usage(name, record);
      } catch (err) {
        this.log.warn('cannot measure volume usage', { volume: name, error: (err as Error).message });
      }
      if (record.attached) healthy = await this.isLive(name, record).catch(() => false);
    }
    const backend = this.backends.get(record.backend);
    const extra: Record<string, unknown> = measure && backend?.statusFields ? await backend.statusFields(name).catch(() => ({})) : {};
    if (healthy !== undefined) extra.healthy = healthy;
    return {
      name,
      mountpoint: record.attached ? this.mountpoint(name) : '',
      createdAt: record.meta.createdAt,
      status: buildStatus(record.meta, usage, record.mounts, extra),
    };
  }

  private async usage(name: string, record: VolumeRecord): Promise<Usage> {
    const spec = record.meta.spec;
    if (spec.layout === 'image' && record.attached && (await findMount(this.mountpoint(name)))) {
      const u = await fsUsage(this.mountpoint(name));
      return { sizeBytes: spec.sizeBytes, usedBytes: u.usedBytes, availableBytes: u.availableBytes };
    }
    if (spec.layout === 'image' && record.lastUsage) return { sizeBytes: spec.sizeBytes, ...record.lastUsage };
    const cached = this.usageCache.get(name);
    if (cached && Date.now() - cached.at < USAGE_TTL_MS) return cached.usage;
    const backend = await this.backend(record.backend, name);
    const u = await this.call(backend.usage(name), `measuring volume ${name}`, name);
    const usage: Usage =
      spec.layout === 'image'
        ? { sizeBytes: spec.sizeBytes, usedBytes: u.usedBytes, availableBytes: Math.max(0, (spec.sizeBytes ?? 0) - u.usedBytes) }
        : u;
    this.usageCache.set(name, { at: Date.now(), usage });
    return usage;
  }

  /**
   * Every volume on every reachable backend. A backend that cannot be listed contributes the volumes
   * this host remembers on it, so a passing outage never makes Docker forget volumes.
   */
  async list(): Promise<VolumeInfo[]> {
    const found = new Map<string, VolumeRecord>();
    await Promise.all(
      [...this.backends.keys()].map(async (backendName) => {
        try {
          const backend = await this.backend(backendName);
          for (const meta of await this.call(listMetas(backend), `listing backend ${backendName}`)) {
            if (found.has(meta.name)) continue;
            const known = this.volumes[meta.name];
            found.set(meta.name, known && known.backend === backendName ? known : { backend: backendName, meta, mounts: {}, attached: false });
          }
        } catch (err) {
          this.log.warn('cannot list backend; listing the volumes remembered on it', { backend: backendName, error: (err as Error).message });
          for (const [name, record] of Object.entries(this.volumes)) if (record.backend === backendName && !record.pending) found.set(name, record);
        }
      }),
    );
    const names = [...found.keys()].sort();
    return Promise.all(names.map((name) => this.info(name, found.get(name) as VolumeRecord, false)));
  }

  /**
   * At start, before the socket listens: finish or undo operations a crash interrupted, and make
   * the records agree with the kernel's mount table for volumes nobody holds.
   */
  async restore(): Promise<void> {
    for (const [name, record] of Object.entries(this.volumes)) {
      try {
        await this.locks.run(name, () => this.restoreOne(name, record));
      } catch (err) {
        this.log.error('cannot restore volume; will retry on its next use', { volume: name, error: (err as Error).message });
      }
    }
    await this.store.save();
  }

  private async restoreOne(name: string, record: VolumeRecord): Promise<void> {
    if (record.pending === 'create') {
      const backend = await this.backend(record.backend, name);
      const meta = await this.call(readMeta(backend, name), `checking half-created volume ${name}`, name);
      if (meta) {
        delete record.pending;
      } else {
        await this.call(backend.removeFolder(name), `removing half-created volume ${name}`, name);
        delete this.volumes[name];
        this.log.warn('removed a volume whose creation was interrupted', { volume: name });
      }
      return;
    }
    if (record.pending === 'remove') {
      delete record.pending;
      if (total(record.mounts) === 0) {
        this.log.warn('finishing a remove that was interrupted', { volume: name, onRemove: record.meta.spec.onRemove });
        await this.applyRemovePolicy(await this.backend(record.backend, name), name, record);
        delete this.volumes[name];
      }
      return;
    }
    const mounted = (await findMount(this.mountpoint(name))) !== undefined;
    if (total(record.mounts) === 0 && (mounted || record.attached)) {
      await this.detach(name, record, await this.backend(record.backend, name));
    } else if (total(record.mounts) > 0 && !mounted) {
      record.attached = false;
    } else if (total(record.mounts) > 0) {
      record.attached = true;
      const backend = await this.backend(record.backend, name);
      if (this.needsLease(backend, record)) await this.leases.acquire(backend, name, this.backendConfig(backend.name).leaseSeconds);
    }
  }

  /**
   * After the socket listens: re-attach every volume that has live mount IDs but lost its mount
   * (or whose network attachment died), each with its own lock and timeout.
   */
  async remountAll(): Promise<void> {
    await Promise.all(
      Object.entries(this.volumes).map(async ([name, record]) => {
        if (total(record.mounts) === 0) return;
        try {
          await this.locks.run(name, async () => {
            if (record.attached && (await this.isLive(name, record))) return;
            this.log.warn('re-attaching a volume that has live mounts but lost its mount', { volume: name });
            await this.attach(name, record);
            await this.store.save();
          });
        } catch (err) {
          this.log.error('cannot re-attach volume; the next Mount will retry', { volume: name, error: (err as Error).message });
        }
      }),
    );
  }

  async close(): Promise<void> {
    this.leases.stopAll();
    await this.store.save();
    await Promise.all([...this.backends.values()].map((b) => b.close().catch(() => undefined)));
  }
}
