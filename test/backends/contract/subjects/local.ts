/** The local backend: a folder of this host, no server. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { localBackendType } from '../../../../src/backends/local/local-backend';
import { buildBackend } from '../../../harness/backend-under-test';
import type { Made, MakeOptions, Subject } from '../subject';

function makeAt(root: string, o: MakeOptions = {}): Made {
  return buildBackend(localBackendType, { path: root }, {
    name: 'local',
    workDir: fs.mkdtempSync(path.join(os.tmpdir(), 'nvlw-')),
    timeoutMs: o.timeoutMs,
    removeWorkDir: (workDir) => fs.rmSync(workDir, { recursive: true, force: true }),
  });
}

export function localSubject(): Subject {
  let base = '';
  return {
    type: 'local',
    name: 'local',
    async start() {
      base = fs.mkdtempSync(path.join(os.tmpdir(), 'nvlocal-'));
    },
    async stop() {
      if (base) fs.rmSync(base, { recursive: true, force: true });
    },
    make: (o = {}) => makeAt(path.join(base, o.folder ?? 'volumes'), o),
    onServer: (...parts) => path.join(base, ...parts),
    freeSlackBytes: 64 * 1024 * 1024,
    usageCounts: 'allocated',
    async recreate(folder, inside) {
      fs.rmSync(path.join(base, folder), { recursive: true, force: true });
      fs.mkdirSync(path.join(base, folder, inside), { recursive: true });
    },
    async smallDisk() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nvlocal-full-'));
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', dir]);
      return {
        dir,
        make: () => makeAt(path.join(dir, 'volumes')),
        async dispose() {
          execFileSync('umount', ['-l', dir]);
          fs.rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  };
}
