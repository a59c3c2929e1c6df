/**
 * Serialised, coalesced runs of one write: `request()` resolves once a run that began after the call
 * has finished (and rejects if that run failed). Bursts of requests cost one run each, never one per
 * request, and two runs never overlap.
 */
export class CoalescedWriter {
  private running: Promise<void> | undefined;
  private queued: Promise<void> | undefined;

  constructor(private readonly write: () => Promise<void>) {}

  request(): Promise<void> {
    if (this.queued) return this.queued;
    if (!this.running) return this.start();
    const after = this.running;
    this.queued = after.then(
      () => this.startQueued(),
      () => this.startQueued(),
    );
    return this.queued;
  }

  private startQueued(): Promise<void> {
    this.queued = undefined;
    return this.start();
  }

  private start(): Promise<void> {
    this.running = this.write().finally(() => (this.running = undefined));
    return this.running;
  }
}
