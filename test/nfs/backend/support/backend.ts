/**
 * Builds nfs backends in-process against a harness ganesha, the way the daemon builds them from its
 * config (the options go through the type's own schema). Attachments use dist/fuse-nfs/main.js:
 * build first.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Backend } from '../../../../src/backends';
import { nfsBackendType } from '../../../../src/backends/nfs';
import { NetvolError } from '../../../../src/errors';
import { capturingLogger } from '../../../harness/logs';
import { nfsOptions, type GaneshaServer } from '../../../harness/ganesha';

export interface BackendUnderTest {
  backend: Backend;
  workDir: string;
  logs: string[];
  cleanup(): Promise<void>;
}

export { nfsOptions };

export function makeBackend(g: GaneshaServer, extra: Record<string, unknown> = {}, opts: { timeoutMs?: number; workDir?: string; name?: string } = {}): BackendUnderTest {
  const options = nfsBackendType.optionsSchema.parse(nfsOptions(g, extra));
  const workDir = opts.workDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'nvnfs-'));
  const { logger, logs } = capturingLogger();
  const backend = nfsBackendType.create(options, {
    name: opts.name ?? 'nas',
    hostId: 'host-a',
    workDir,
    timeoutMs: opts.timeoutMs ?? 8000,
    logger,
  });
  return {
    backend,
    workDir,
    logs,
    async cleanup() {
      await backend.close().catch(() => undefined);
      cleanupWorkDir(workDir);
    },
  };
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

/** The NetvolError a promise rejects with (fails the test if it resolves or throws something else). */
export async function rejection(p: Promise<unknown>): Promise<NetvolError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof NetvolError) return err;
    throw new Error(`expected a NetvolError, got ${String((err as Error)?.stack ?? err)}`);
  }
  throw new Error('expected the call to fail, but it succeeded');
}
