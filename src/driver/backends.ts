import path from 'node:path';
import { Backend, backendType } from '../backends';
import type { Config } from '../config';
import { NetvolError, quoteUserValue, wrapError } from '../errors';
import type { Logger } from '../log';
import { noteRequestBackend, outsideRequest, withinRequest } from '../system';
import { Ledger, mountCount } from './ledger';
import { Handover, monotonicClock, Presence } from './presence';

/** One backend instance per configured backend, each with its private work folder under stateDir. Not opened yet. */
export function buildBackends(config: Config, logger: Logger): Map<string, Backend> {
  const out = new Map<string, Backend>();
  for (const b of config.backends) {
    const kind = backendType(b.type);
    if (!kind) continue; // buildConfig already refused unknown types
    out.set(
      b.name,
      kind.create(b.options, {
        name: b.name,
        hostId: config.hostId,
        workDir: path.join(config.stateDir, 'backends', b.name),
        timeoutMs: config.timeoutMs,
        logger: logger.child({ backend: b.name }),
      }),
    );
  }
  return out;
}

/**
 * The configured backends as the driver reaches them: each opened on first use (and again after a
 * failed open), every backend call bounded by the configured timeout, and on shared backends this
 * host's presence (its heartbeat) started when the backend opens.
 */
export class BackendPool {
  private readonly opened = new Map<string, Promise<void>>();
  private readonly presences = new Map<string, Presence>();
  /** The leases' clock: this host's monotonic clock, never a wall clock. */
  private readonly clock = monotonicClock;

  constructor(
    private readonly config: Config,
    private readonly backends: ReadonlyMap<string, Backend>,
    private readonly ledger: Ledger,
    private readonly log: Logger,
    /** Called when this host could not renew its heartbeat on a backend in time: stop these volumes' data path now. */
    private readonly onLost: (backend: Backend, volumes: string[], why: string) => Promise<void>,
  ) {}

  /** Docker's scope for this driver: global when any backend is shared across hosts (under scope auto). */
  get scope(): 'local' | 'global' {
    if (this.config.scope !== 'auto') return this.config.scope;
    return [...this.backends.values()].some((b) => b.capabilities.sharedAcrossHosts) ? 'global' : 'local';
  }

  /** The configured backend names, in config order. */
  names(): string[] {
    return [...this.backends.keys()];
  }

  /** A configured backend, opened or not; undefined for a name the config does not have. */
  find(name: string): Backend | undefined {
    return this.backends.get(name);
  }

  /** A configured backend by name, not opened; refuses a name the config does not have. */
  configured(name: string, volume?: string): Backend {
    const backend = this.backends.get(name);
    if (!backend) {
      const known = this.names().join(', ');
      throw new NetvolError('INVALID_OPTION', `${volume ? `volume ${volume}: ` : ''}unknown backend ${quoteUserValue(name)}: configured backends are ${known}`, { volume });
    }
    return backend;
  }

  /** A backend by name, opened on first use (and again after a failed open). Shared backends start this host's heartbeat. */
  async open(name: string, volume?: string): Promise<Backend> {
    const backend = this.configured(name, volume);
    if (volume !== undefined) noteRequestBackend(name); // the request on this volume works on this backend (its timing says so)
    let opening = this.opened.get(name);
    if (!opening) {
      // Shared by every request that needs the backend, and it starts the heartbeat loop: no one request's work.
      opening = outsideRequest(() => this.bounded(backend.open(), `opening backend ${name}`).then(() => this.startPresence(backend)));
      this.opened.set(name, opening);
      opening.catch(() => this.opened.delete(name));
    }
    if (volume === undefined) {
      await opening;
      return backend;
    }
    // A request about a volume says which volume it could not serve, and what to do.
    await opening.catch((err: unknown) => {
      const e = wrapError(err, 'BACKEND_UNAVAILABLE', `volume ${volume}: backend ${name} cannot be opened`, volume);
      throw new NetvolError(e.code, `${e.message}; check that backend ${name} is reachable from this host and its settings are right, then try again`, { volume, cause: err });
    });
    return backend;
  }

  /**
   * Bounds one backend call by the configured timeout and, inside a request, by the request's
   * deadline; the request (and the volume's lock) then waits for the call to settle (locks.ts).
   */
  bounded<T>(work: Promise<T>, what: string, volume?: string): Promise<T> {
    return withinRequest(work, this.config.timeoutMs, what, volume);
  }

  /** A backend's block of the daemon config. */
  settings(name: string): Config['backends'][number] {
    return this.config.backends.find((b) => b.name === name) as Config['backends'][number];
  }

  /** This host's presence on a shared backend; undefined for backends only this host uses (or not opened yet). */
  presenceOf(backend: Backend | string): Presence | undefined {
    return this.presences.get(typeof backend === 'string' ? backend : backend.name);
  }

  /** How long a verb may wait to learn whether another host is alive: a lease and a little, within dockerd's limits. */
  judgeDeadline(backend: Backend, capMs: number): number {
    return this.clock.now() + Math.min(this.settings(backend.name).leaseSeconds * 1000 + 5000, capMs);
  }

  private startPresence(backend: Backend): void {
    if (!backend.capabilities.sharedAcrossHosts || this.presences.has(backend.name)) return;
    const presence = new Presence({
      backend,
      hostId: this.config.hostId,
      leaseSeconds: this.settings(backend.name).leaseSeconds,
      timeoutMs: this.config.timeoutMs,
      log: this.log,
      onLost: (volumes, why) => this.onLost(backend, volumes, why),
    });
    // Volumes this host had attached before a restart stay claimed from the first beat on: their data
    // path never stopped, so no other host may see them free in between. Recovery then checks them.
    for (const [name, r] of Object.entries(this.ledger.records)) {
      if (r.backend === backend.name && r.attached && mountCount(r.mounts) > 0) presence.setHold(name, r.layout === 'image' ? 'exclusive' : 'shared');
    }
    this.presences.set(backend.name, presence);
    presence.start().catch((err: Error) => this.log.warn('cannot write this host\'s heartbeat yet; retrying', { backend: backend.name, error: err.message }));
  }

  /**
   * Stops the heartbeats (mounts stay). Returns, per shared backend where this host still has
   * volumes attached, what a caretaker needs to keep their attachments alive while the daemon is away.
   */
  stopHeartbeats(): Handover[] {
    const handovers: Handover[] = [];
    for (const p of this.presences.values()) {
      p.stop();
      const h = p.handover();
      if (Object.keys(h.holds).length > 0) handovers.push(h);
    }
    return handovers;
  }

  /** Closes every backend connection; failures are ignored (the daemon is stopping). */
  async closeBackends(): Promise<void> {
    await Promise.all([...this.backends.values()].map((b) => b.close().catch(() => undefined)));
  }
}
