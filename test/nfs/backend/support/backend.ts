/**
 * Builds nfs backends in-process against a harness ganesha, the way the daemon builds them from its
 * config (the options go through the type's own schema). Attachments use dist/fuse-nfs/main.js:
 * build first.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { nfsBackendType } from '../../../../src/backends/nfs';
import { buildBackend, type BackendUnderTest } from '../../../harness/backend-under-test';
import { nfsOptions, type GaneshaServer } from '../../../harness/ganesha';

export type { BackendUnderTest };
export { rejection } from '../../../harness/backend-under-test';
export { nfsOptions };

export function makeBackend(g: GaneshaServer, extra: Record<string, unknown> = {}, opts: { timeoutMs?: number; workDir?: string; name?: string } = {}): BackendUnderTest {
  return buildBackend(nfsBackendType, nfsOptions(g, extra), {
    name: opts.name ?? 'nas',
    workDir: opts.workDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'nvnfs-')),
    timeoutMs: opts.timeoutMs,
    removeWorkDir: cleanupWorkDir,
  });
}

/** Unmounts every mount under `workDir`, kills FUSE servers naming it, removes it. */
export function cleanupWorkDir(workDir: string): void {
  const mounts = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((mp) => mp && mp.startsWith(`${workDir}/`));
  for (const mp of mounts.reverse()) {
    try {
      execFileSync('umount', ['-l', mp], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
  }
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(workDir)) process.kill(Number(entry), 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  fs.rmSync(workDir, { recursive: true, force: true });
}
