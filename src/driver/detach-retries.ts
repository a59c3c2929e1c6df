import type { Logger } from '../log';

/**
 * Detaches that failed after the last mount ID was given up, tried again in the background.
 *
 * An Unmount answers within its budget even when the detach does not finish (a userspace NFS mount
 * committing what it holds on a busy host, a process outside Docker keeping the mountpoint busy):
 * dockerd forgets the mount ID either way. Left alone, the volume would stay attached, its helper
 * running and its attachment published on a shared backend, until the next Mount or start. Each
 * failed volume is tried again after the delays below (the last one repeats) until the detach
 * succeeds or there is nothing left to do; the attempt itself runs as a request under the volume's
 * lock and checks again that no mount ID came back in the meantime.
 */
export const DEFAULT_DETACH_RETRY_MS: readonly number[] = [5_000, 15_000, 30_000, 60_000];

/** One attempt: resolves when the volume is detached or no longer needs it; throws when it failed again. */
export type DetachAttempt = (name: string) => Promise<void>;

export class DetachRetries {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly attempts = new Map<string, number>();
  private readonly backends = new Map<string, string>();
  private closed = false;

  constructor(
    private readonly attempt: DetachAttempt,
    private readonly log: Logger,
    private readonly delaysMs: readonly number[] = DEFAULT_DETACH_RETRY_MS,
  ) {}

  /** After a failed detach: the next attempt is scheduled (once per volume; a later failure reschedules). */
  schedule(name: string, backend: string): void {
    if (this.closed || this.timers.has(name)) return;
    this.backends.set(name, backend);
    const n = this.attempts.get(name) ?? 0;
    const delay = this.delaysMs[Math.min(n, this.delaysMs.length - 1)];
    const timer = setTimeout(() => void this.run(name), delay);
    timer.unref();
    this.timers.set(name, timer);
    this.log.warn('the volume stays attached after a failed detach: netvol tries again in the background', { volume: name, backend, inSeconds: delay / 1000, attempt: n + 1 });
  }

  /** A detach that succeeded (or had nothing left to do) ends the retries of a volume. */
  forget(name: string): void {
    const timer = this.timers.get(name);
    if (timer) clearTimeout(timer);
    this.timers.delete(name);
    this.attempts.delete(name);
    this.backends.delete(name);
  }

  /** At daemon stop: no attempt starts any more (the next start detaches what has no mount ID left). */
  close(): void {
    this.closed = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  private async run(name: string): Promise<void> {
    this.timers.delete(name);
    if (this.closed) return;
    this.attempts.set(name, (this.attempts.get(name) ?? 0) + 1);
    try {
      await this.attempt(name);
      this.attempts.delete(name);
      this.backends.delete(name);
    } catch (err) {
      const backend = this.backends.get(name) ?? '';
      this.log.warn('a background detach failed again', { volume: name, backend, error: (err as Error).message });
      this.schedule(name, backend);
    }
  }
}
