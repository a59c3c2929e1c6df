import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { HOSTS_FOLDER, type Backend } from '../backends';
import { NetvolError, wrapError } from '../errors';
import type { Logger } from '../log';
import { keyedSchema } from '../state';
import { CoalescedWriter, withTimeout } from '../system';

/** The folder at a shared backend's root holding one heartbeat file per host (hidden: volume names never start with "."). */
export { HOSTS_FOLDER };

/**
 * How a host holds a volume: `shared` (a directory volume, any number of hosts), `claim` (asking for
 * an image volume's single-writer lease), `exclusive` (holding it).
 */
export type Hold = 'shared' | 'claim' | 'exclusive';

const hostFileSchema = z.object({
  version: z.literal(1),
  host: z.string(),
  /** Random per daemon start: a restarted host's counter may start over, its file still changes. */
  incarnation: z.string(),
  beat: z.number().int().nonnegative(),
  leaseSeconds: z.number().positive(),
  volumes: keyedSchema(z.enum(['shared', 'claim', 'exclusive'])),
  /** For people reading the file only: never compared with another host's clock. */
  writtenAt: z.string(),
});
export type HostFile = z.infer<typeof hostFileSchema>;

/** A monotonic clock in milliseconds. */
export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

/** CLOCK_MONOTONIC in milliseconds: one timeline for every process on this host (the caretaker resumes the daemon's fence deadline). */
export const monotonicClock: Clock = {
  now: () => Number(process.hrtime.bigint()) / 1e6,
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};

interface Observation {
  /** incarnation:beat of the last content read, or "absent". */
  key: string;
  /** When (this host's monotonic clock) the current key was first read. */
  since: number;
  /** Whether this host has ever seen the key change: until then a quiet host is "unknown", not alive. */
  changed: boolean;
  file?: HostFile;
}

export type Liveness = 'alive' | 'dead';

/** What another host holds of one volume, and whether its heartbeat lives. */
export interface Holder {
  host: string;
  hold: Hold;
}

export interface PresenceOptions {
  backend: Backend;
  hostId: string;
  leaseSeconds: number;
  /** Upper bound of one backend call. */
  timeoutMs: number;
  log: Logger;
  /**
   * Called when this host could not renew its heartbeat in time while holding image volumes: the
   * callee must stop their data path now. The holds are already dropped from the next heartbeat.
   */
  onLost: (volumes: string[], why: string) => Promise<void>;
  /** Taking over from another process of this host (the caretaker): its holds, and when its last good heartbeat started. */
  resume?: Handover;
}

/** What a stopping daemon hands to the caretaker that keeps its heartbeat while it is away. */
export interface Handover {
  backend: string;
  holds: Record<string, Hold>;
  /** monotonicClock time at which the last successful heartbeat write started. */
  lastGoodStart?: number;
}

/**
 * This host's presence on one shared backend, after sanlock's delta leases: one heartbeat file per
 * host (`.netvol-hosts/<host>.json`) that lists every volume the host has attached and how, rewritten
 * every sixth of the lease. Keeping all of a host's attachments alive costs one write per interval,
 * whatever the number of volumes.
 *
 * Another host is judged only by its file's changes as seen on this host's monotonic clock: alive
 * once its content is seen to change and for a lease after, dead when it has stayed the same for a
 * whole lease of this host's reading. Wall clocks are never compared.
 *
 * A host that holds image volumes and cannot renew for half a lease stops their data path (onLost)
 * and drops them from its file: a reader cannot judge it dead earlier than a whole lease after the
 * start of its last successful write, so the data path is stopped before anybody can take over.
 */
export class Presence {
  private readonly holds = new Map<string, Hold>();
  private readonly seen = new Map<string, Observation>();
  private readonly incarnation = randomBytes(6).toString('hex');
  private readonly clock = monotonicClock;
  private readonly leaseMs: number;
  private beat = 0;
  /** Start time of the last heartbeat write that succeeded. */
  private lastGoodStart: number | undefined;
  private readonly writer = new CoalescedWriter(() => this.write());
  private ticker: NodeJS.Timeout | undefined;
  private fenceTimer: NodeJS.Timeout | undefined;
  private folderReady = false;
  private failing = false;
  private stopped = false;

  constructor(private readonly o: PresenceOptions) {
    this.leaseMs = o.leaseSeconds * 1000;
    if (o.resume) {
      for (const [v, h] of Object.entries(o.resume.holds)) this.holds.set(v, h);
      this.lastGoodStart = o.resume.lastGoodStart;
    }
  }

  /** The holds and the fence deadline's origin, for the caretaker that keeps beating while the daemon is stopped. */
  handover(): Handover {
    return { backend: this.o.backend.name, holds: Object.fromEntries(this.holds), lastGoodStart: this.lastGoodStart };
  }

