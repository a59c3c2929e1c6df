/**
 * Builds sftp backends in-process against the harness's sshd, the way the daemon builds them from
 * its config (the options go through the type's own schema).
 */
import * as fs from 'node:fs';
import { sftpBackendType } from '../../../src/backends/sftp';
import { buildBackend, type BackendUnderTest } from '../../harness/backend-under-test';
import { killAllMentioning, removeTree } from '../../harness/dockerd';
import { sftpOptions, type Sshd } from '../../harness/sshd';

export type { BackendUnderTest };
export { rejection } from '../../harness/backend-under-test';
export { sftpOptions };

export function makeBackend(sshd: Sshd, extra: Record<string, unknown> = {}, opts: { timeoutMs?: number; workDir?: string } = {}): BackendUnderTest {
  return buildBackend(sftpBackendType, sftpOptions(sshd, extra), {
    name: 'srv',
    // Outside sshd's folder: sshfs mounts there must not propagate into sshd's namespace.
    workDir: opts.workDir ?? fs.mkdtempSync('/tmp/nvw-'),
    timeoutMs: opts.timeoutMs,
    removeWorkDir(workDir) {
      killAllMentioning(workDir);
      removeTree(workDir);
    },
  });
}
