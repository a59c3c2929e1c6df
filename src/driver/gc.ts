import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ARCHIVE_MARK, HOSTS_FOLDER, IMAGE_FILE, isArchiveName, REMOVING_FILE, type Backend } from '../backends';
import { NetvolError } from '../errors';
import type { Logger } from '../log';
import { readMountTable, run, type MountEntry } from '../system';
import type { GcItem, GcOptions, GcReport } from './admin-api';
import type { AttachStack } from './attach';
import type { BackendPool } from './backends';
import { readMeta } from './catalog';
import type { Ledger } from './ledger';
import type { VolumeLocks } from './locks';
import type { Mounts } from './mounts';
import { readHostFiles, type Presence } from './presence';
import { readMarker } from './removal';

/** How long a heartbeat must have stayed the same on this host's clock (at least a lease) before gc calls its host gone, unless told. */
export const DEFAULT_HOST_AGE_MS = 10 * 60_000;

/** Removal markers read at once while looking for stale ones (one small read per volume folder). */
const MARKER_READS = 16;

/** `<name>.archive-20261123T101500Z[-hash]`: when the volume was archived (UTC, from its name). */
export function archivedAt(folder: string): Date | undefined {
  const m = /\.archive-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z(?:-[0-9a-f]+)?$/.exec(folder);
  if (!m) return undefined;
  const at = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
  return Number.isNaN(at.getTime()) ? undefined : at;
}

interface LoopDevice {
  device: string;
  backFile: string;
}

/** A helper process of netvol's (sshfs, the userspace NFS server) and the mountpoint its argv names. */
interface Helper {
  pid: number;
  mountpoint: string;
  what: string;
}

/** A volume name that can be this host's: a folder name under a root netvol owns. */
function volumeUnder(root: string, p: string): string | undefined {
  const rel = path.relative(root, p);
  if (!rel || rel.startsWith('..') || path.isAbsolute(rel) || rel.includes('/') || rel.startsWith('.')) return undefined;
  return rel;
}

/**
 * `netvolctl gc`: finds what nobody uses and, when asked, removes it — through this daemon, under
 * the same per-volume locks as the Docker verbs, re-checking each thing right before it goes.
 *
 * On every backend: the trash (folders of removed volumes not yet deleted), archives older than a
 * given age (their name carries the time of archiving), retained volumes (only when asked), and on
 * shared backends the heartbeat file of a host that is gone — judged as presence.ts judges a dead
 * host (its file did not change for a whole lease of this host's monotonic clock) and, on top of
 * that, unchanged for `hostAgeMs` as this daemon has watched it. This host's own file never goes.
 * Likewise the removal marker (`<volume>/removing.json`, removal.ts) of a host gone in the middle of
 * a Remove: Mount already ignores it, gc tidies it away; a live host's, or this host's own, never.
 *
 * On this host, only what lies under netvol's own folders and that no ledger record names: a
 * mountpoint under mountRoot (mounted or an empty folder), a backend attachment or its helper
 * (sshfs, the userspace NFS server) under a backend's work folder, and a loop device whose backing
 * file is a `data.img` of a volume folder under a backend's work folder or a local backend's root.
 * A mount still in use is refused by umount and reported, never forced.
 */
export class GarbageCollector {
  constructor(
    private readonly o: {
      hostId: string;
      timeoutMs: number;
      stateDir: string;
      mountRoot: string;
      pool: BackendPool;
      ledger: Ledger;
      locks: VolumeLocks;
      stack: AttachStack;
      mounts: Mounts;
      log: Logger;
    },
  ) {}

  async run(opts: GcOptions): Promise<GcReport> {
    const items: GcItem[] = [];
    const act = async (item: GcItem, remove: () => Promise<boolean | void>): Promise<void> => {
      items.push(item);
      if (!opts.apply) return;
      try {
        const done = await remove();
        item.state = done === false ? 'kept' : 'removed';
        if (done === false) item.reason += ' — in use again when it was to be removed: kept';
        this.o.log.info('gc removed', { kind: item.kind, backend: item.backend, volume: item.volume, target: item.target });
      } catch (err) {
        item.state = 'failed';
        item.error = (err as Error).message;
        this.o.log.warn('gc could not remove', { kind: item.kind, backend: item.backend, volume: item.volume, target: item.target, error: item.error });
      }
    };
    for (const name of this.o.pool.names()) await this.backendGarbage(name, opts, items, act);
    await this.hostGarbage(items, act);
    return { applied: opts.apply, items };
  }

