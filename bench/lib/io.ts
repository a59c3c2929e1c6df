/** Timed sequential I/O with dd, the same command for netvol and for its baseline. */
import fs from 'node:fs';
import { run } from '../../test/harness/dockerd';
import { dropCaches, warmFreeMemory } from './host';
import { elapsedMs } from './stats';

export const MiB = 2 ** 20;

/** Flushes what is dirty, then writes `mib` MiB of zeros to `file` with 1 MiB blocks and fsync before dd exits; resolves with MiB/s. */
export async function ddWrite(file: string, mib: number): Promise<number> {
  // Start from a clean page cache: dirty pages of earlier steps must not be flushed on our clock.
  await run('sync', [], { timeoutMs: 600_000 });
  warmFreeMemory();
  const t = process.hrtime.bigint();
  const r = await run('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', `count=${mib}`, 'conv=fsync'], { timeoutMs: 600_000 });
  const ms = elapsedMs(t);
  if (r.code !== 0) throw new Error(`dd writing ${file} exited ${r.code}: ${r.stderr.trim()}`);
  return mib / (ms / 1000);
}

/**
 * Drops the page cache (when allowed), then reads `file` with 1 MiB blocks; resolves with MiB/s,
 * or undefined when caches cannot be dropped (a cached read measures memory, not the volume).
 */
export async function ddReadCold(file: string): Promise<number | undefined> {
  if (!dropCaches()) return undefined;
  const size = fs.statSync(file).size / MiB;
  const t = process.hrtime.bigint();
  const r = await run('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M'], { timeoutMs: 600_000 });
  const ms = elapsedMs(t);
  if (r.code !== 0) throw new Error(`dd reading ${file} exited ${r.code}: ${r.stderr.trim()}`);
  return size / (ms / 1000);
}

/** How an image volume is mounted: device, loop direct-I/O flag, mount options. For notes. */
export function describeMount(mountpoint: string): string {
  const text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    const fields = left?.split(' ') ?? [];
    if (fields[4] !== mountpoint) continue;
    const [fsType, source, superOpts] = (right ?? '').split(' ');
    let dio = '';
    const loop = /^\/dev\/(loop\d+)$/.exec(source ?? '');
    if (loop) {
      try {
        dio = `, loop dio=${fs.readFileSync(`/sys/block/${loop[1]}/loop/dio`, 'utf8').trim()}`;
      } catch {
        /* older kernels have no dio attribute */
      }
    }
    return `${fsType} on ${source}${dio}, options ${fields[5]},${superOpts}`;
  }
  return `${mountpoint} is not a mountpoint`;
}

/** True when both paths are on the same filesystem (so the raw baseline is the volumes' own disk). */
export function sameFilesystem(a: string, b: string): boolean {
  return fs.statSync(a).dev === fs.statSync(b).dev;
}

