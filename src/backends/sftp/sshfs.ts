import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ErrorCode, NetvolError, redactString } from '../../errors';
import { abortedBecause } from '../deadline';
import { cutOffFuseMount, findMount, run, unixPeersOf, waitForExit } from '../../system';
import { logSince, pidsByArgv } from '../folder/data-path';

/** How sshfs reaches the server: everything but the remote folder and the mountpoint. */
export interface SshfsTarget {
  backend: string;
  host: string;
  port: number;
  username: string;
  /** Either a key file (passed as IdentityFile) or a password (written to sshfs's stdin). */
  auth: { identityFile: string } | { password: string };
  /** known_hosts to check the server against; undefined only with insecureSkipHostKeyCheck and no key seen yet. */
  knownHostsFile: string | undefined;
  timeoutMs: number;
  extraOptions: readonly string[];
}

export const SSHFS_FS_TYPE = 'fuse.sshfs';

/**
 * The `-o` options of every sshfs netvol starts, and why:
 * - `-F /dev/null` and IdentitiesOnly: the machine's ssh_config and agent never change what netvol does;
 * - StrictHostKeyChecking=yes against a known_hosts netvol controls: the same host-key check as the
 *   control connection;
 * - ServerAliveInterval/CountMax: a dead server is noticed within ~30 s instead of hanging;
 * - Ciphers (AES-GCM first: hardware-accelerated AES and no separate MAC pass) and Compression=no: the SSH stream, not the CPU,
 *   should be the limit;
 * - max_read/max_write 256 KiB-ish: fewer SFTP round trips per FUSE request (OpenSSH's sftp-server
 *   accepts up to 255 KiB);
 * - writeback_cache=no: an image loop-mounted on top must see its writes reach the server in order;
 * - allow_other + default_permissions: containers running as any user get normal permission checks;
 * - reconnect (directory layout only): containers keep working across a server restart. Image
 *   volumes do not reconnect: sshfs cannot reopen the loop device's file after a reconnect, so a
 *   dead connection must show as a dead mount that the driver remounts;
 * - no_contain_symlinks (where sshfs has the option, see `sshfsContainsSymlinks`): sshfs builds that
 *   carry it refuse (EPERM) to read links that are absolute or contain "..", so a container could not
 *   read back links it made itself (`../lib`, `/data/x`). A volume's links are read in the container's
 *   view, as on a local volume, and the server is one the operator configured.
 */
export function sshfsArgs(t: SshfsTarget, remote: string, mountpoint: string, reconnect: boolean, allowAllSymlinks = false): string[] {
  const o: string[] = [
    'ServerAliveInterval=10',
    'ServerAliveCountMax=3',
    `ConnectTimeout=${Math.max(1, Math.floor(t.timeoutMs / 1000))}`,
    // "^": first choice, the defaults stay as fallbacks (a comma would split sshfs's option list).
    'Ciphers=^aes128-gcm@openssh.com',
    'Compression=no',
    'max_read=262144',
    'max_write=262144',
    'writeback_cache=no',
    'allow_other',
    'default_permissions',
  ];
  if (t.knownHostsFile) {
    o.push(`UserKnownHostsFile=${t.knownHostsFile}`, 'GlobalKnownHostsFile=/dev/null', 'StrictHostKeyChecking=yes');
  } else {
    o.push('UserKnownHostsFile=/dev/null', 'GlobalKnownHostsFile=/dev/null', 'StrictHostKeyChecking=no');
  }
  if ('identityFile' in t.auth) {
    o.push(`IdentityFile=${t.auth.identityFile}`, 'IdentitiesOnly=yes', 'BatchMode=yes', 'PreferredAuthentications=publickey');
  } else {
    o.push('password_stdin', 'PreferredAuthentications=password', 'PubkeyAuthentication=no', 'NumberOfPasswordPrompts=1');
  }
  if (reconnect) o.push('reconnect');
  if (allowAllSymlinks) o.push('no_contain_symlinks');
  o.push(...t.extraOptions);
  return ['-F', '/dev/null', '-p', String(t.port), `${t.username}@${hostForSsh(t.host)}:${remote}`, mountpoint, '-o', o.join(',')];
}

