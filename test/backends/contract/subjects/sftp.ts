/** The sftp backend against a real OpenSSH sshd (test/harness/sshd.ts). */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort, startSshd, Sshd } from '../../../harness/sshd';
import { makeBackend } from '../../../sftp/support/backend';
import type { Subject } from '../subject';

/** sshd's pid and every process below it (its sessions), from /proc/<pid>/stat. */
function treeOf(pid: number): number[] {
  const out = [pid];
  const all = fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  for (let i = 0; i < out.length; i++) {
    for (const e of all) {
      try {
        const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
        if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === out[i]) out.push(Number(e));
      } catch {
        /* gone */
      }
    }
  }
  return out;
}

export function sftpSubject(): Subject {
  let sshd: Sshd;
  let frozen: number[] = [];
  let disks = 0;
  return {
    type: 'sftp',
    name: 'srv',
    async start() {
      sshd = await startSshd();
    },
    async stop() {
      await sshd?.cleanup();
    },
    make: (o = {}) => makeBackend(sshd, { path: path.join(sshd.root, o.folder ?? 'volumes') }, { timeoutMs: o.timeoutMs }),
    onServer: (...parts) => path.join(sshd.root, ...parts),
    freeSlackBytes: 64 * 1024 * 1024,
    usageCounts: 'apparent',
    async recreate(folder, inside) {
      fs.rmSync(path.join(sshd.root, folder), { recursive: true, force: true });
      fs.mkdirSync(path.join(sshd.root, folder, inside), { recursive: true });
    },
    server: {
      restart: () => sshd.restart(),
      async crashAndRestart() {
        await sshd.kill();
        await sshd.restart();
      },
      async pause() {
        frozen = treeOf(sshd.pid as number);
        for (const p of frozen) process.kill(p, 'SIGSTOP');
      },
      async resume() {
        for (const p of frozen) process.kill(p, 'SIGCONT');
        frozen = [];
      },
      async unreachable(timeoutMs) {
        return makeBackend(sshd, { port: await freePort(), knownHostsFile: undefined, hostKeyFingerprint: sshd.hostKeyFingerprint }, { timeoutMs });
      },
    },
    async smallDisk() {
      const dir = path.join(sshd.root, `small-${++disks}`);
      fs.mkdirSync(dir);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', dir]);
      return {
        dir,
        make: () => makeBackend(sshd, { path: path.join(dir, 'volumes') }),
        async dispose() {
          execFileSync('umount', ['-l', dir]);
        },
      };
    },
  };
}
