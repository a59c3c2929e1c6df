/**
 * What the chaos runs believe the daemon holds, kept the way dockerd keeps it: a Mount counts only
 * once it was acknowledged, an Unmount takes one count away only once it was acknowledged, and
 * nothing else changes a count. Names and mount IDs are the daemon's own keys.
 */
export class MountModel {
  private readonly counts = new Map<string, Map<string, number>>();

  mounted(name: string, id: string): void {
    let ids = this.counts.get(name);
    if (!ids) this.counts.set(name, (ids = new Map()));
    ids.set(id, (ids.get(id) ?? 0) + 1);
  }

  /** The daemon answers an Unmount of an ID it does not hold with success and changes nothing: so does the model. */
  unmounted(name: string, id: string): void {
    const ids = this.counts.get(name);
    const n = ids?.get(id) ?? 0;
    if (!ids || n === 0) return;
    if (n === 1) ids.delete(id);
    else ids.set(id, n - 1);
    if (ids.size === 0) this.counts.delete(name);
  }

  /** Mount ID → count for one volume (empty when nothing holds it). */
  mountsOf(name: string): Record<string, number> {
    return Object.fromEntries(this.counts.get(name) ?? []);
  }

  total(name: string): number {
    let n = 0;
    for (const c of this.counts.get(name)?.values() ?? []) n += c;
    return n;
  }

  /** Volumes the model says are mounted, with their mount IDs. */
  held(): Array<{ name: string; id: string; count: number }> {
    const out: Array<{ name: string; id: string; count: number }> = [];
    for (const [name, ids] of this.counts) for (const [id, count] of ids) out.push({ name, id, count });
    return out;
  }

  names(): string[] {
    return [...this.counts.keys()];
  }

  /** Adopts what the daemon holds for one volume (after a restart left an in-flight Mount undecided). */
  adopt(name: string, mounts: Record<string, number>): void {
    const ids = new Map(Object.entries(mounts).filter(([, n]) => n > 0));
    if (ids.size === 0) this.counts.delete(name);
    else this.counts.set(name, ids);
  }
}
