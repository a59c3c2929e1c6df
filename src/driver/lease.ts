import { z } from 'zod';
import type { Backend } from '../backends';
import { NetvolError } from '../errors';
import type { Logger } from '../log';

/** The owner record of an image volume, next to its metadata on the backend. */
export const OWNER_FILE = 'owner.json';

const ownerSchema = z.object({ host: z.string(), heartbeatAt: z.string(), leaseSeconds: z.number().positive() });
type Owner = z.infer<typeof ownerSchema>;

/** How long after writing its record a host reads it back to see whether another host raced it. */
const SETTLE_MS = 300;

/**
 * Single-writer leases for image volumes on networked backends: attaching writes an owner record
 * {host, heartbeatAt}, renewed every third of the lease while attached. Another host may take the
 * volume over only once the heartbeat is older than the lease. Directory volumes take no lease.
 */
export class LeaseKeeper {
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly hostId: string,
    private readonly log: Logger,
  ) {}

  private key(backend: Backend, name: string): string {
    return `${backend.name}/${name}`;
  }

  private async read(backend: Backend, name: string): Promise<Owner | undefined> {
    const raw = await backend.readFile(name, OWNER_FILE);
    if (!raw) return undefined;
    try {
      const parsed = ownerSchema.safeParse(JSON.parse(raw.toString('utf8')));
      return parsed.success ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  }

  private write(backend: Backend, name: string, leaseSeconds: number): Promise<void> {
    const owner: Owner = { host: this.hostId, heartbeatAt: new Date().toISOString(), leaseSeconds };
    return backend.writeFile(name, OWNER_FILE, Buffer.from(`${JSON.stringify(owner)}\n`));
  }

  private refuseIfHeld(owner: Owner | undefined, name: string): void {
    if (!owner || owner.host === this.hostId) return;
    const age = (Date.now() - Date.parse(owner.heartbeatAt)) / 1000;
    if (Number.isFinite(age) && age < owner.leaseSeconds) {
      throw new NetvolError(
        'LEASE_HELD',
        `volume ${name} is attached on host ${owner.host} (heartbeat ${Math.max(0, Math.round(age))} s ago): an image volume has one writer at a time; stop its containers there, or wait ${owner.leaseSeconds} s after that host is gone`,
        { volume: name },
      );
    }
  }

  /** Takes (or renews) the lease and keeps it alive until release(). */
  async acquire(backend: Backend, name: string, leaseSeconds: number): Promise<void> {
    this.refuseIfHeld(await this.read(backend, name), name);
    await this.write(backend, name, leaseSeconds);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const after = await this.read(backend, name);
    if (after && after.host !== this.hostId) this.refuseIfHeld({ ...after, heartbeatAt: new Date().toISOString() }, name);
    this.startHeartbeat(backend, name, leaseSeconds);
  }

  private startHeartbeat(backend: Backend, name: string, leaseSeconds: number): void {
    const key = this.key(backend, name);
    clearInterval(this.timers.get(key));
    const timer = setInterval(() => {
      this.write(backend, name, leaseSeconds).catch((err: Error) =>
        this.log.warn('cannot renew the owner lease of an image volume', { volume: name, backend: backend.name, error: err.message }),
      );
    }, Math.max(1000, (leaseSeconds * 1000) / 3));
    timer.unref();
    this.timers.set(key, timer);
  }

  /** Stops renewing and removes the record if it is still ours. */
  async release(backend: Backend, name: string): Promise<void> {
    const key = this.key(backend, name);
    clearInterval(this.timers.get(key));
    this.timers.delete(key);
    const owner = await this.read(backend, name);
    if (owner?.host === this.hostId) await backend.removeFile(name, OWNER_FILE);
  }

  stopAll(): void {
    for (const timer of this.timers.values()) clearInterval(timer);
    this.timers.clear();
  }
}
