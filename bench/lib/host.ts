/** Facts about the machine a run measured, for the results header. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

export interface HostFacts {
  date: string;
  kernel: string;
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  loadAverage: string;
  commit: string;
}

export function hostFacts(repoRoot: string): HostFacts {
  const git = spawnSync('git', ['-C', repoRoot, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  const dirty = spawnSync('git', ['-C', repoRoot, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' });
  const commit = git.status === 0 ? `${git.stdout.trim()}${dirty.stdout.trim() ? ' (with uncommitted changes)' : ''}` : 'unknown';
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    kernel: `${os.type()} ${os.release()}`,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    loadAverage: os.loadavg().map((l) => l.toFixed(2)).join(' '),
    commit,
  };
}

/**
 * Whether `echo 3 > /proc/sys/vm/drop_caches` works here (root, not in a restricted container).
 * `warm`: the memory it frees is warmed again (warmFreeMemory) for the measurement that follows;
 * false when that measurement warms it itself (ddWrite does).
 */
export function dropCaches(warm = true): boolean {
  try {
    spawnSync('sync');
    fs.writeFileSync('/proc/sys/vm/drop_caches', '3\n');
  } catch {
    return false;
  }
  if (warm) warmFreeMemory();
  return true;
}

/** At most this much is warmed: a 1 GiB run fills the server's page cache and the client's. */
const WARM_MIB = 3072;

/**
 * Fills a tmpfs file with zeros and removes it, so that the next measurement allocates memory the
 * machine has touched a moment ago. Virtual machines that hand free memory back to their host
 * (free page reporting, a balloon) fault every returned page in again on its first use: measured
 * here, a 2 GiB tmpfs fill ran at 900 MiB/s after 10 s idle and at 2,000–2,800 MiB/s right after
 * this; a 1 GiB dd on the disk at 720 against 1,390. Without it each variant's figure depended on
 * how long the memory it got had been free. Skipped (a no-op) when /dev/shm is missing or small.
 */
export function warmFreeMemory(): void {
  let mib: number;
  try {
    const st = fs.statfsSync('/dev/shm');
    const available = /MemAvailable:\s+(\d+) kB/.exec(fs.readFileSync('/proc/meminfo', 'utf8'));
    const memMib = available ? Number(available[1]) / 1024 : 0;
    mib = Math.floor(Math.min(WARM_MIB, (st.bavail * st.bsize) / 2 ** 20 / 2, memMib / 4));
  } catch {
    return;
  }
  if (mib < 64) return;
  const file = `/dev/shm/netvol-bench-warm-${process.pid}`;
  try {
    spawnSync('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', `count=${mib}`, 'status=none']);
  } finally {
    fs.rmSync(file, { force: true });
  }
}