  // ---------------------------------------------------------------------------------------------
  // on the backends

  private async backendGarbage(name: string, opts: GcOptions, items: GcItem[], act: (i: GcItem, f: () => Promise<boolean | void>) => Promise<void>): Promise<void> {
    const { pool } = this.o;
    let backend: Backend;
    try {
      backend = await pool.open(name);
    } catch (err) {
      items.push({ kind: 'backend', backend: name, target: name, reason: 'cannot be read: nothing on it was looked at', state: 'failed', error: (err as Error).message });
      return;
    }
    const step = async (what: string, f: () => Promise<void>): Promise<void> => {
      try {
        await f();
      } catch (err) {
        items.push({ kind: 'backend', backend: name, target: name, reason: `cannot look for ${what}`, state: 'failed', error: (err as Error).message });
      }
    };
    if (backend.listTrash && backend.removeTrash) {
      const removeTrash = backend.removeTrash.bind(backend);
      await step('trash', async () => {
        for (const trash of await pool.bounded((backend.listTrash as () => Promise<string[]>).call(backend), `listing the trash of backend ${name}`)) {
          await act({ kind: 'trash', backend: name, target: trash, reason: 'folder of a removed volume not deleted yet', state: 'found' }, () => removeTrash(trash));
        }
      });
    }
    await step('archived and retained volumes', async () => {
      const folders = await pool.bounded(backend.listFolders(), `listing backend ${name}`);
      for (const folder of folders) {
        if (isArchiveName(folder)) {
          if (opts.olderThanMs === undefined) continue;
          const at = archivedAt(folder);
          if (!at || Date.now() - at.getTime() < opts.olderThanMs) continue;
          const days = Math.floor((Date.now() - at.getTime()) / 86_400_000);
          await act({ kind: 'archive', backend: name, volume: folder.slice(0, folder.indexOf('.archive-')), target: folder, reason: `archived ${at.toISOString()} (${days} d ago)`, state: 'found' }, () =>
            this.o.locks.run(folder, () => pool.bounded(backend.removeFolder(folder), `removing archive ${folder}`), 'remove'),
          );
        } else if (opts.retained) {
          const meta = await pool.bounded(readMeta(backend, folder), `reading volume ${folder}`, folder).catch(() => undefined);
          if (!meta?.retained) continue;
          await act({ kind: 'retained', backend: name, volume: folder, target: folder, reason: 'removed with onRemove=retain', state: 'found' }, () => this.removeRetained(backend, folder));
        }
      }
    });
    const presence = pool.presenceOf(backend);
    if (presence) {
      // Markers before heartbeats: a heartbeat file removed reads, to the next judgement, as a change of its host's file.
      await step('removal markers of hosts that are gone', () => this.staleMarkers(backend, presence, opts, act));
      await step('heartbeats of hosts that are gone', () => this.goneHosts(backend, presence, opts, act));
    }
  }

  /** Under the volume's lock, only while it is still retained: a Create that adopted it meanwhile wins. */
  private removeRetained(backend: Backend, name: string): Promise<boolean> {
    return this.o.locks.run(
      name,
      async () => {
        const meta = await this.o.pool.bounded(readMeta(backend, name), `reading volume ${name}`, name);
        if (!meta?.retained || this.o.ledger.get(name)) return false;
        await this.o.pool.bounded(backend.removeFolder(name), `removing retained volume ${name}`, name);
        return true;
      },
      'remove',
    );
  }

