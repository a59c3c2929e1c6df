import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';

export interface MountOptions {
  /** Shown as the mount's source in /proc/self/mountinfo. */
  fsname: string;
  /** The mount type becomes "fuse.<subtype>". */
  subtype: string;
  /** Let users other than the mounting one (containers' users) in. */
  allowOther?: boolean;
  /** Let the kernel check permissions from the mode bits, as a local filesystem does. */
  defaultPermissions?: boolean;
  /** Largest READ the kernel sends. */
  maxRead?: number;
  /** Milliseconds before the mount command is given up on. */
  timeoutMs?: number;
}

/** A mount failed: `code` is the errno name when known. */
export class MountError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

/**
 * Opens /dev/fuse and mounts a FUSE filesystem on `mountpoint` with it, through mount(8) given the
 * descriptor (`-o fd=3`), as libfuse does for root without fusermount's setuid helper. Returns
 * the descriptor for a FuseSession; the process must be root (CAP_SYS_ADMIN).
 */
export async function mountFuse(mountpoint: string, o: MountOptions): Promise<number> {
  const rootMode = (statSync(mountpoint).mode & 0o170000).toString(8);
  let fd: number;
  try {
    fd = openSync('/dev/fuse', 'r+');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new MountError(`cannot open /dev/fuse: ${e.message}`, e.code);
  }
  const data = [`fd=3`, `rootmode=${rootMode}`, `user_id=${process.getuid?.() ?? 0}`, `group_id=${process.getgid?.() ?? 0}`];
  if (o.allowOther) data.push('allow_other');
  if (o.defaultPermissions) data.push('default_permissions');
  if (o.maxRead) data.push(`max_read=${o.maxRead}`);
  // -i: no /sbin/mount.fuse.* helper; the kernel gets the options as they are.
  const argv = ['-i', '-t', `fuse.${o.subtype}`, '-o', data.join(','), o.fsname.replace(/[\s,]/g, '_'), mountpoint];
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn('mount', argv, { stdio: ['ignore', 'ignore', 'pipe', fd] });
      let stderr = '';
      child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 10_000);
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(new MountError(`cannot run mount: ${err.message}`, (err as NodeJS.ErrnoException).code));
      });
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        if (code === 0) resolve();
        else reject(new MountError(`mount of ${mountpoint} failed: ${stderr.trim() || (signal ? `killed by ${signal}` : `exit ${code}`)}`, /permission|not permitted/i.test(stderr) ? 'EPERM' : undefined));
      });
    });
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}

/**
 * The fields of the newest /proc/self/mountinfo line mounted on `mountpoint` (its mount point
 * unescaped), or undefined when nothing is. Throws when mountinfo cannot be read. A FUSE server
 * reads this instead of stat()ing its own mountpoint, which would wait for itself.
 */
export function mountinfoEntry(mountpoint: string): string[] | undefined {
  let found: string[] | undefined;
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const fields = line.split(' ');
    const at = fields[4]?.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (at === mountpoint) found = fields;
  }
  return found;
}

/**
 * Sets the readahead of a FUSE mount's backing device, after the session's INIT: the kernel starts
 * a mount at its default (128 KiB) and INIT can only lower it. Best effort: a read-only /sys keeps
 * the default. The device is the "major:minor" field of the mount's mountinfo line. Returns
 * whether it took.
 */
export function setReadahead(mountpoint: string, bytes: number): boolean {
  try {
    const dev = mountinfoEntry(mountpoint)?.[2];
    if (!dev) return false;
    writeFileSync(`/sys/class/bdi/${dev}/read_ahead_kb`, String(Math.ceil(bytes / 1024)));
    return true;
  } catch {
    return false;
  }
}

/** Detaches a FUSE mount (lazily: open files keep working until closed). */
export function unmountFuse(mountpoint: string, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn('umount', ['-l', mountpoint], { stdio: 'ignore' });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    child.on('error', done);
    child.on('exit', done);
  });
}
