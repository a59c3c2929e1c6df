import { Gauge, Histogram, Registry } from 'prom-client';
import type { StatsApi, StatsSweep, VolumeRef } from '../driver';
import type { OperationTiming } from '../log';
import { backupSuccesses, forgetBackups, recordBackupSuccess } from './backups';
import { Block, EMPTY_BLOCK, formatBlock } from './block';

type VolumeLabels = 'volume' | 'backend';

/** Seconds an operation takes, from a counted Mount (milliseconds) to a Create that waits for a lease (up to 120 s). */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** Volumes set per turn of the event loop when a sweep's results are applied: thousands of volumes never block Docker's requests for long. */
const APPLY_CHUNK = 500;

/**
 * netvol's metrics, named after kubelet's volume stats and node_exporter, in three prom-client
 * registries by how often their text changes; every series carries `host` (this host's hostId).
 *
 * - sweep: per-volume usage, inodes and health, backend_up and the sweep's own time — set only
 *   when a background sweep ends (applySweep); their text is formatted once per sweep.
 * - host: mount counts and leases, read from memory — formatted again only after an operation
 *   (any timing observed) or a sweep, so a quiet daemon's scrape formats nothing per volume.
 * - live: operation timings and backup times, small, formatted at every scrape.
 *
 * A scrape joins the three texts; it never measures anything.
 */
export class NetvolMetrics {
  private readonly sweepRegistry = new Registry();
  private readonly hostRegistry = new Registry();
  private readonly liveRegistry = new Registry();
  private source?: StatsApi;
  /** The volumes of the last sweep, by name. */
  private swept = new Map<string, VolumeRef>();
  /** Formatted texts; undefined when they must be formatted again. */
  private sweepText?: Promise<Block>;
  private hostText?: Promise<Block>;
  /** A sweep's results are being set: scrapes meanwhile serve the previous sweep's text. */
  private applying = false;

  private readonly capacity = this.volumeGauge('netvol_volume_capacity_bytes', 'Capacity of the volume in bytes: an image volume\'s size; a folder volume\'s used plus available bytes');
  private readonly used = this.volumeGauge('netvol_volume_used_bytes', 'Bytes used in the volume (as its Status shows): inside a mounted image, else the last measurement or what the image occupies; a folder volume\'s allocated bytes');
  private readonly available = this.volumeGauge('netvol_volume_available_bytes', 'Bytes the volume can still take');
  private readonly inodes = this.volumeGauge('netvol_volume_inodes', 'Inodes of the filesystem the volume is mounted from on this host (only while mounted here)');
  private readonly inodesFree = this.volumeGauge('netvol_volume_inodes_free', 'Free inodes of the filesystem the volume is mounted from on this host (only while mounted here)');
  private readonly healthy = this.volumeGauge('netvol_volume_healthy', '1 when this host\'s attachment of the volume works, 0 when it does not (only while attached here)');
  private readonly backendUp = new Gauge<'backend'>({
    name: 'netvol_backend_up',
    help: '1 when the last sweep could list the backend, else 0',
    labelNames: ['backend'],
    registers: [this.sweepRegistry],
  });
  private readonly sweepAt = new Gauge({
    name: 'netvol_volume_stats_timestamp_seconds',
    help: 'Unix time at which the last sweep that measured the per-volume usage, inodes and health (and backend_up) ended: their staleness',
    registers: [this.sweepRegistry],
  });
  private readonly sweepDuration = new Gauge({
    name: 'netvol_volume_stats_sweep_duration_seconds',
    help: 'How long the last sweep of every volume took',
    registers: [this.sweepRegistry],
  });
  private readonly sweepFailures = new Gauge({
    name: 'netvol_volume_stats_failures',
    help: 'Volumes the last sweep could not measure (each logged at debug)',
    registers: [this.sweepRegistry],
  });
  private readonly mounts: Gauge<VolumeLabels> = new Gauge<VolumeLabels>({
    name: 'netvol_volume_mounts',
    help: 'Mounts of the volume on this host (container mount IDs, counted, and admin holds)',
    labelNames: ['volume', 'backend'],
    registers: [this.hostRegistry],
    collect: () => this.collectHostFacts(this.mounts, (f) => f.mounts),
  });
  private readonly leaseHeld: Gauge<VolumeLabels> = new Gauge<VolumeLabels>({
    name: 'netvol_lease_held',
    help: '1 when this host holds the single-writer lease of the image volume on a shared backend, else 0',
    labelNames: ['volume', 'backend'],
    registers: [this.hostRegistry],
    collect: () => this.collectHostFacts(this.leaseHeld, (f) => (f.leaseHeld === undefined ? undefined : f.leaseHeld ? 1 : 0)),
  });
  private readonly duration = new Histogram<'operation' | 'backend' | 'result'>({
    name: 'netvol_operation_duration_seconds',
    help: 'Duration of volume operations (Docker\'s verbs and admin operations) on this host, waiting for the volume\'s lock included; result is ok or the error code',
    labelNames: ['operation', 'backend', 'result'],
    buckets: DURATION_BUCKETS,
    registers: [this.liveRegistry],
  });
  private readonly backupLast: Gauge<VolumeLabels> = new Gauge<VolumeLabels>({
    name: 'netvol_backup_last_success_timestamp_seconds',
    help: 'Unix time of the last successful backup of the volume taken through this daemon (since it started)',
    labelNames: ['volume', 'backend'],
    registers: [this.liveRegistry],
    collect: () => {
      this.backupLast.reset();
      for (const b of backupSuccesses()) this.backupLast.set({ volume: b.volume, backend: b.backend }, b.atSeconds);
    },
  });