  /**
   * Which of `hosts` are gone, each with how long its heartbeat has stayed as it is on this host's
   * clock: judged dead as presence.ts judges a host (its file unchanged, or missing, for a whole
   * lease) and unchanged for the host age as this daemon has watched it. A host watched for less
   * than the age minus one lease cannot be old enough yet: it is read once without waiting, so that
   * a host this daemon never read (one with no heartbeat file left) is watched from now on.
   */
  private async goneOf(backend: Backend, presence: Presence, hosts: string[], opts: GcOptions): Promise<Map<string, number>> {
    const { pool } = this.o;
    const leaseMs = pool.settings(backend.name).leaseSeconds * 1000;
    const ageMs = Math.max(leaseMs, opts.hostAgeMs ?? DEFAULT_HOST_AGE_MS);
    const deadline = pool.judgeDeadline(backend, 60_000);
    const lookOnly = pool.judgeDeadline(backend, 0); // a deadline already reached: one read, no wait
    const judged = await Promise.all(
      hosts.map(async (host) => {
        const old = (presence.quietFor(host) ?? 0) + leaseMs >= ageMs;
        return { host, life: await presence.judge(host, old ? deadline : lookOnly) };
      }),
    );
    const gone = new Map<string, number>();
    for (const { host, life } of judged) {
      const quiet = presence.quietFor(host) ?? 0;
      if (life === 'dead' && quiet >= ageMs) gone.set(host, quiet);
    }
    return gone;
  }

  private goneReason(backend: Backend, quietMs: number): string {
    return `heartbeat unchanged for ${Math.round(quietMs / 1000)} s on this host's clock (lease ${this.o.pool.settings(backend.name).leaseSeconds} s)`;
  }

  private async goneHosts(backend: Backend, presence: Presence, opts: GcOptions, act: (i: GcItem, f: () => Promise<boolean | void>) => Promise<void>): Promise<void> {
    const { pool, hostId } = this.o;
    const files = await readHostFiles(backend, this.o.timeoutMs, hostId);
    const gone = await this.goneOf(backend, presence, [...files.keys()], opts);
    const deadline = pool.judgeDeadline(backend, 60_000);
    for (const [host, quiet] of gone) {
      const file = files.get(host);
      const held = file ? Object.keys(file.volumes) : [];
      const reason = `${this.goneReason(backend, quiet)}${held.length > 0 ? `; listed ${held.join(', ')} as attached` : ''}`;
      await act({ kind: 'host', backend: backend.name, target: `${HOSTS_FOLDER}/${host}.json`, reason, state: 'found' }, async () => {
        // Read once more right before: a host that came back has written a new beat since.
        if ((await presence.judge(host, deadline)) !== 'dead') return false;
        await pool.bounded(backend.removeFile(HOSTS_FOLDER, `${host}.json`), `removing the heartbeat of host ${host}`);
        return true;
      });
    }
  }

  /**
   * Removal markers left by hosts that are gone: a Remove that never finished (its host died between
   * the marker and the end). The volume (or the archive it became) stays what it was; the marker is
   * removed under the volume's lock, only while it is the same marker and its host still gone. This
   * host's own markers are never listed (a Remove of this host's may be running), nor one whose
   * content is not readable (a create whose write has not landed yet names nobody to judge).
   */
  private async staleMarkers(backend: Backend, presence: Presence, opts: GcOptions, act: (i: GcItem, f: () => Promise<boolean | void>) => Promise<void>): Promise<void> {
    const { pool, hostId } = this.o;
    const folders = await pool.bounded(backend.listFolders(), `listing backend ${backend.name}`);
    const found: Array<{ folder: string; volume: string; raw: Buffer; host: string; at?: string }> = [];
    for (let i = 0; i < folders.length; i += MARKER_READS) {
      await Promise.all(
        folders.slice(i, i + MARKER_READS).map(async (folder) => {
          const volume = isArchiveName(folder) ? folder.slice(0, folder.indexOf(ARCHIVE_MARK)) : folder;
          const { raw, marker } = await readMarker(pool, backend, volume, folder);
          if (raw && marker && marker.host !== hostId) found.push({ folder, volume, raw, ...marker });
        }),
      );
    }
    if (found.length === 0) return;
    const gone = await this.goneOf(backend, presence, [...new Set(found.map((m) => m.host))], opts);
    const deadline = pool.judgeDeadline(backend, 60_000);
    for (const m of found.sort((x, y) => x.folder.localeCompare(y.folder))) {
      const quiet = gone.get(m.host);
      if (quiet === undefined) continue;
      const reason = `marker of a Remove on host ${m.host}${m.at ? ` (started ${m.at})` : ''} that never finished; that host is gone: ${this.goneReason(backend, quiet)}`;
      await act({ kind: 'removal', backend: backend.name, volume: m.volume, target: `${m.folder}/${REMOVING_FILE}`, reason, state: 'found' }, () =>
        // The volume's lock: a Remove on this host writes its marker under it.
        this.o.locks.run(
          m.volume,
          async () => {
            const now = (await readMarker(pool, backend, m.volume, m.folder)).raw;
            if (!now) return true; // gone already
            // Another Remove took the marker over since, or its host came back: not garbage.
            if (!now.equals(m.raw) || (await presence.judge(m.host, deadline)) !== 'dead') return false;
            await pool.bounded(backend.removeFile(m.folder, REMOVING_FILE), `removing the removal marker of volume ${m.volume} (${m.folder})`, m.volume);
            return true;
          },
          'remove',
        ),
      );
    }
  }

