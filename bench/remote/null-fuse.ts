/**
 * The FUSE ceiling as a variant for measureSeq: starts null-fuse-server.js (a FUSE filesystem on
 * netvol's FUSE library that discards writes and reads zeros) in a process of its own, and
 * measures dd through it exactly as through a volume. The section's cleanup unmounts it and stops
 * the process, also when the section fails.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { userspaceEnv } from '../../src/backends/nfs/mounters';
import { isAlive, run, terminate } from '../../test/harness/dockerd';
import { ddReadCold, ddWrite } from '../lib/io';
import { BenchContext } from '../lib/types';
import { isMountpoint } from './proc';
import { SeqVariant } from './seqio';

export interface NullFuse {
  mountpoint: string;
  /** What the kernel and the server agreed at INIT, and the readahead set after it (for notes). */
  mounted: { fuse?: { maxWrite?: number; maxReadahead?: number }; readahead?: number; threadpool?: string };
}

/** Mounts the null FUSE filesystem on `mountpoint` (created); resolves once it serves. */
export async function startNullFuse(ctx: BenchContext, mountpoint: string): Promise<NullFuse> {
  const server = path.join(__dirname, 'null-fuse-server.js');
  if (!fs.existsSync(server)) throw new Error(`${server} is missing: run the bench through \`npm run bench\`, which compiles it`);
  fs.mkdirSync(mountpoint, { recursive: true });
  // The same environment (malloc settings) as netvol gives its userspace NFS server.
  const child = spawn(process.execPath, [server, mountpoint], { stdio: ['ignore', 'pipe', 'pipe'], env: userspaceEnv() });
  const killSync = (): void => {
    if (isAlive(child.pid)) child.kill('SIGKILL');
  };
  process.on('exit', killSync);
  // Registered before the mount exists, so a failed start is undone too: unmount, then stop the process.
  ctx.defer(async () => {
    if (isMountpoint(mountpoint)) await run('umount', ['-l', mountpoint], { timeoutMs: 30_000 }).catch((err: Error) => ctx.log(`unmounting ${mountpoint}: ${err.message}`));
    await terminate(child.pid, 5000);
    process.off('exit', killSync);
  });
  let out = '';
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  return new Promise<NullFuse>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the null FUSE filesystem did not mount within 15 s: ${(out + err).trim().slice(-400)}`)), 15_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot start the null FUSE filesystem: ${e.message}`));
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the null FUSE filesystem exited (${code ?? signal}) before it mounted: ${(out + err).trim().slice(-400)}`));
    });
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      for (const line of out.split('\n')) {
        let msg: { event?: string } & NullFuse['mounted'];
        try {
          msg = JSON.parse(line);
        } catch {
          continue;
        }
        if (msg.event !== 'mounted') continue;
        clearTimeout(timer);
        resolve({ mountpoint, mounted: msg });
      }
    });
  });
}

/** dd writes (conv=fsync) and cold dd reads of the null filesystem's one file, like ddVariant's. */
export function nullFuseVariant(key: string, label: string, fuse: () => NullFuse): SeqVariant {
  const file = () => path.join(fuse().mountpoint, 'f');
  return {
    key,
    label,
    write: (_i, mib) => ddWrite(file(), mib),
    async read() {
      const r = await ddReadCold(file());
      if (r === undefined) throw new Error('cannot drop the page cache: cold reads cannot be measured here');
      return r;
    },
  };
}
