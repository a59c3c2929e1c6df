import { spawn } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { ErrorCode, NetvolError } from '../../errors';
import type { NfsTarget } from '../../nfs';
import { findMount, isAlive, run, waitForExit } from '../../system';
import { abortedBecause } from '../deadline';
import { logSince, pidsByArgv } from '../folder/data-path';
import type { NfsOptions } from './options';

export type Mounter = 'kernel' | 'userspace';

/** The mount type of the userspace data path in the kernel's mount table ("fuse." + subtype). */
export const USERSPACE_FS_TYPE = 'fuse.netvol-nfs';
export const KERNEL_FS_TYPES = ['nfs', 'nfs4'];

/** `auto` → kernel when this kernel has an NFS client (a line "nodev\tnfs" in /proc/filesystems), userspace otherwise. */
export async function resolveMounter(choice: NfsOptions['mounter'], filesystems?: string): Promise<{ mounter: Mounter; why: string }> {
  if (choice !== 'auto') return { mounter: choice, why: `mounter: ${choice} in the backend config` };
  const text = filesystems ?? (await fs.readFile('/proc/filesystems', 'utf8').catch(() => ''));
  const hasNfs = text.split('\n').some((line) => /^\S*\s+nfs4?$/.test(line.trimEnd()) || line.trim() === 'nfs');
  return hasNfs
    ? { mounter: 'kernel', why: 'mounter: auto, and this kernel lists nfs in /proc/filesystems' }
    : { mounter: 'userspace', why: 'mounter: auto, and this kernel has no NFS client (no nfs in /proc/filesystems)' };
}

/** `server:/export/folder/name`, with brackets around an IPv6 address. */
export function remoteSpec(o: Pick<NfsOptions, 'server' | 'export'>, folder: string, name: string): string {
  const host = o.server.includes(':') && !o.server.startsWith('[') ? `[${o.server}]` : o.server;
  const exp = o.export.replace(/\/+$/, '');
  return `${host}:${[exp, folder, name].filter((p) => p !== '').join('/')}`;
}

/**
 * The exact argv of the kernel mounter: `mount -t nfs -o vers=…[,port=…][,mountport=…],<mountOptions> server:/export/folder/name mountpoint`.
 * Ports from the config are passed on so the kernel needs no portmapper either; MOUNT's port only
 * matters to version 3.
 */
export function kernelMountArgs(o: Pick<NfsOptions, 'server' | 'export' | 'version' | 'port' | 'mountPort' | 'mountOptions'>, folder: string, name: string, mountpoint: string): string[] {
  const opts = [`vers=${o.version}`];
  if (o.port !== undefined) opts.push(`port=${o.port}`);
  if (o.mountPort !== undefined && o.version === 3) opts.push(`mountport=${o.mountPort}`);
  opts.push(...o.mountOptions);
  return ['-t', 'nfs', '-o', opts.join(','), remoteSpec(o, folder, name), mountpoint];
}

/** The FUSE server's entry point: dist/fuse-nfs/main.js next to this file's compiled form. */
export function fuseMainPath(): string {
  const beside = path.resolve(__dirname, '..', '..', 'fuse-nfs', 'main.js');
  if (existsSync(beside)) return beside;
  // Running from sources (tests): the build output of the same checkout.
  return path.resolve(__dirname, '..', '..', '..', 'dist', 'fuse-nfs', 'main.js');
}

/** What the FUSE server of one volume needs: the export, and the backend and timeout for its errors. */
export interface UserspaceTarget extends NfsTarget {
  backend: string;
  timeoutMs: number;
}

/** argv of the FUSE server for one volume (after `node`). The mountpoint is how it is found again later. */
export function userspaceArgs(t: UserspaceTarget, folderPath: string, mountpoint: string, main = fuseMainPath()): string[] {
  const args = [main, '--server', t.host, '--export', t.exportPath, '--path', folderPath, '--mountpoint', mountpoint, '--uid', String(t.uid), '--gid', String(t.gid)];
  if (t.port !== undefined) args.push('--port', String(t.port));
  if (t.mountPort !== undefined) args.push('--mount-port', String(t.mountPort));
  return args;
}

/**
 * glibc's malloc settings for the FUSE server. Each WRITE from the kernel arrives in a 1 MiB
 * buffer that stays alive until a COMMIT confirms it (up to 64 MiB at a time); the session reuses
 * the ones it keeps, and the rest are freed. By default glibc hands such memory back to the kernel
 * as soon as it is freed, and the next requests fault it in again, page by page: tens of thousands
 * of page faults per GiB written (measured before buffers were reused). Keeping freed memory in
 * the heap (allocations up to 32 MiB from the heap, trimmed only past 256 MiB free) removed them
 * and made 1 GiB writes about 7 % faster side by side. A GLIBC_TUNABLES already set is kept.
 */
export const USERSPACE_MALLOC_TUNABLES = 'glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=268435456';