  // ---------------------------------------------------------------------------------------------
  // on this host

  private workDir(backend: string): string {
    return path.join(this.o.stateDir, 'backends', backend);
  }

  /** Folders whose `<volume>/data.img` are netvol's images: each backend's work folder, and the root of a backend on this host's disk. */
  private async imageRoots(): Promise<Array<{ root: string; backend: string }>> {
    const out: Array<{ root: string; backend: string }> = [];
    for (const name of this.o.pool.names()) {
      out.push({ root: this.workDir(name), backend: name });
      const backend = this.o.pool.find(name);
      // A backend on this host's disk attaches a volume as its folder there, with no helper: that path tells its root.
      if (backend && !backend.capabilities.networked) out.push({ root: path.dirname(await backend.attach('gc-probe')), backend: name });
    }
    return out;
  }

  private async hostGarbage(items: GcItem[], act: (i: GcItem, f: () => Promise<boolean | void>) => Promise<void>): Promise<void> {
    const { ledger, mountRoot, locks } = this.o;
    // Read once before anything goes: a dry run and --apply list the same things (a loop device
    // freed with its mountpoint is still listed, and reported removed).
    const table = await readMountTable();
    const loops = await listLoops();
    const mountAt = new Map(table.map((m) => [m.mountPoint, m]));
    const orphan = (volume: string): boolean => ledger.get(volume) === undefined;
    const underLock = (volume: string, f: () => Promise<void>): Promise<boolean> =>
      locks.run(volume, async () => {
        if (!orphan(volume)) return false;
        await f();
        return true;
      }, 'remove');

    // Mountpoints under mountRoot: mounted ones first (an image's loop device goes with it), then empty folders.
    const entries = await fs.readdir(mountRoot, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const volume = volumeUnder(mountRoot, path.join(mountRoot, e.name));
      if (!volume || !orphan(volume)) continue;
      const mp = path.join(mountRoot, volume);
      const entry = mountAt.get(mp);
      if (entry) {
        await act({ kind: 'mountpoint', volume, target: mp, reason: `${entry.source} mounted here, no volume record on this host`, state: 'found' }, () =>
          underLock(volume, async () => {
            if (entry.source.startsWith('/dev/loop')) await this.o.mounts.unmountImage(mp);
            else await this.o.mounts.unmount(mp);
            await fs.rmdir(mp).catch(() => undefined);
          }),
        );
      } else if ((await fs.readdir(mp).catch(() => ['?'])).length === 0) {
        await act({ kind: 'mountpoint', volume, target: mp, reason: 'empty mountpoint folder, no volume record on this host', state: 'found' }, () => underLock(volume, () => fs.rmdir(mp)));
      }
    }

    // Backend attachments and their helpers under each backend's work folder.
    const helpers = await findHelpers();
    for (const name of this.o.pool.names()) {
      const backend = this.o.pool.find(name);
      if (!backend?.capabilities.networked) continue;
      const work = this.workDir(name);
      const found = new Map<string, string[]>();
      for (const m of table) {
        const volume = volumeUnder(work, m.mountPoint);
        if (volume && orphan(volume)) found.set(volume, [...(found.get(volume) ?? []), `${m.fsType} mount at ${m.mountPoint}`]);
      }
      for (const h of helpers) {
        const volume = volumeUnder(work, h.mountpoint);
        if (volume && orphan(volume)) found.set(volume, [...(found.get(volume) ?? []), `${h.what} process ${h.pid}`]);
      }
      for (const [volume, what] of found) {
        await act({ kind: 'attachment', backend: name, volume, target: path.join(work, volume), reason: `${what.join(', ')}; no volume record on this host`, state: 'found' }, () =>
          underLock(volume, () => this.o.pool.bounded(backend.detach(volume), `detaching volume ${volume}`, volume)),
        );
      }
    }

    // Loop devices serving a netvol image that nothing here holds, and that are not mounted anywhere.
    const roots = await this.imageRoots();
    const mountedNow = new Set(table.map((m: MountEntry) => m.source));
    for (const loop of loops) {
      if (path.basename(loop.backFile) !== IMAGE_FILE) continue;
      const folder = path.dirname(loop.backFile);
      const owner = roots.find((r) => volumeUnder(r.root, folder) !== undefined);
      const volume = owner ? volumeUnder(owner.root, folder) : undefined;
      if (!owner || !volume || !orphan(volume)) continue;
      if (mountedNow.has(loop.device)) {
        // Mounted outside netvol's folders: not ours to judge. Mounted at an orphan mountpoint: freed with it.
        if (!items.some((i) => i.kind === 'mountpoint' && i.volume === volume)) continue;
      }
      await act({ kind: 'loop', backend: owner.backend, volume, target: loop.device, reason: `backed by ${loop.backFile}, no volume record on this host`, state: 'found' }, () =>
        underLock(volume, async () => {
          const still = (await listLoops()).find((l) => l.device === loop.device);
          if (!still || still.backFile !== loop.backFile) return; // freed with its mount already
          if ((await readMountTable()).some((m) => m.source === loop.device)) throw new NetvolError('IN_USE', `loop device ${loop.device} of volume ${volume} is mounted: unmount it first`, { volume });
          await run('losetup', ['-d', loop.device], { timeoutMs: 10_000 });
        }),
      );
    }
  }
}

