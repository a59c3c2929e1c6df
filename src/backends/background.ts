import { randomBytes } from 'node:crypto';

/**
 * Removing a large volume can outlast any call timeout, so networked backends first rename its
 * folder to a trash name (instant), then delete the tree in the background; trash left by a
 * stopped daemon is emptied at the next start.
 */
export const TRASH_PREFIX = '.netvol-trash-';

/** A fresh trash name for a volume's folder: the prefix, as much of the name as fits in 255 bytes, a random suffix. */
export function trashName(volume: string): string {
  const suffix = `-${randomBytes(4).toString('hex')}`;
  const room = 255 - TRASH_PREFIX.length - suffix.length;
  return `${TRASH_PREFIX}${volume.slice(0, room)}${suffix}`;
}

/**
 * writeFile() of a networked backend writes `<file>.<12 hex>.tmp` next to the target, then renames
 * it over the target: listFiles() must not show such a file, left behind or in flight.
 */
export function tempName(file: string): string {
  return `${file}.${randomBytes(6).toString('hex')}.tmp`;
}

export function isTempName(name: string): boolean {
  return /\.[0-9a-f]{12}\.tmp$/.test(name);
}

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