let containsSymlinks: Promise<boolean> | undefined;

/**
 * Whether this machine's sshfs restricts symlink targets by default (it then lists
 * `no_contain_symlinks` in its help). Asked once per daemon; an sshfs that cannot say is taken as
 * one without the option, which starts as before.
 */
export function sshfsContainsSymlinks(): Promise<boolean> {
  containsSymlinks ??= run('sshfs', ['-h'], { timeoutMs: 10_000 }).then(
    (r) => /no_contain_symlinks/.test(r.stdout + r.stderr),
    () => false,
  );
  return containsSymlinks;
}

function hostForSsh(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** Pids of sshfs processes whose argv names `mountpoint`. */
export function sshfsPids(mountpoint: string): Promise<number[]> {
  return pidsByArgv((argv) => path.basename(argv[0]) === 'sshfs' && argv.includes(mountpoint));
}

/** Pids of processes whose parent is one of `parents` (from PPid in /proc/<pid>/status). */
async function childrenOf(parents: number[]): Promise<number[]> {
  const out: number[] = [];
  if (parents.length === 0) return out;
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const status = await fs.readFile(`/proc/${entry}/status`, 'utf8').catch(() => '');
    const ppid = Number(/^PPid:\s+(\d+)$/m.exec(status)?.[1]);
    if (parents.includes(ppid)) out.push(Number(entry));
  }
  return out;
}

async function isSsh(pid: number): Promise<boolean> {
  return (await fs.readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim() === 'ssh';
}

/**
 * Every process of the data path at `mountpoint`: its sshfs and the ssh that sshfs runs (whose
 * TCP connection carries the data), and nothing else. The first ssh was started before sshfs
 * daemonized, so init is its parent: it is found as the ssh at the other end of sshfs's
 * socketpair. One started by a reconnect is sshfs's child.
 */
export async function sshfsHelperPids(mountpoint: string): Promise<number[]> {
  const sshfs = await sshfsPids(mountpoint);
  if (sshfs.length === 0) return [];
  const candidates = new Set([...(await childrenOf(sshfs)), ...(await unixPeersOf(sshfs))]);
  const ssh: number[] = [];
  for (const pid of candidates) if (await isSsh(pid)) ssh.push(pid);
  return [...sshfs, ...ssh];
}

/**
 * Fencing: resets the TCP connection of the volume's ssh, kills sshfs and ssh without letting them
 * flush, then detaches the mount lazily. Processes that use the mount get ENOTCONN; no byte they
 * wrote before can reach the server afterwards. Returns whether there was anything to fence.
 */
export async function fenceSshfs(mountpoint: string, timeoutMs: number): Promise<boolean> {
  return cutOffFuseMount(mountpoint, await sshfsHelperPids(mountpoint), Math.min(timeoutMs, 5000));
}

/**
 * Starts sshfs in its own session; it connects, mounts, then daemonizes (its first process exits 0),
 * so the mount outlives netvol. Output of sshfs and ssh goes to `logFile`. Rejects with a
 * NetvolError naming the backend when sshfs fails or has not mounted within the timeout. When
 * `signal` aborts first, sshfs (its whole process group, ssh included) is killed at once and the
 * call fails with TIMEOUT; the caller undoes a mount it may have made.
 */
export async function startSshfs(t: SshfsTarget, remote: string, mountpoint: string, reconnect: boolean, logFile: string, volume: string, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted();
  const log = await fs.open(logFile, 'a', 0o600);
  await log.write(`--- netvol: sshfs for volume ${volume} at ${new Date().toISOString()}\n`);
  const start = (await log.stat()).size;
  const args = sshfsArgs(t, remote, mountpoint, reconnect, await sshfsContainsSymlinks());
  const child = spawn('sshfs', args, { detached: true, stdio: ['pipe', log.fd, log.fd] });
  await log.close();
  child.stdin?.on('error', () => undefined);
  child.stdin?.end('password' in t.auth ? `${t.auth.password}\n` : '');
  const result = await new Promise<{ code: number | null; error?: Error; timedOut?: boolean; aborted?: boolean }>((resolve) => {
    const kill = (why: { timedOut?: boolean; aborted?: boolean }) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      resolve({ code: null, ...why });
    };
    const timer = setTimeout(() => kill({ timedOut: true }), t.timeoutMs);
    const onAbort = () => kill({ aborted: true });
    signal?.addEventListener('abort', onAbort, { once: true });
    const done = (r: { code: number | null; error?: Error }) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(r);
    };
    child.on('error', (error) => done({ code: null, error }));
    child.on('exit', (code) => done({ code }));
  });
  child.unref();
  if (result.aborted) {
    throw new NetvolError('TIMEOUT', `backend ${t.backend}: cannot attach volume ${volume} from ${t.host}:${t.port}: sshfs (pid ${child.pid}) was killed: ${abortedBecause(signal)}`, { volume });
  }
  if (result.code === 0 && (await findMount(mountpoint))?.fsType === SSHFS_FS_TYPE) return;
  const output = await logSince(logFile, start);
  throw sshfsError(t, volume, output, result);
}

