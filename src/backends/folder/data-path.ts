import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isNetvolError } from '../../errors';
import { run, type MountEntry } from '../../system';

/** One volume's data path on this host: the folder below the tree to mount, and where. */
export interface StartRequest {
  volume: string;
  /** The volume's folder, as a path of the tree ("<name>", below the root). */
  folder: string;
  mountpoint: string;
  /** Whether data/ is a folder (directory layout) rather than an image file: only then may a helper reconnect by itself. */
  directoryLayout: boolean;
  /** The volume's helper log, in workDir/.logs/ (its folder exists). */
  logFile: string;
  /** The request's deadline: when it aborts, start kills the helper it started and undoes its mount, then fails. */
  signal?: AbortSignal;
}

/**
 * The data half of a folder backend: the helper process (sshfs, a FUSE server, the kernel's NFS
 * client) that makes a volume's folder reachable at a mountpoint in workDir, and survives netvol's
 * restarts. Which attachment to reuse, which to replace, the mountpoints and the errors of
 * attach/detach/fence are FolderBackend's; this only starts, stops, checks and fences.
 */
export interface DataPath {
  /** Word for the helper in logs ("sshfs", "nfs volume"): "<label> attached". */
  readonly label: string;
  /** Called once at the backend's open, e.g. to decide which NFS mounter this host uses. */
  open?(): Promise<void>;
  /** Whether the attachment found in the mount table at `mountpoint` still works ('unreachable': its helper lives but the server does not answer; see AttachmentHealth). */
  check(volume: string, mountpoint: string, entry: MountEntry, signal?: AbortSignal): Promise<'attached' | 'unreachable' | 'dead'>;
  /** Ends what is left at `mountpoint` before a new start: a dead attachment (lazily), or a helper whose mount is gone (`entry` undefined). */
  clear(mountpoint: string, entry: MountEntry | undefined): Promise<void>;
  /** Starts the helper; resolves once the mount is in the mount table. Returns facts for the "attached" log line. Undoes everything it did when it fails or `req.signal` aborts. */
  start(req: StartRequest): Promise<Record<string, unknown>>;
  /** Unmounts and ends the helper, refusing a mount still in use; `entry` is the mount found (undefined: none). */
  stop(volume: string, mountpoint: string, entry: MountEntry | undefined, signal?: AbortSignal): Promise<void>;
  /** Cuts the helper off the server at once, without flushing; returns whether anything was there. */
  fence(mountpoint: string): Promise<boolean>;
  /** Facts shown in a volume's Status (no secrets). */
  statusFields?(): Promise<Record<string, string | number | boolean>>;
}

export type MountCheck = 'ok' | 'disconnected' | 'hung' | 'failed';

/**
 * Asks a mount for its filesystem's size from a child process (statfs goes to the server, never
 * to a cache, and a hung mount hangs the child, not netvol): 'disconnected' when the FUSE
 * connection is gone (ENOTCONN: its helper died), 'hung' when no answer came in time, 'failed'
 * for any other error (e.g. the server is unreachable right now).
 */
export async function checkMount(mountpoint: string, timeoutMs: number, signal?: AbortSignal): Promise<MountCheck> {
  try {
    await run('stat', ['-f', '-c', '%b', mountpoint], { timeoutMs, signal });
    return 'ok';
  } catch (err) {
    if (signal?.aborted) throw err;
    if (isNetvolError(err, 'TIMEOUT')) return 'hung';
    return /not connected/i.test((err as Error).message) ? 'disconnected' : 'failed';
  }
}

/** Pids of processes whose argv (from /proc/<pid>/cmdline) `matches`: how helpers are found again after a restart. */
export async function pidsByArgv(matches: (argv: string[]) => boolean): Promise<number[]> {
  const out: number[] = [];
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = (await fs.readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0');
      if (matches(argv)) out.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** The helper log of a volume: workDir/.logs/<volume>.log. */
export function helperLogFile(workDir: string, volume: string): string {
  return path.join(workDir, '.logs', `${volume}.log`);
}

/** What a helper wrote to its log after `offset` (its size before the start): the reason it failed. */
export async function logSince(file: string, offset: number): Promise<string> {
  return (await fs.readFile(file, 'utf8').catch(() => '')).slice(offset);
}
