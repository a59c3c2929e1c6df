import type { StatsApi } from '../driver';
import type { Logger } from '../log';
import type { NetvolMetrics } from './registry';

export interface SamplerOptions {
  /** Pause between the end of one sweep and the start of the next. */
  intervalMs: number;
  /** Volumes measured at once. */
  concurrency: number;
  log: Logger;
}

/**
 * Measures every volume in the background, one sweep after another with a pause between them
 * (never two at once), and hands each sweep to the metrics: a scrape never waits for a statvfs or
 * a backend. Each backend call inside a sweep is bounded by the daemon's timeout; stop() aborts
 * the sweep in progress.
 */
export class StatsSampler {
  private timer?: NodeJS.Timeout;
  private readonly controller = new AbortController();
  private running?: Promise<void>;

  constructor(
    private readonly source: StatsApi,
    private readonly metrics: NetvolMetrics,
    private readonly o: SamplerOptions,
  ) {}

  /** Starts the first sweep now. */
  start(): void {
    this.schedule(0);
  }

  /** Stops sweeping; resolves once the sweep in progress has stopped. */
  async stop(): Promise<void> {
    this.controller.abort();
    clearTimeout(this.timer);
    await this.running;
  }

  /** One sweep now (also what each timer runs). */
  async sweepOnce(): Promise<void> {
    const started = process.hrtime.bigint();
    try {
      const sweep = await this.source.sweepStats(this.o.concurrency, this.controller.signal);
      if (this.controller.signal.aborted) return;
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      await this.metrics.applySweep(sweep, new Date(), seconds);
      const down = sweep.backends.filter((b) => !b.up);
      if (down.length > 0) this.o.log.warn('metrics: backends could not be listed', { backends: down.map((b) => b.name), error: down[0].error });
      this.o.log.debug('metrics: volumes measured', { volumes: sweep.volumes.length, durationMs: Math.round(seconds * 1000) });
    } catch (err) {
      this.o.log.warn('metrics: measuring the volumes failed; the metrics keep the previous values', { error: (err as Error).message });
    }
  }

  private schedule(ms: number): void {
    if (this.controller.signal.aborted) return;
    this.timer = setTimeout(() => {
      this.running = this.sweepOnce().finally(() => this.schedule(this.o.intervalMs));
    }, ms);
    this.timer.unref();
  }
}
