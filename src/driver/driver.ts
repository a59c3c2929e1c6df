import { promises as fs } from 'node:fs';
import path from 'node:path';
import { DATA_DIR, IMAGE_FILE, REMOVING_FILE, type Backend } from '../backends';
import type { Config } from '../config';
import { isNetvolError, NetvolError, wrapError } from '../errors';
import type { Logger } from '../log';
import type { StateStore } from '../state';
import { withTimeout } from '../system';
import { listMetas, readMeta, VolumeMeta, writeMeta } from './catalog';
import { stopDataPath } from './fencing';
import { HostState, holdsHostFacts, VolumeRecord } from './ledger';
import { VolumeLocks } from './locks';
import { Mounts, realMounts } from './mounts';
import { archiveName, validateVolumeName } from './names';
import { formatSize, OnRemove, parseVolumeOptions, specDifferences, VolumeSpec } from './options';
import { Handover, monotonicClock, Presence } from './presence';
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
/** Marks a volume whose removal another host has started (see remove()). */
export { REMOVING_FILE };

function total(mounts: Record<string, number>): number {
  return Object.values(mounts).reduce((a, b) => a + b, 0);
}

/** A volume as a lookup found it: its backend, its metadata (read from the backend), and this host's record. */
interface Found {
  name: string;
  backend: string;
  /** Undefined only when the backend cannot be read and this host has the volume mounted. */
  meta?: VolumeMeta;
  record?: VolumeRecord;
  /** Why the backend could not be read, when it could not. */
  unreachable?: string;
}

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
  private readonly opened = new Map<string, Promise<void>>();
  private readonly usageCache = new Map<string, { at: number; usage: Usage }>();
  /** Metadata of volumes mounted here, read when they were attached: trusted only while they stay mounted. */
  private readonly metaCache = new Map<string, VolumeMeta>();
  private readonly presences = new Map<string, Presence>();
  /** The leases' clock: this host's monotonic clock, never a wall clock. */
  private readonly clock = monotonicClock;

  constructor(
    private readonly config: Config,
    private readonly backends: ReadonlyMap<string, Backend>,
    private readonly store: StateStore<HostState>,
    private readonly log: Logger,
    /** The mounts this driver makes: the kernel's, unless a test passes a fake. */
    private readonly mounts: Mounts = realMounts,
  ) {}

  get scope(): 'local' | 'global' {
    if (this.config.scope !== 'auto') return this.config.scope;
    return [...this.backends.values()].some((b) => b.capabilities.sharedAcrossHosts) ? 'global' : 'local';
  }

  mountpoint(name: string): string {
    return path.join(this.config.mountRoot, name);
  }

  private get volumes(): Record<string, VolumeRecord> {
    return this.store.data.volumes;
  }

  /** A configured backend by name, not opened; refuses a name the config does not have. */
  private configured(name: string, volume?: string): Backend {
    const backend = this.backends.get(name);
    if (!backend) {
      const known = [...this.backends.keys()].join(', ');
      throw new NetvolError('INVALID_OPTION', `${volume ? `volume ${volume}: ` : ''}unknown backend "${name}": configured backends are ${known}`, { volume });
    }
    return backend;
  }

  /** A backend by name, opened on first use (and again after a failed open). Shared backends start this host's heartbeat. */
  private async backend(name: string, volume?: string): Promise<Backend> {
    const backend = this.configured(name, volume);
    let opening = this.opened.get(name);
    if (!opening) {
      opening = this.call(backend.open(), `opening backend ${name}`).then(() => this.startPresence(backend));
      this.opened.set(name, opening);
      opening.catch(() => this.opened.delete(name));
    }
    await opening;
    return backend;
  }

  private startPresence(backend: Backend): void {
    if (!backend.capabilities.sharedAcrossHosts || this.presences.has(backend.name)) return;
    const presence = new Presence({
      backend,
      hostId: this.config.hostId,
      leaseSeconds: this.backendConfig(backend.name).leaseSeconds,
      timeoutMs: this.config.timeoutMs,
      log: this.log,
      onLost: (volumes, why) => this.fence(backend, volumes, why),
    });
    // Volumes this host had attached before a restart stay claimed from the first beat on: their data
    // path never stopped, so no other host may see them free in between. restore() then checks them.
    for (const [name, r] of Object.entries(this.volumes)) {
      if (r.backend === backend.name && r.attached && total(r.mounts) > 0) presence.setHold(name, r.layout === 'image' ? 'exclusive' : 'shared');
    }
    this.presences.set(backend.name, presence);
    presence.start().catch((err: Error) => this.log.warn('cannot write this host\'s heartbeat yet; retrying', { backend: backend.name, error: err.message }));
  }

  /** This host's presence on a shared backend; undefined for backends only this host uses. */
  private presenceOf(backend: Backend): Presence | undefined {
    return this.presences.get(backend.name);
  }

  /** Bounds any backend call by the configured timeout. */
  private call<T>(work: Promise<T>, what: string, volume?: string): Promise<T> {
    return withTimeout(work, this.config.timeoutMs, what, volume);
  }

  private backendConfig(name: string) {
    return this.config.backends.find((b) => b.name === name) as Config['backends'][number];
  }

  private leaseMs(backend: Backend): number {
    return this.backendConfig(backend.name).leaseSeconds * 1000;
  }

  /** The volume is mounted here for containers, so the metadata read when it was attached still holds. */
  private liveHere(record: VolumeRecord | undefined): boolean {
    return record !== undefined && record.attached && total(record.mounts) > 0;
  }

  /** Drops a record that no longer says anything only this host knows. */
  private tidy(name: string): void {
    const record = this.volumes[name];
    if (record && !holdsHostFacts(record)) delete this.volumes[name];
  }

  /**
   * Finds a live volume. Its metadata comes from the backend unless this host has it mounted; a
   * volume removed elsewhere is therefore not found. When a backend cannot be read: a volume this
   * host has mounted is still described from what this host knows; otherwise the lookup fails
   * (unless `lenient`, used by Create for the backends it does not create on).
   */
  private async lookup(name: string, lenient = false): Promise<Found | undefined> {
    const record = this.volumes[name];
    if (record?.pending) return undefined;
    const cached = this.metaCache.get(name);
    if (record && cached && this.liveHere(record)) return { name, backend: record.backend, meta: cached, record };
    const order = record ? [record.backend, ...[...this.backends.keys()].filter((b) => b !== record.backend)] : [...this.backends.keys()];
    const results = await Promise.allSettled(
      order.map(async (backendName) => {
        const backend = await this.backend(backendName);
        return this.call(readMeta(backend, name), `looking up volume ${name} on backend ${backendName}`, name);
      }),
    );
    for (let i = 0; i < order.length; i++) {
      const r = results[i];
      if (r.status === 'fulfilled' && r.value && !r.value.retained) {
        const mine = record?.backend === order[i] ? record : undefined;
        if (mine && this.liveHere(mine)) this.metaCache.set(name, r.value);
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
      if (total(record.mounts) > 0) this.log.warn('volume was removed from its backend while this host still has it mounted', { volume: name, backend: record.backend });
      else {
        delete this.volumes[name];
        this.metaCache.delete(name);
        await this.store.save();
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

  private notFound(name: string): NetvolError {
    return new NetvolError('NOT_FOUND', `volume ${name} not found on any netvol backend (${[...this.backends.keys()].join(', ')})`, { volume: name });
  }

  private unavailable(found: Found): NetvolError {
    return new NetvolError('BACKEND_UNAVAILABLE', `volume ${found.name}: backend ${found.backend} cannot be read (${found.unreachable ?? 'unknown error'}); try again when it is reachable`, { volume: found.name });
  }

  async create(rawName: unknown, opts: unknown): Promise<void> {
    const name = validateVolumeName(rawName);
    const spec = parseVolumeOptions(name, opts, this.config.defaultBackend);
    refuseUnsupported(name, spec, this.configured(spec.backend, name));
    const backend = await this.backend(spec.backend, name);
    await this.locks.run(name, async () => {
      const existing = await this.lookup(name, true);
      if (existing?.meta) return this.checkSameOptions(name, existing.meta.spec, spec);
      if (existing) throw this.unavailable(existing);
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
    this.log.info('adopted retained volume', { volume: meta.name, backend: backend.name });
  }

  /**
   * Makes a new volume. The folder's mkdir on the backend is the atomic step: of several hosts
   * creating one name at once, one makes it, and the others wait for its volume.json and succeed
   * if the options agree.
   */
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
    this.volumes[name] = { backend: backend.name, layout: spec.layout, fs: spec.fs, mounts: {}, attached: false, pending: 'create' };
    await this.store.save();
    let made = false;
    try {
      const waitUntil = Date.now() + CREATE_WAIT_MS;
      for (;;) {
        made = await this.call(backend.makeFolder(name, spec.layout === 'directory'), `creating the folder of volume ${name}`, name);
        if (made) break;
        const other = await this.call(readMeta(backend, name), `looking up volume ${name}`, name);
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
          await this.call(backend.setDataAttributes(name, attrs), `setting owner and mode of volume ${name}`, name);
        }
      } else {
        const folder = await this.call(backend.attach(name), `attaching volume ${name}`, name);
        try {
          await this.mounts.createImage(path.join(folder, IMAGE_FILE), spec.sizeBytes as number, spec.fs ?? 'ext4', attrs);
        } finally {
          await this.call(backend.detach(name), `detaching volume ${name}`, name);
        }
      }
      await this.call(writeMeta(backend, meta), `writing the metadata of volume ${name}`, name);
    } catch (err) {
      if (made) await backend.removeFolder(name).catch((e) => this.log.error('cannot clean up half-created volume', { volume: name, error: (e as Error).message }));
      throw isNetvolError(err) && err.message.includes(name) ? err : wrapError(err, 'INTERNAL', `cannot create volume ${name}`, name);
    } finally {
      const record = this.volumes[name];
      if (record?.pending === 'create') delete record.pending;
      this.tidy(name);
      await this.store.save();
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
      const found = await this.lookup(name);
      if (!found) {
        this.log.info('remove of a volume netvol does not know: nothing to do', { volume: name });
        return;
      }
      if (!found.meta) throw this.unavailable(found);
      const count = total(found.record?.mounts ?? {});
      if (found.record && count > 0) {
        const ids = Object.keys(found.record.mounts).length;
        throw new NetvolError(
          'IN_USE',
          `volume ${name} is in use: ${count} mount${count === 1 ? '' : 's'} on this host (${ids} container mount ID${ids === 1 ? '' : 's'}); stop the containers using it first`,
          { volume: name },
        );
      }
      const backend = await this.backend(found.backend, name);
      const presence = this.presenceOf(backend);
      if (presence) await this.markRemoving(presence, backend, name);
      const policy = found.meta.spec.onRemove;
      const record: VolumeRecord = found.record ?? { backend: backend.name, layout: found.meta.spec.layout, fs: found.meta.spec.fs, mounts: {}, attached: false };
      this.volumes[name] = record;
      try {
        if (record.attached) await this.detach(name, record, backend);
        record.pending = 'remove';
        record.onRemove = policy;
        await this.store.save();
        await this.applyRemovePolicy(backend, name, policy);
      } catch (err) {
        delete record.pending;
        delete record.onRemove;
        this.tidy(name);
        await this.store.save();
        if (presence) await this.backendQuiet(backend.removeFile(name, REMOVING_FILE), name);
        throw err;
      }
      delete this.volumes[name];
      this.usageCache.delete(name);
      this.metaCache.delete(name);
      await this.store.save();
      this.log.info('removed volume', { volume: name, backend: backend.name, onRemove: policy });
    });
  }

  /** Best effort: a failure is logged, never thrown. */
  private async backendQuiet(work: Promise<unknown>, volume: string): Promise<void> {
    await this.call(work, `tidying volume ${volume}`, volume).catch((err: Error) => this.log.warn('cannot tidy up on the backend', { volume, error: err.message }));
  }

  /** How long a verb may wait to learn whether another host is alive: a lease and a little, within dockerd's limits. */
  private judgeDeadline(backend: Backend, capMs: number): number {
    return this.clock.now() + Math.min(this.leaseMs(backend) + 5000, capMs);
  }

  /** Remove's half of the handshake: marker first, then refuse while another live host has the volume attached. */
  private async markRemoving(presence: Presence, backend: Backend, name: string): Promise<void> {
    const deadline = this.judgeDeadline(backend, 45_000);
    const marker = Buffer.from(`${JSON.stringify({ host: this.config.hostId, at: new Date().toISOString() })}\n`);
    const made = await this.call(backend.createFile(name, REMOVING_FILE, marker), `marking volume ${name} for removal`, name);
    if (!made) {
      const other = parseMarker(await this.call(backend.readFile(name, REMOVING_FILE), `reading the removal marker of volume ${name}`, name));
      if (other && other.host !== this.config.hostId && (await presence.judge(other.host, deadline)) === 'alive') {
        throw new NetvolError('REMOVING', `volume ${name} is being removed on host ${other.host} right now: wait for that to finish (docker volume ls shows when it is gone)`, { volume: name });
      }
      await this.call(backend.writeFile(name, REMOVING_FILE, marker), `marking volume ${name} for removal`, name);
    }
    let live;
    try {
      live = await presence.liveHolders(name, deadline);
    } catch (err) {
      await this.backendQuiet(backend.removeFile(name, REMOVING_FILE), name);
      throw err;
    }
    if (live.length > 0) {
      await this.backendQuiet(backend.removeFile(name, REMOVING_FILE), name);
      const hosts = live.map((h) => h.host).join(', ');
      throw new NetvolError(
        'IN_USE',
        `volume ${name} is in use on host ${hosts}: stop the containers using it there first (docker ps --filter volume=${name} on ${live.length === 1 ? 'that host' : 'those hosts'}); a host that is gone stops counting ${this.backendConfig(backend.name).leaseSeconds} s after its last heartbeat`,
        { volume: name },
      );
    }
  }

  /** Mount's half of the handshake, after this host's attachment is published. */
  private async checkNotRemoving(presence: Presence, backend: Backend, name: string): Promise<void> {
    const other = parseMarker(await this.call(backend.readFile(name, REMOVING_FILE), `reading the removal marker of volume ${name}`, name));
    if (!other || other.host === this.config.hostId) return;
    if ((await presence.judge(other.host, this.judgeDeadline(backend, 30_000))) === 'dead') return;
    throw new NetvolError('REMOVING', `volume ${name} is being removed on host ${other.host}: it cannot be mounted now; create it again once it is gone if you still need it`, { volume: name });
  }

  /** What `docker volume rm` does to the data, by the volume's onRemove; safe to repeat after a crash. */
  private async applyRemovePolicy(backend: Backend, name: string, policy: OnRemove): Promise<void> {
    if (policy === 'delete') {
      await this.call(backend.removeFolder(name), `removing volume ${name}`, name);
      return;
    }
    const meta = await this.call(readMeta(backend, name), `looking up volume ${name}`, name);
    if (!meta) return; // already retained-and-gone or archived by an earlier attempt
    if (policy === 'retain') {
      await this.call(writeMeta(backend, { ...meta, retained: true }), `retaining volume ${name}`, name);
      if (backend.capabilities.sharedAcrossHosts) await this.backendQuiet(backend.removeFile(name, REMOVING_FILE), name);
    } else if (!meta.retained) {
      const to = archiveName(name, new Date());
      await this.call(backend.renameFolder(name, to), `archiving volume ${name}`, name);
      if (backend.capabilities.sharedAcrossHosts) await this.backendQuiet(backend.removeFile(to, REMOVING_FILE), name);
      this.log.info('archived volume', { volume: name, archive: to });
    }
  }

  async mount(rawName: unknown, id: unknown): Promise<string> {
    const name = validateVolumeName(rawName);
    const mountId = this.mountId(name, id);
    return this.locks.run(name, async () => {
      const found = await this.lookup(name);
      if (!found) throw this.notFound(name);
      let record = found.record;
      if (!found.meta) {
        // The backend cannot be read: only a mount this host already has, and that still works, can be counted.
        if (!(record && record.attached && (await this.isLive(name, record)))) throw this.unavailable(found);
      } else if (!record) {
        record = { backend: found.backend, layout: found.meta.spec.layout, fs: found.meta.spec.fs, mounts: {}, attached: false };
        this.volumes[name] = record;
      }
      const r = record as VolumeRecord;
      try {
        if (!(r.attached && (await this.isLive(name, r)))) await this.attach(name, r, found.meta as VolumeMeta);
      } catch (err) {
        this.tidy(name);
        throw err;
      }
      r.mounts[mountId] = (r.mounts[mountId] ?? 0) + 1;
      await this.store.save();
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
    const backend = this.backends.get(record.backend);
    if (!backend || !backend.capabilities.networked) return true;
    return (await this.call(backend.health(name), `checking volume ${name}`, name).catch(() => 'dead')) === 'attached';
  }

  /**
   * The attach stack: on a shared backend, publish this host's attachment (an image volume takes its
   * single-writer lease), check no other host is removing it and that it still exists; then the
   * backend's attachment; then the loop or bind mount.
   */
  private async attach(name: string, record: VolumeRecord, known: VolumeMeta | undefined): Promise<void> {
    const backend = await this.backend(record.backend, name);
    const mp = this.mountpoint(name);
    if (await this.mounts.isMounted(mp)) await this.unmountMountpoint(name, record, true);
    await fs.mkdir(mp, { recursive: true, mode: 0o755 });
    const presence = this.presenceOf(backend);
    let meta = known;
    if (presence) {
      if (record.layout === 'image') {
        await presence.claimExclusive(name, this.judgeDeadline(backend, 90_000));
      } else {
        presence.setHold(name, 'shared');
        await this.call(presence.publish(), `recording the attachment of volume ${name}`, name).catch(async (err) => {
          await presence.release(name);
          throw err;
        });
      }
      try {
        await this.checkNotRemoving(presence, backend, name);
        meta = await this.call(readMeta(backend, name), `looking up volume ${name}`, name);
        if (!meta || meta.retained) throw this.notFound(name);
      } catch (err) {
        await presence.release(name);
        throw err;
      }
    }
    let folder: string;
    try {
      folder = await this.call(backend.attach(name), `attaching volume ${name} from backend ${backend.name}`, name);
    } catch (err) {
      if (presence) await presence.release(name);
      throw err;
    }
    record.attached = true;
    await this.store.save();
    try {
      if (record.layout === 'image') {
        await this.mounts.mountImage(path.join(folder, IMAGE_FILE), mp, record.fs ?? 'ext4');
      } else {
        await this.mounts.bind(path.join(folder, DATA_DIR), mp);
      }
    } catch (err) {
      await this.call(backend.detach(name), `detaching volume ${name}`, name).catch(() => undefined);
      if (presence) await presence.release(name);
      record.attached = false;
      await this.store.save();
      throw wrapError(err, 'COMMAND_FAILED', `cannot mount volume ${name}`, name);
    }
    delete record.fenced;
    if (meta) this.metaCache.set(name, meta);
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
      await this.call(backend.detach(name), `detaching volume ${name}`, name);
    } catch (err) {
      throw wrapError(err, 'COMMAND_FAILED', `cannot unmount volume ${name} (is a process outside Docker still using it?)`, name);
    }
    record.attached = false;
    this.metaCache.delete(name);
    const presence = this.presenceOf(backend);
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
        const record = this.volumes[name];
        if (!record || !record.attached) return;
        await stopDataPath(backend, name, this.mountpoint(name), this.config.timeoutMs, this.log, this.mounts);
        record.attached = false;
        record.fenced = why;
        this.metaCache.delete(name);
        this.log.error('fenced volume: its containers now get I/O errors; it attaches again at the next Mount once it is free', { volume: name, backend: backend.name, reason: why });
      }),
    );
    await this.store.save();
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
      try {
        if (total(record.mounts) === 0) {
          delete record.fenced;
          if (record.attached) await this.detach(name, record, await this.backend(record.backend, name));
        }
      } finally {
        this.tidy(name);
        await this.store.save();
      }
    });
  }

  async path(rawName: unknown): Promise<string> {
    const name = validateVolumeName(rawName);
    const found = await this.lookup(name);
    if (!found) throw this.notFound(name);
    return found.record?.attached ? this.mountpoint(name) : '';
  }

  async get(rawName: unknown): Promise<VolumeInfo> {
    const name = validateVolumeName(rawName);
    const found = await this.lookup(name);
    if (!found) throw this.notFound(name);
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
      const backend = this.backends.get(found.backend);
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
      : { backend: found.backend, layout: record?.layout, mounts: Object.keys(record?.mounts ?? {}), mountCount: total(record?.mounts ?? {}), ...extra };
    return { name, mountpoint: attached ? this.mountpoint(name) : '', createdAt: meta?.createdAt, status };
  }

  /** Reads the other hosts' heartbeat files now, so Get shows the cluster as it is (List uses the last beat's reading). */
  private async refreshPeers(backendName: string, volume: string): Promise<void> {
    const backend = this.backends.get(backendName);
    const presence = backend && this.presenceOf(backend);
    if (presence) await presence.readAll().catch((err: Error) => this.log.debug('cannot read the other hosts\' heartbeats', { volume, error: err.message }));
  }

  /** Which hosts have the volume attached and who holds an image volume's lease, from the last heartbeats read. */
  private clusterStatus(found: Found): Record<string, unknown> {
    const backend = this.backends.get(found.backend);
    const presence = backend && this.presenceOf(backend);
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
    const backend = await this.backend(backendName, name);
    const u = await this.call(backend.usage(name), `measuring volume ${name}`, name);
    const usage: Usage =
      spec.layout === 'image'
        ? { sizeBytes: spec.sizeBytes, usedBytes: u.usedBytes, availableBytes: Math.max(0, (spec.sizeBytes ?? 0) - u.usedBytes) }
        : u;
    this.usageCache.set(name, { at: Date.now(), usage });
    return usage;
  }

  /**
   * Every volume on every reachable backend, read from the backends. A backend that cannot be listed
   * contributes the volumes this host has mounted from it, so a passing outage never makes Docker
   * forget volumes in use.
   */
  async list(): Promise<VolumeInfo[]> {
    const found = new Map<string, Found>();
    await Promise.all(
      [...this.backends.keys()].map(async (backendName) => {
        try {
          const backend = await this.backend(backendName);
          for (const meta of await this.call(listMetas(backend), `listing backend ${backendName}`)) {
            if (found.has(meta.name)) continue;
            const known = this.volumes[meta.name];
            found.set(meta.name, { name: meta.name, backend: backendName, meta, record: known?.backend === backendName ? known : undefined });
          }
        } catch (err) {
          const why = (err as Error).message;
          this.log.warn('cannot list backend; listing the volumes this host has on it', { backend: backendName, error: why });
          for (const [name, record] of Object.entries(this.volumes)) {
            if (record.backend === backendName && !record.pending && !found.has(name)) found.set(name, { name, backend: backendName, meta: this.metaCache.get(name), record, unreachable: why });
          }
        }
      }),
    );
    const names = [...found.keys()].sort();
    return Promise.all(names.map((name) => this.info(found.get(name) as Found, false)));
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
      if (!meta) {
        await this.call(backend.removeFolder(name), `removing half-created volume ${name}`, name);
        this.log.warn('removed a volume whose creation was interrupted', { volume: name });
      }
      delete record.pending;
      this.tidy(name);
      return;
    }
    if (record.pending === 'remove') {
      if (total(record.mounts) === 0) {
        const policy = record.onRemove ?? 'delete';
        this.log.warn('finishing a remove that was interrupted', { volume: name, onRemove: policy });
        await this.applyRemovePolicy(await this.backend(record.backend, name), name, policy);
        delete this.volumes[name];
        return;
      }
      delete record.pending;
      delete record.onRemove;
    }
    const mounted = await this.mounts.isMounted(this.mountpoint(name));
    if (total(record.mounts) === 0 && (mounted || record.attached)) {
      await this.detach(name, record, await this.backend(record.backend, name));
    } else if (total(record.mounts) > 0 && !mounted) {
      record.attached = false;
      // Not mounted after all (the host rebooted): drop the hold seeded from the ledger; the remount claims it afresh.
      const backend = await this.backend(record.backend, name);
      this.presenceOf(backend)?.setHold(name, undefined);
    } else if (total(record.mounts) > 0) {
      record.attached = true;
      await this.retakeHold(name, record);
    }
    this.tidy(name);
  }

  /**
   * After a restart, a volume still mounted here is published again; an image volume takes its lease
   * again, and if another live host holds it meanwhile, this host fences its own mount.
   */
  private async retakeHold(name: string, record: VolumeRecord): Promise<void> {
    const backend = await this.backend(record.backend, name);
    const presence = this.presenceOf(backend);
    if (!presence) return;
    if (record.layout !== 'image') {
      presence.setHold(name, 'shared');
      await this.call(presence.publish(), `recording the attachment of volume ${name}`, name);
      return;
    }
    try {
      await presence.confirmExclusive(name, this.judgeDeadline(backend, 60_000));
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
      Object.entries(this.volumes).map(async ([name, record]) => {
        if (total(record.mounts) === 0 || record.fenced) return;
        try {
          await this.locks.run(name, async () => {
            if (record.attached && (await this.isLive(name, record))) return;
            this.log.warn('re-attaching a volume that has live mounts but lost its mount', { volume: name });
            await this.attach(name, record, undefined);
            await this.store.save();
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
    const handovers: Handover[] = [];
    for (const p of this.presences.values()) {
      p.stop();
      const h = p.handover();
      if (Object.keys(h.holds).length > 0) handovers.push(h);
    }
    await this.store.save();
    await Promise.all([...this.backends.values()].map((b) => b.close().catch(() => undefined)));
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

function parseMarker(raw: Buffer | undefined): { host: string } | undefined {
  if (!raw || raw.length === 0) return undefined;
  try {
    const v = JSON.parse(raw.toString('utf8')) as { host?: unknown };
    return typeof v.host === 'string' ? { host: v.host } : undefined;
  } catch {
    return undefined;
  }
}
