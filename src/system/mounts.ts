import { promises as fs } from 'node:fs';
import { run } from './exec';

export interface MountEntry {
  mountPoint: string;
  fsType: string;
  source: string;
  root: string;
  options: string;
}

/** Decodes the octal escapes (\040 for space…) the kernel uses in mountinfo fields. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** The kernel's mount table for this process's mount namespace. */
export async function readMountTable(): Promise<MountEntry[]> {
  const text = await fs.readFile('/proc/self/mountinfo', 'utf8');
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [left, right] = line.split(' - ');
    if (!right) continue;
    const l = left.split(' ');
    const r = right.split(' ');
    entries.push({ root: unescape(l[3]), mountPoint: unescape(l[4]), options: l[5], fsType: r[0], source: unescape(r[1]), });
  }
  return entries;
}

export async function findMount(mountPoint: string, table?: MountEntry[]): Promise<MountEntry | undefined> {
  const all = table ?? (await readMountTable());
  // The last entry wins when mounts are stacked on one point.
  for (let i = all.length - 1; i >= 0; i--) if (all[i].mountPoint === mountPoint) return all[i];
  return undefined;
}

export async function isMounted(mountPoint: string, table?: MountEntry[]): Promise<boolean> {
  return (await findMount(mountPoint, table)) !== undefined;
}

export async function bindMount(source: string, target: string, timeoutMs?: number): Promise<void> {
  await run('mount', ['--bind', source, target], { timeoutMs });
}

/** Unmounts `target`; `lazy` detaches it even if busy (used only for dead network mounts). */
export async function unmount(target: string, opts: { lazy?: boolean; timeoutMs?: number } = {}): Promise<void> {
  await run('umount', opts.lazy ? ['-l', target] : [target], { timeoutMs: opts.timeoutMs });
}

export interface FsUsage {
  sizeBytes: number;
  usedBytes: number;
  availableBytes: number;
}

/** Filesystem usage of the filesystem holding `path`, as df reports it. */
export async function fsUsage(path: string): Promise<FsUsage> {
  const s = await fs.statfs(path);
  const size = s.blocks * s.bsize;
  return { sizeBytes: size, usedBytes: (s.blocks - s.bfree) * s.bsize, availableBytes: s.bavail * s.bsize };
}
