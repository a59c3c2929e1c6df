/**
 * Prometheus metrics (config `metrics: { listen }`): a registry whose scrapes format what is already
 * known, a background sampler that measures the volumes, timings from the operations' observer, and
 * an HTTP server on exactly the configured address. See README.md in this folder.
 */
import type { StatsApi } from '../driver';
import { Logger, operationTimings, OperationTimings } from '../log';
import { parseListen } from './listen';
import { NetvolMetrics } from './registry';
import { StatsSampler } from './sampler';
import { MetricsServer, serveMetrics } from './server';

export { parseListen, listenFailure, ListenAddress } from './listen';
export { NetvolMetrics, DURATION_BUCKETS } from './registry';
export { StatsSampler } from './sampler';
export { serveMetrics, MetricsServer } from './server';
export { recordBackupSuccess } from './backups';

/** Volumes measured at once by a sweep. */
export const SWEEP_CONCURRENCY = 4;

export interface MetricsOptions {
  listen: string;
  /** Pause between sweeps of every volume, in seconds. */
  intervalSeconds: number;
  hostId: string;
  log: Logger;
  observer?: OperationTimings;
}

/** The running metrics: served from start() on; volumes measured once attach() gives them a driver. */
export class Metrics {
  readonly registry: NetvolMetrics;
  private sampler?: StatsSampler;
  private unsubscribe?: () => void;

  private constructor(
    private readonly o: MetricsOptions,
    readonly server: MetricsServer,
    registry: NetvolMetrics,
  ) {
    this.registry = registry;
  }

  /** Parses the listen address and binds it, or rejects with a CONFIG error (a bad address, a port in use); observes timings from then on. */
  static async start(o: MetricsOptions): Promise<Metrics> {
    const address = parseListen(o.listen);
    const registry = new NetvolMetrics(o.hostId);
    const server = await serveMetrics(address, registry, o.log);
    const m = new Metrics(o, server, registry);
    m.unsubscribe = (o.observer ?? operationTimings).subscribe((t) => registry.observe(t));
    const bound = server.address();
    o.log.info('serving Prometheus metrics', { listen: `${bound.host.includes(':') ? `[${bound.host}]` : bound.host}:${bound.port}`, path: '/metrics', intervalSeconds: o.intervalSeconds });
    return m;
  }

  /** Starts measuring the driver's volumes in the background. */
  attach(source: StatsApi): void {
    this.registry.attach(source);
    this.sampler = new StatsSampler(source, this.registry, { intervalMs: this.o.intervalSeconds * 1000, concurrency: SWEEP_CONCURRENCY, log: this.o.log });
    this.sampler.start();
  }

  async close(): Promise<void> {
    this.unsubscribe?.();
    await this.sampler?.stop();
    await this.server.close();
  }
}