function sshfsError(t: SshfsTarget, volume: string, output: string, r: { code: number | null; error?: Error; timedOut?: boolean }): NetvolError {
  const lines = redactString(output)
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('---'));
  const tail = lines.slice(-3).join('; ');
  const where = `${t.host}:${t.port}`;
  let code: ErrorCode = 'COMMAND_FAILED';
  let why: string;
  if (r.error) why = `cannot run sshfs (${r.error.message}); install sshfs`;
  else if (/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No .* host key is known/i.test(output)) {
    code = 'BACKEND_AUTH';
    why = 'the server host key did not match the known one';
  } else if (/Permission denied \(|Authentication failed|Too many authentication failures/i.test(output)) {
    code = 'BACKEND_AUTH';
    why = `the server refused the credentials of user ${t.username}`;
  } else if (/Connection refused|Connection timed out|No route to host|Connection reset|Connection closed|Could not resolve/i.test(output)) {
    code = 'BACKEND_UNAVAILABLE';
    why = `cannot reach the SSH server (${tail})`;
  } else if (/No such file or directory/i.test(output)) {
    code = 'NOT_FOUND';
    why = "the volume's folder is missing on the server";
  } else if (r.timedOut) {
    code = 'BACKEND_UNAVAILABLE';
    why = `sshfs did not mount within ${Math.round(t.timeoutMs / 1000)} s${tail ? ` (${tail})` : ''}`;
  } else why = `sshfs exited with ${r.code}${tail ? `: ${tail}` : ''}`;
  return new NetvolError(code, `backend ${t.backend}: cannot attach volume ${volume} from ${where}: ${why}`, { volume });
}

/**
 * Unmounts an sshfs mount, then ends its sshfs process. A busy mount is refused (something still
 * uses it); a dead or hung one is detached lazily, and `lazy` asks for that at once.
 */
export async function stopSshfs(mountpoint: string, lazy: boolean, timeoutMs: number): Promise<void> {
  const pids = await sshfsPids(mountpoint);
  if (await findMount(mountpoint)) {
    try {
      await run('fusermount3', lazy ? ['-u', '-z', mountpoint] : ['-u', mountpoint], { timeoutMs: Math.min(timeoutMs, 5000) });
    } catch (err) {
      if (/busy/i.test((err as Error).message)) throw err;
      await run('fusermount3', ['-u', '-z', mountpoint], { timeoutMs: Math.min(timeoutMs, 5000) });
    }
  }
  await waitForExit(pids, 2000, 'SIGTERM');
}

