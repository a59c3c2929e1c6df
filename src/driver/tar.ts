import { ChildProcess, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { commandStarted, firstStderrLine, KILL_GRACE_MS } from '../system';

/**
 * GNU tar as backup, restore and verify run it: argv arrays, never a shell; the archive on stdin
 * or stdout. Owners as numbers (the volume's uids mean nothing on the host that restores it by
 * name), modes, symlinks, hard links, holes of sparse files, extended attributes and ACLs kept.
 */

/** What the archive holds of a volume besides netvol's own: the userspace NFS mount's folder of files removed while open is never data. */
const ALWAYS_EXCLUDED = ['./.netvol-unlinked'];

/**
 * The flags that keep what a volume holds. Extended attributes and ACLs only where the volume's
 * filesystem has them: a FUSE mount (sshfs, the userspace NFS mount) answers ENOTSUP, which tar
 * counts as an error.
 */
function keep(xattrs: boolean): string[] {
  return [...(xattrs ? ['--xattrs', '--xattrs-include=*', '--acls'] : []), '--numeric-owner'];
}

/** Whether the filesystem holding `dir` has extended attributes (every one but FUSE here). */
export async function hasXattrs(dir: string): Promise<boolean> {
  const FUSE_SUPER_MAGIC = 0x65735546;
  return (await fs.statfs(dir)).type !== FUSE_SUPER_MAGIC;
}

/** The compressor of a `.zst` archive when tar itself (de)compresses it (a client's file written or read directly): as netvolctl runs it. */
const ZSTD = ['--use-compress-program=zstd -T0 -3'];

/** `tar -c` of everything below `dir` (as `./…`), to stdout (zstd-compressed with `zstd`). `excludes` are paths like `./lost+found`. */
export function createArgs(dir: string, xattrs: boolean, excludes: string[] = [], zstd = false): string[] {
  return ['-c', '-f', '-', ...keep(xattrs), ...(zstd ? ZSTD : []), '--sparse', '--blocking-factor=128', ...[...ALWAYS_EXCLUDED, ...excludes].map((e) => `--exclude=${e}`), '-C', dir, '.'];
}

/**
 * Reading an archive in 64 KiB records (as backup writes them), reblocked so that an archive of any
 * record size, and a pipe's short reads, are read whole: a third of the system time of tar's
 * default 10 KiB reads.
 */
const READ_RECORDS = ['--blocking-factor=128', '--read-full-records'];

/** `tar -x` from stdin into `dir`, as root keeping owners and modes (zstd-compressed input with `zstd`). */
export function extractArgs(dir: string, xattrs: boolean, zstd = false): string[] {
  return ['-x', '-f', '-', ...READ_RECORDS, ...keep(xattrs), ...(zstd ? ZSTD : []), '--same-owner', '--same-permissions', '-C', dir];
}

/** `tar -d` (compare) of the archive on stdin against `dir`: exit 1 and one line per difference on stdout when they differ. */
export function compareArgs(dir: string, xattrs: boolean): string[] {
  return ['-d', '-f', '-', ...READ_RECORDS, ...keep(xattrs), '-C', dir];
}

/** tar's complaints in one line: each meaningful stderr line (not its closing "Exiting with failure status"), the first three. */
function summary(stderr: string): string {
  const lines = stderr
    .split('\n')
    .filter((l) => l.trim() && !/Exiting with failure status/.test(l))
    .map((l) => firstStderrLine(l).replace(/^tar: /, ''));
  return lines.slice(0, 3).join('; ') + (lines.length > 3 ? `; and ${lines.length - 3} more` : '');
}

export interface TarRun {
  child: ChildProcess;
  /** Settles when tar has exited: its code (null when killed), signal and stderr (and stdout when it was not piped away). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; stdout: string; firstLine: string }>;
  /** SIGTERM, then SIGKILL after a grace: the client went away or the run failed elsewhere. */
  kill(): void;
}

/**
 * Starts tar; `collectStdout` keeps its stdout (compare), else the caller reads child.stdout
 * (create). `stdin` / `stdout`: a descriptor tar reads the archive from or writes it to instead of
 * a pipe (a client's file, see system/peer-files.ts); the caller keeps and closes its own.
 */
export function spawnTar(args: string[], opts: { collectStdout?: boolean; stdin?: number; stdout?: number } = {}): TarRun {
  const child = spawn('tar', args, { stdio: [opts.stdin ?? 'pipe', opts.stdout ?? 'pipe', 'pipe'] });
  commandStarted('tar', args, child.pid);
  let stderr = '';
  let stdout = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 64 * 1024) stderr += d;
  });
  if (opts.collectStdout) {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < 256 * 1024) stdout += d;
    });
  }
  child.stdin?.on('error', () => undefined);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; stdout: string; firstLine: string }>((resolve) => {
    child.once('error', (err) => resolve({ code: null, signal: null, stderr: `cannot run tar: ${err.message}`, stdout, firstLine: `cannot run tar: ${err.message}` }));
    child.once('close', (code, signal) => resolve({ code, signal, stderr, stdout, firstLine: summary(stderr) || (signal ? `killed by ${signal}` : `exit ${code}`) }));
  });
  let killing = false;
  const kill = (): void => {
    if (killing || child.exitCode !== null || child.signalCode !== null) return;
    killing = true;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
    void exited.then(() => clearTimeout(t));
  };
  return { child, exited, kill };
}