  get hostId(): string {
    return this.o.hostId;
  }

  /** Interval between heartbeats. */
  get intervalMs(): number {
    return Math.max(250, Math.floor(this.leaseMs / 6));
  }

  /** A heartbeat write that has not finished within this counts as failed. */
  private get writeTimeoutMs(): number {
    return Math.min(this.o.timeoutMs, Math.max(250, Math.floor(this.leaseMs / 4)));
  }

  /** Writes the first heartbeat and starts the timer. Fails (and can be called again) when the backend cannot be written. */
  async start(): Promise<void> {
    this.stopped = false;
    if (!this.ticker) {
      this.ticker = setInterval(() => void this.tick(), this.intervalMs);
      this.ticker.unref();
    }
    this.armFence(); // a resumed presence keeps the deadline of the process it took over from
    await this.publish();
  }

  /** Stops the timers. The file stays: attachments outlive the daemon, and expire a lease after its last beat. */
  stop(): void {
    this.stopped = true;
    clearInterval(this.ticker);
    clearTimeout(this.fenceTimer);
    this.ticker = undefined;
    this.fenceTimer = undefined;
  }

  holdOf(volume: string): Hold | undefined {
    return this.holds.get(volume);
  }

  /** Records a hold in memory only; the next publish() or beat writes it. */
  setHold(volume: string, hold: Hold | undefined): void {
    if (hold) this.holds.set(volume, hold);
    else this.holds.delete(volume);
  }

  /**
   * Writes this host's file with the current holds. Resolves once a write that began after the call
   * has landed; rejects if that write failed. Concurrent calls share writes.
   */
  publish(): Promise<void> {
    return this.writer.request();
  }

  private async write(): Promise<void> {
    const started = this.clock.now();
    const file: HostFile = {
      version: 1,
      host: this.o.hostId,
      incarnation: this.incarnation,
      beat: ++this.beat,
      leaseSeconds: this.o.leaseSeconds,
      volumes: Object.fromEntries(this.holds),
      writtenAt: new Date().toISOString(),
    };
    const work = async () => {
      if (!this.folderReady) {
        await this.o.backend.makeFolder(HOSTS_FOLDER, false);
        this.folderReady = true;
      }
      await this.o.backend.writeFile(HOSTS_FOLDER, `${this.o.hostId}.json`, Buffer.from(`${JSON.stringify(file)}\n`));
    };
    try {
      await withTimeout(work(), this.writeTimeoutMs, `renewing the heartbeat of host ${this.o.hostId} on backend ${this.o.backend.name}`);
    } catch (err) {
      if (!this.failing) this.o.log.warn('cannot renew this host\'s heartbeat on the backend', { backend: this.o.backend.name, error: (err as Error).message });
      this.failing = true;
      throw wrapError(err, 'BACKEND_UNAVAILABLE', `this host's heartbeat on backend ${this.o.backend.name} could not be written`);
    }
    if (this.failing) this.o.log.info('heartbeat renewed again', { backend: this.o.backend.name });
    this.failing = false;
    if (this.lastGoodStart === undefined || started > this.lastGoodStart) this.lastGoodStart = started;
    this.armFence();
  }

  /** After each good write: fence at half a lease after its start unless another good write comes first. */
  private armFence(): void {
    clearTimeout(this.fenceTimer);
    if (this.stopped || this.lastGoodStart === undefined) return;
    const due = this.lastGoodStart + this.leaseMs / 2 - this.clock.now();
    this.fenceTimer = setTimeout(() => void this.fenceIfLate(), Math.max(0, due));
    this.fenceTimer.unref();
  }

  private async fenceIfLate(): Promise<void> {
    if (this.lastGoodStart === undefined) return;
    const quiet = this.clock.now() - this.lastGoodStart;
    if (quiet < this.leaseMs / 2) return this.armFence();
    const lost = [...this.holds].filter(([, h]) => h !== 'shared').map(([v]) => v);
    if (lost.length === 0) return;
    for (const v of lost) this.holds.delete(v);
    const why = `this host could not renew its heartbeat on backend ${this.o.backend.name} for ${(quiet / 1000).toFixed(1)} s (half the ${this.o.leaseSeconds} s lease)`;
    this.o.log.error('fencing: stopping the data path of image volumes before another host may take them over', { backend: this.o.backend.name, volumes: lost, reason: why });
    await this.o.onLost(lost, why).catch((err: Error) => this.o.log.error('fencing failed', { backend: this.o.backend.name, error: err.message }));
  }

  /** One heartbeat, then a look at every other host's file. */
  async tick(): Promise<void> {
    if (this.stopped) return;
    await this.publish().catch(() => undefined);
    await this.readAll().catch((err: Error) => this.o.log.debug('cannot read the other hosts\' heartbeats', { backend: this.o.backend.name, error: err.message }));
  }

