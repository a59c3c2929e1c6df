/**
 * Builds sftp backends in-process against the harness's sshd, the way the daemon builds them from
 * its config (the options go through the type's own schema).
 */
import * as fs from 'node:fs';
import type { Backend } from '../../../src/backends';
import { sftpBackendType } from '../../../src/backends/sftp';
import { NetvolError } from '../../../src/errors';
import { capturingLogger } from '../../harness/logs';
import { killAllMentioning, removeTree } from '../../harness/dockerd';
import { sftpOptions, type Sshd } from '../../harness/sshd';

export interface BackendUnderTest {
  backend: Backend;
  workDir: string;
  /** Every log line the backend wrote. */
  logs: string[];
  /** Closes the backend, unmounts what it left attached, removes its workDir. */
  cleanup(): Promise<void>;
}

export { sftpOptions };

export function makeBackend(sshd: Sshd, extra: Record<string, unknown> = {}, opts: { timeoutMs?: number; workDir?: string } = {}): BackendUnderTest {
  const options = sftpBackendType.optionsSchema.parse(sftpOptions(sshd, extra));
  // Outside sshd's folder: sshfs mounts there must not propagate into sshd's namespace.
  const workDir = opts.workDir ?? fs.mkdtempSync('/tmp/nvw-');
  const { logger, logs } = capturingLogger();
  const backend = sftpBackendType.create(options, {
    name: 'srv',
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
      killAllMentioning(workDir);
      removeTree(workDir);
    },
  };
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