/** Environment of the FUSE server: netvol's own, with the malloc settings above. */
export function userspaceEnv(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...base, GLIBC_TUNABLES: base.GLIBC_TUNABLES ?? USERSPACE_MALLOC_TUNABLES };
}

/** Pids of FUSE servers (ours) whose argv names `mountpoint`. */
export function userspacePids(mountpoint: string): Promise<number[]> {
  return pidsByArgv((argv) => {
    const i = argv.indexOf('--mountpoint');
    return i > 0 && argv[i + 1] === mountpoint && argv.some((a) => a.endsWith(path.join('fuse-nfs', 'main.js')));
  });
}

/**
 * Starts the FUSE server in its own session (it outlives netvol) with its output appended to
 * `logFile`, and waits until the mount is in the mount table. If the server exits first, its
 * last log line says why, and the error says it plainly. When `signal` aborts first, the server is
 * killed and the call fails with TIMEOUT; the caller undoes a mount it may have made.
 */
export async function startUserspace(t: UserspaceTarget, folderPath: string, mountpoint: string, logFile: string, volume: string, signal?: AbortSignal): Promise<number> {
  signal?.throwIfAborted();
  const log = await fs.open(logFile, 'a', 0o600);
  const start = (await log.stat()).size;
  const child = spawn(process.execPath, userspaceArgs(t, folderPath, mountpoint), { detached: true, stdio: ['ignore', log.fd, log.fd], env: userspaceEnv() });
  await log.close();
  let exit: { code: number | null; error?: Error } | undefined;
  child.on('exit', (code) => (exit = { code }));
  child.on('error', (error) => (exit = { code: null, error }));
  child.unref();
  const deadline = Date.now() + t.timeoutMs;
  for (;;) {
    const entry = await findMount(mountpoint);
    if (entry?.fsType === USERSPACE_FS_TYPE) return child.pid as number;
    if (exit || Date.now() > deadline || signal?.aborted) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!exit) {
    try {
      if (child.pid) process.kill(child.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  if (signal?.aborted && !exit) {
    throw new NetvolError('TIMEOUT', `backend ${t.backend}: cannot attach volume ${volume} from ${t.host}:${t.exportPath}: the userspace NFS server (pid ${child.pid}) was killed: ${abortedBecause(signal)}`, { volume });
  }
  const output = await logSince(logFile, start);
  throw startError(t, volume, output, exit);
}

function startError(t: UserspaceTarget, volume: string, output: string, exit: { code: number | null; error?: Error } | undefined): NetvolError {
  let last: { msg?: string; code?: string; event?: string } = {};
  for (const line of output.split('\n')) {
    try {
      const parsed = JSON.parse(line);
      if (parsed.level === 'error') last = parsed;
    } catch {
      /* not ours */
    }
  }
  const prefix = `backend ${t.backend}: cannot attach volume ${volume} from ${t.host}:${t.exportPath}`;
  if (!exit) return new NetvolError('BACKEND_UNAVAILABLE', `${prefix}: the userspace NFS mount did not come up within ${Math.round(t.timeoutMs / 1000)} s`, { volume });
  if (exit.error) return new NetvolError('COMMAND_FAILED', `${prefix}: cannot start the userspace NFS server (${exit.error.message})`, { volume });
  let code: ErrorCode = 'COMMAND_FAILED';
  if (last.event === 'connect') code = last.code === 'EACCES' || last.code === 'EPERM' ? 'PERMISSION' : last.code === 'ENOENT' ? 'NOT_FOUND' : 'BACKEND_UNAVAILABLE';
  else if (last.event === 'path') code = last.code === 'ENOENT' ? 'NOT_FOUND' : 'PERMISSION';
  const why = last.msg ?? `the userspace NFS server exited with ${exit.code}`;
  return new NetvolError(code, `${prefix}: ${why}`, { volume });
}

/**
 * How long a live userspace server gets to commit what it holds and exit after its unmount: its
 * own limit for that (fuse-nfs/main.ts, 30 s) and a little. Killed sooner, it would lose writes a
 * container made before it ended. Meanwhile the volume stays locked, so no new attach races it.
 */
export const USERSPACE_COMMIT_WAIT_MS = 35_000;

/**
 * Unmounts a userspace mount and ends its server. `lazy` detaches a dead or busy mount at once.
 * The server commits what it holds when the kernel releases the files, then exits by itself on
 * seeing its mount gone; SIGTERM follows if it has not after `exitWaitMs` (a dead server's is
 * short; a live one's is USERSPACE_COMMIT_WAIT_MS), SIGKILL 2 s later.
 */
export async function stopUserspace(mountpoint: string, lazy: boolean, timeoutMs: number, exitWaitMs = Math.min(timeoutMs, 10_000)): Promise<void> {
  const pids = await userspacePids(mountpoint);
  if (await findMount(mountpoint)) await run('umount', lazy ? ['-l', mountpoint] : [mountpoint], { timeoutMs });
  await waitForExit(pids, exitWaitMs, 'SIGTERM');
  await waitForExit(pids.filter(isAlive), 2000, 'SIGKILL');
}