/** Every loop device and its backing file (" (deleted)" taken off). */
async function listLoops(): Promise<LoopDevice[]> {
  const { stdout } = await run('losetup', ['-J', '-l', '-O', 'NAME,BACK-FILE'], { timeoutMs: 10_000 });
  if (!stdout.trim()) return [];
  const rows = (JSON.parse(stdout) as { loopdevices: Array<{ name: string; 'back-file': string | null }> }).loopdevices;
  return rows.filter((r) => r['back-file']).map((r) => ({ device: r.name, backFile: (r['back-file'] as string).trim().replace(/ \(deleted\)$/, '') }));
}

/**
 * netvol's helper processes, found as the backends find their own (by argv): sshfs, whose argv
 * names its mountpoint, and the userspace NFS server (`…/fuse-nfs/main.js --mountpoint MP`).
 */
async function findHelpers(): Promise<Helper[]> {
  const out: Helper[] = [];
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = (await fs.readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0').filter(Boolean);
    if (argv.length === 0) continue;
    if (path.basename(argv[0]) === 'sshfs') {
      for (const a of argv.slice(1)) if (path.isAbsolute(a)) out.push({ pid: Number(entry), mountpoint: a, what: 'sshfs' });
    } else if (argv.some((a) => a.endsWith(path.join('fuse-nfs', 'main.js')))) {
      const i = argv.indexOf('--mountpoint');
      if (i > 0 && argv[i + 1]) out.push({ pid: Number(entry), mountpoint: argv[i + 1], what: 'userspace NFS server' });
    }
  }
  return out;
}