  private observe(host: string, file: HostFile | undefined): Observation {
    const key = file ? `${file.incarnation}:${file.beat}` : 'absent';
    const prev = this.seen.get(host);
    const now = this.clock.now();
    if (!prev) {
      const fresh: Observation = { key, since: now, changed: false, file };
      this.seen.set(host, fresh);
      return fresh;
    }
    if (prev.key !== key) {
      prev.key = key;
      prev.since = now;
      prev.changed = true;
    }
    if (file) prev.file = file;
    return prev;
  }

  private readHost(host: string): Promise<HostFile | undefined> {
    return readHostFile(this.o.backend, host, this.o.timeoutMs);
  }

  /** Reads every other host's file now. */
  async readAll(): Promise<Map<string, HostFile>> {
    const out = new Map<string, HostFile>();
    for (const [host, file] of await readHostFiles(this.o.backend, this.o.timeoutMs, this.o.hostId)) {
      this.observe(host, file);
      if (file) out.set(host, file);
    }
    return out;
  }

  private leaseOf(host: string): number {
    return Math.max(this.leaseMs, (this.seen.get(host)?.file?.leaseSeconds ?? 0) * 1000);
  }

  /**
   * What is known now without reading. Dead: the file has not changed for a whole lease of this
   * host's clock. Alive: it changed within two of that host's heartbeat intervals. Anything between
   * (a host gone quiet, or one seen only once) is not known yet.
   */
  private verdict(host: string): Liveness | 'unknown' {
    const obs = this.seen.get(host);
    if (!obs) return 'unknown';
    const quiet = this.clock.now() - obs.since;
    if (quiet >= this.leaseOf(host)) return 'dead';
    const theirInterval = Math.max(250, ((obs.file?.leaseSeconds ?? this.o.leaseSeconds) * 1000) / 6);
    return obs.changed && quiet < 2 * theirInterval ? 'alive' : 'unknown';
  }

  /** How long (this host's monotonic clock) `host`'s heartbeat has stayed as it is now; undefined when this host never read it. */
  quietFor(host: string): number | undefined {
    const obs = this.seen.get(host);
    return obs ? this.clock.now() - obs.since : undefined;
  }

  /**
   * Whether `host` lives: read its file until it changes (alive: it beats now) or has stayed the
   * same for a whole lease of this host's clock (dead): sanlock's read, wait, read again. Earlier
   * readings count towards the lease, so a host watched long enough is judged at once. A live host
   * is recognised within one of its heartbeat intervals. At the deadline a host still unknown counts
   * as alive: refusing is the safe answer.
   */
  async judge(host: string, deadline: number): Promise<Liveness> {
    const first = this.observe(host, await this.readHost(host)).key;
    for (;;) {
      const obs = this.seen.get(host) as Observation;
      if (obs.key !== first) return 'alive';
      const untilDead = obs.since + this.leaseOf(host) - this.clock.now();
      if (untilDead <= 0) return 'dead';
      const left = deadline - this.clock.now();
      if (left <= 0) return 'alive';
      await this.clock.sleep(Math.max(50, Math.min(untilDead + 10, left, 500)));
      this.observe(host, await this.readHost(host));
    }
  }

  /** The other hosts whose file lists `volume`, each judged; only live ones are returned. */
  async liveHolders(volume: string, deadline: number): Promise<Holder[]> {
    const files = await this.readAll();
    const listing = [...files.values()].filter((f) => f.volumes[volume] !== undefined);
    const judged = await Promise.all(listing.map(async (f) => ({ host: f.host, hold: f.volumes[volume], life: await this.judge(f.host, deadline) })));
    return judged.filter((j) => j.life === 'alive').map(({ host, hold }) => ({ host, hold }));
  }

