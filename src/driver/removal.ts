import { REMOVING_FILE, type Backend } from '../backends';
import { NetvolError } from '../errors';
import type { Logger } from '../log';
import type { BackendPool } from './backends';
import { readMeta, writeMeta } from './catalog';
import { archiveName } from './names';
import type { OnRemove } from './options';
import type { Presence } from './presence';

/**
 * Removing a volume's data, and the handshake that keeps Remove and Mount of one volume on two hosts
 * from both going ahead on a shared backend: Remove first creates a removal marker and then looks
 * for live attachments; Mount first publishes its attachment and then looks for the marker.
 * Whatever the timing, one of them sees the other.
 */
export class Removal {
  constructor(
    private readonly pool: BackendPool,
    private readonly hostId: string,
    private readonly log: Logger,
  ) {}

  /** Remove's half of the handshake: marker first, then refuse while another live host has the volume attached. */
  async mark(presence: Presence, backend: Backend, name: string): Promise<void> {
    const deadline = this.pool.judgeDeadline(backend, 45_000);
    const marker = Buffer.from(`${JSON.stringify({ host: this.hostId, at: new Date().toISOString() })}\n`);
    const made = await this.pool.bounded(backend.createFile(name, REMOVING_FILE, marker), `marking volume ${name} for removal`, name);
    if (!made) {
      const other = (await readMarker(this.pool, backend, name)).marker;
      if (other && other.host !== this.hostId && (await presence.judge(other.host, deadline)) === 'alive') {
        throw new NetvolError('REMOVING', `volume ${name} is being removed on host ${other.host} right now: wait for that to finish (docker volume ls shows when it is gone)`, { volume: name });
      }
      await this.pool.bounded(backend.writeFile(name, REMOVING_FILE, marker), `marking volume ${name} for removal`, name);
    }
    let live;
    try {
      live = await presence.liveHolders(name, deadline);
    } catch (err) {
      await this.unmark(backend, name);
      throw err;
    }
    if (live.length > 0) {
      await this.unmark(backend, name);
      const hosts = live.map((h) => h.host).join(', ');
      throw new NetvolError(
        'IN_USE',
        `volume ${name} is in use on host ${hosts}: stop the containers using it there first (docker ps --filter volume=${name} on ${live.length === 1 ? 'that host' : 'those hosts'}); a host that is gone stops counting ${this.pool.settings(backend.name).leaseSeconds} s after its last heartbeat`,
        { volume: name },
      );
    }
  }

  /** Mount's half of the handshake, after this host's attachment is published. */
  async checkNotRemoving(presence: Presence, backend: Backend, name: string): Promise<void> {
    const other = (await readMarker(this.pool, backend, name)).marker;
    if (!other || other.host === this.hostId) return;
    if ((await presence.judge(other.host, this.pool.judgeDeadline(backend, 30_000))) === 'dead') return;
    throw new NetvolError('REMOVING', `volume ${name} is being removed on host ${other.host}: it cannot be mounted now; create it again once it is gone if you still need it`, { volume: name });
  }

  /** After a restart: takes away the volume's removal marker if this host wrote it (a Remove the crash cut off); never another host's. */
  async unmarkIfMine(backend: Backend, name: string): Promise<void> {
    const { marker } = await readMarker(this.pool, backend, name);
    if (marker?.host !== this.hostId) return;
    await this.unmark(backend, name);
    this.log.warn('took away the removal marker of a Remove that a restart cut off: other hosts may mount the volume again', { volume: name, backend: backend.name });
  }

  /** Takes the removal marker away again (from `folder`, the volume's or its archive's); a failure is logged, never thrown. */
  async unmark(backend: Backend, volume: string, folder = volume): Promise<void> {
    await this.pool
      .bounded(backend.removeFile(folder, REMOVING_FILE), `tidying volume ${volume}`, volume)
      .catch((err: Error) => this.log.warn('cannot tidy up on the backend', { volume, backend: backend.name, error: err.message }));
  }

  /** What `docker volume rm` does to the data, by the volume's onRemove; safe to repeat after a crash. */
  async applyPolicy(backend: Backend, name: string, policy: OnRemove): Promise<void> {
    if (policy === 'delete') {
      await this.pool.bounded(backend.removeFolder(name), `removing volume ${name}`, name);
      return;
    }
    const meta = await this.pool.bounded(readMeta(backend, name), `looking up volume ${name}`, name);
    if (!meta) return; // already retained-and-gone or archived by an earlier attempt
    if (policy === 'retain') {
      await this.pool.bounded(writeMeta(backend, { ...meta, retained: true }), `retaining volume ${name}`, name);
      if (backend.capabilities.sharedAcrossHosts) await this.unmark(backend, name);
    } else if (!meta.retained) {
      const to = archiveName(name, new Date());
      await this.pool.bounded(backend.renameFolder(name, to), `archiving volume ${name}`, name);
      if (backend.capabilities.sharedAcrossHosts) await this.unmark(backend, name, to);
      this.log.info('archived volume', { volume: name, backend: backend.name, archive: to });
    }
  }
}

/** The removal marker in `folder` (the volume's, or the archive it became): as read, and what it says. */
export async function readMarker(pool: BackendPool, backend: Backend, volume: string, folder = volume): Promise<{ raw: Buffer | undefined; marker: ReturnType<typeof parseMarker> }> {
  const what = folder === volume ? `reading the removal marker of volume ${volume}` : `reading the removal marker of volume ${volume} (${folder})`;
  const raw = await pool.bounded(backend.readFile(folder, REMOVING_FILE), what, volume);
  return { raw, marker: parseMarker(raw) };
}

/** A removal marker's content: the host whose Remove wrote it, and when (its wall clock, for people only); undefined when empty or unreadable. */
export function parseMarker(raw: Buffer | undefined): { host: string; at?: string } | undefined {
  if (!raw || raw.length === 0) return undefined;
  try {
    const v = JSON.parse(raw.toString('utf8')) as { host?: unknown; at?: unknown };
    if (typeof v.host !== 'string') return undefined;
    return typeof v.at === 'string' ? { host: v.host, at: v.at } : { host: v.host };
  } catch {
    return undefined;
  }
}