  constructor(hostId: string) {
    for (const r of [this.sweepRegistry, this.hostRegistry, this.liveRegistry]) r.setDefaultLabels({ host: hostId });
  }

  get contentType(): string {
    return this.liveRegistry.contentType;
  }

  /** Where the in-memory facts (mount counts, leases) are read. */
  attach(source: StatsApi): void {
    this.source = source;
    this.hostText = undefined;
  }

  /** The text of one scrape. */
  async scrape(): Promise<string> {
    return Buffer.concat(await this.scrapeParts(false)).toString('utf8');
  }

  /**
   * One scrape as parts to send one after another: plain text, or gzip members (which together are
   * one gzip stream). Each block is formatted (and compressed) again only when it changed.
   */
  async scrapeParts(gzipped: boolean): Promise<Buffer[]> {
    if (!this.applying) this.sweepText ??= formatBlock(this.sweepRegistry);
    this.hostText ??= formatBlock(this.hostRegistry);
    const blocks = await Promise.all([this.sweepText ?? EMPTY_BLOCK, this.hostText, formatBlock(this.liveRegistry)]);
    return gzipped ? Promise.all(blocks.map((b) => b.gzipped())) : blocks.map((b) => b.raw);
  }

  /** One operation's timing (a subscriber of the observer, log/timings.ts). */
  observe(t: OperationTiming): void {
    this.duration.observe({ operation: t.operation, backend: t.backend, result: t.result }, t.durationSeconds);
    this.hostText = undefined; // an operation may have changed a mount count or a lease
    if (t.result !== 'ok' || !t.volume) return;
    if (t.operation === 'backup') recordBackupSuccess(t.volume, t.backend);
    if (t.operation === 'remove') this.forget(t.volume, t.backend);
  }

  /** A sweep's results replace the previous ones (set a chunk of volumes per turn of the event loop). */
  async applySweep(sweep: StatsSweep, endedAt: Date, durationSeconds: number): Promise<void> {
    // Scrapes meanwhile serve the previous sweep's text, formatted before anything is changed.
    this.sweepText ??= formatBlock(this.sweepRegistry);
    await this.sweepText;
    this.applying = true;
    try {
      const gauges = [this.capacity, this.used, this.available, this.inodes, this.inodesFree, this.healthy];
      for (const g of gauges) g.reset();
      this.backendUp.reset();
      const swept = new Map<string, VolumeRef>();
      let failures = 0;
      for (let i = 0; i < sweep.volumes.length; i++) {
        if (i > 0 && i % APPLY_CHUNK === 0) await new Promise((r) => setImmediate(r));
        const v = sweep.volumes[i];
        const labels = { volume: v.name, backend: v.backend };
        swept.set(v.name, { name: v.name, backend: v.backend, layout: v.layout });
        if (v.error) failures++;
        if (v.capacityBytes !== undefined) this.capacity.set(labels, v.capacityBytes);
        if (v.usedBytes !== undefined) this.used.set(labels, v.usedBytes);
        if (v.availableBytes !== undefined) this.available.set(labels, v.availableBytes);
        if (v.inodes !== undefined) this.inodes.set(labels, v.inodes);
        if (v.inodesFree !== undefined) this.inodesFree.set(labels, v.inodesFree);
        if (v.healthy !== undefined) this.healthy.set(labels, v.healthy ? 1 : 0);
      }
      for (const b of sweep.backends) this.backendUp.set({ backend: b.name }, b.up ? 1 : 0);
      this.swept = swept;
      this.sweepAt.set(endedAt.getTime() / 1000);
      this.sweepDuration.set(durationSeconds);
      this.sweepFailures.set(failures);
    } finally {
      this.applying = false;
      // Formatted (and compressed) now, in the background, so that no scrape pays for it.
      this.sweepText = formatBlock(this.sweepRegistry);
      this.hostText = undefined;
    }
    await (await this.sweepText).gzipped();
  }

  /** A volume removed on this host: its series go at once rather than at the next sweep. */
  private forget(volume: string, backend: string): void {
    const labels = { volume, backend };
    for (const g of [this.capacity, this.used, this.available, this.inodes, this.inodesFree, this.healthy]) g.remove(labels);
    if (this.swept.get(volume)?.backend === backend) this.swept.delete(volume);
    forgetBackups(volume, backend);
    if (!this.applying) this.sweepText = undefined; // else the sweep being applied formats it again when it ends
  }

  /** One in-memory fact (mount count, lease) of every known volume (the last sweep's and this host's). */
  private collectHostFacts(gauge: Gauge<VolumeLabels>, value: (facts: { mounts: number; leaseHeld?: boolean }) => number | undefined): void {
    gauge.reset();
    const source = this.source;
    if (!source) return;
    const seen = new Set<string>();
    const one = (ref: VolumeRef) => {
      seen.add(ref.name);
      const v = value(source.hostFacts(ref));
      if (v !== undefined) gauge.set({ volume: ref.name, backend: ref.backend }, v);
    };
    for (const ref of this.swept.values()) one(ref);
    for (const ref of source.volumesHere()) if (!seen.has(ref.name)) one(ref);
  }

  private volumeGauge(name: string, help: string): Gauge<VolumeLabels> {
    return new Gauge<VolumeLabels>({ name, help, labelNames: ['volume', 'backend'], registers: [this.sweepRegistry] });
  }
}
