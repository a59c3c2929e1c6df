/** Work a backend started and does not wait for, drained (for a bounded time) at close. */
export class BackgroundTasks {
  private readonly pending = new Set<Promise<unknown>>();

  track(p: Promise<unknown>): void {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  async drain(ms = 5000): Promise<void> {
    await Promise.race([Promise.all([...this.pending]), new Promise((r) => setTimeout(r, ms).unref())]);
  }
}