  /**
   * Takes the single-writer lease of an image volume. Publishes a claim, then reads every host: a
   * live holder refuses; of two live claims the host with the smaller id goes on (the other backs off
   * and tries again), so at most one host ends up exclusive. Waits for an undecided holder at most
   * until `deadline`.
   */
  async claimExclusive(volume: string, deadline: number): Promise<void> {
    if (this.holds.get(volume) === 'exclusive') return;
    for (let attempt = 0; ; attempt++) {
      this.holds.set(volume, 'claim');
      try {
        await this.publish();
      } catch (err) {
        this.holds.delete(volume);
        throw err;
      }
      let live: Holder[];
      try {
        live = await this.liveHolders(volume, deadline);
      } catch (err) {
        await this.release(volume);
        throw err;
      }
      const held = live.filter((h) => h.hold === 'exclusive' || h.hold === 'shared');
      if (held.length > 0) {
        await this.release(volume);
        throw leaseHeld(volume, held.map((h) => h.host), this.o.leaseSeconds);
      }
      const smallerClaims = live.filter((h) => h.hold === 'claim' && h.host < this.o.hostId);
      const biggerClaims = live.filter((h) => h.hold === 'claim' && h.host > this.o.hostId);
      if (smallerClaims.length === 0 && biggerClaims.length === 0) {
        this.holds.set(volume, 'exclusive');
        try {
          await this.publish();
        } catch (err) {
          await this.release(volume);
          throw err;
        }
        return;
      }
      // Back off for a smaller id; wait (keeping the claim) for a bigger one to hold or withdraw.
      if (smallerClaims.length > 0) await this.release(volume);
      if (this.clock.now() >= deadline) {
        await this.release(volume);
        throw leaseHeld(volume, live.map((h) => h.host), this.o.leaseSeconds);
      }
      await this.clock.sleep(150 + Math.floor(Math.random() * 350) + attempt * 50);
    }
  }

  /**
   * After a restart: this host still has the image mounted and published it as exclusive from its
   * ledger before its first beat. Confirm that no other live host took it while this daemon was
   * away; if one did, that host holds it now, and this host must yield (LEASE_HELD).
   */
  async confirmExclusive(volume: string, deadline: number): Promise<void> {
    this.holds.set(volume, 'exclusive');
    await this.publish();
    const rivals = (await this.liveHolders(volume, deadline)).filter((h) => h.hold === 'exclusive');
    if (rivals.length > 0) {
      this.holds.delete(volume);
      await this.publish().catch(() => undefined);
      throw leaseHeld(volume, rivals.map((h) => h.host), this.o.leaseSeconds);
    }
  }

  /** Drops a hold and writes the file; a failed write is left to the next beat. */
  async release(volume: string): Promise<void> {
    this.holds.delete(volume);
    await this.publish().catch(() => undefined);
  }

  /** Other hosts' holds of a volume as last read, with the seconds since each host's file was seen to change. */
  clusterView(volume: string): Array<{ host: string; hold: Hold; heartbeatAgeSeconds: number; alive: boolean | undefined }> {
    const out: Array<{ host: string; hold: Hold; heartbeatAgeSeconds: number; alive: boolean | undefined }> = [];
    for (const [host, obs] of this.seen) {
      const hold = obs.file?.volumes[volume];
      if (!hold) continue;
      const v = this.verdict(host);
      out.push({ host, hold, heartbeatAgeSeconds: Math.round((this.clock.now() - obs.since) / 100) / 10, alive: v === 'unknown' ? undefined : v === 'alive' });
    }
    return out.sort((a, b) => a.host.localeCompare(b.host));
  }
}

/** One host's heartbeat file on a shared backend; undefined when it is missing or unreadable. */
export async function readHostFile(backend: Backend, host: string, timeoutMs: number): Promise<HostFile | undefined> {
  const raw = await withTimeout(backend.readFile(HOSTS_FOLDER, `${host}.json`), timeoutMs, `reading the heartbeat of host ${host}`).catch((err: unknown) => {
    throw wrapError(err, 'BACKEND_UNAVAILABLE', `the heartbeat of host ${host} on backend ${backend.name} could not be read`);
  });
  return parseHostFile(raw);
}

/** Every host's heartbeat file on a shared backend (but `except`'s), read in parallel, by host id. */
export async function readHostFiles(backend: Backend, timeoutMs: number, except?: string): Promise<Map<string, HostFile | undefined>> {
  const names = await withTimeout(backend.listFiles(HOSTS_FOLDER), timeoutMs, `listing the hosts of backend ${backend.name}`).catch((err: unknown) => {
    throw wrapError(err, 'BACKEND_UNAVAILABLE', `the heartbeats of the hosts sharing backend ${backend.name} could not be read`);
  });
  const hosts = names.filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -'.json'.length)).filter((h) => h !== except);
  return new Map(await Promise.all(hosts.map(async (host) => [host, await readHostFile(backend, host, timeoutMs)] as const)));
}

function parseHostFile(raw: Buffer | undefined): HostFile | undefined {
  if (!raw || raw.length === 0) return undefined;
  try {
    const parsed = hostFileSchema.safeParse(JSON.parse(raw.toString('utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

function leaseHeld(volume: string, hosts: string[], leaseSeconds: number): NetvolError {
  const list = [...new Set(hosts)].join(', ');
  return new NetvolError(
    'LEASE_HELD',
    `volume ${volume} is attached on host ${list}: an image volume has one writer at a time; stop its containers there first (a host that is gone stops counting ${leaseSeconds} s after its last heartbeat)`,
    { volume },
  );
}
