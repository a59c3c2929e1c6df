/** The sshfs processes of this machine, found by their argv. */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Pids of the sshfs processes whose argv names `mountpoint`. */
export function sshfsPidsFor(mountpoint: string): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
      if (path.basename(argv[0]) === 'sshfs' && argv.includes(mountpoint)) out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}
