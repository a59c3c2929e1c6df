/**
 * A real OpenSSH sshd (Debian's openssh-server) on 127.0.0.1 (or a given local address) for the sftp tier: generated host and
 * user keys, a known_hosts file, a free port, a temporary root folder for volumes.
 *
 * sshd runs in a mount namespace of its own (mounts of the host still propagate into it) where a
 * private copy of /etc/shadow gives root a password known to this run only, so password
 * authentication can be tested without touching the machine's accounts. Logins: `root` (key or
 * password) and `nobody` (key only; an ordinary user, for "permission denied" on a root-owned path).
 *
 * Nothing here imports src/: the harness must keep working while the code under test is broken.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { isAlive, removeTree, run, sleep, waitFor } from './dockerd';

export const SSHD = '/usr/sbin/sshd';

export interface Sshd {
  /** The address sshd listens on (127.0.0.1 unless startSshd was given another). */
  readonly host: string;
  readonly port: number;
  /** The run's private folder (keys, config, logs); `root` lies below it. */
  readonly dir: string;
  /** A root-owned folder (0755) on the server side, for backend `path`s. */
  readonly root: string;
  /** Private key accepted for `root` and `nobody`. */
  readonly userKeyFile: string;
  /** known_hosts naming `[host]:port` with the server's host key. */
  readonly knownHostsFile: string;
  /** "SHA256:…" of the server's host key. */
  readonly hostKeyFingerprint: string;
  /** root's password for this sshd only. */
  readonly password: string;
  readonly logFile: string;
  /** The listening sshd's pid, or undefined when stopped. */
  readonly pid: number | undefined;
  /** SIGTERM the listener and every session process; resolves once the port is closed. */
  stop(): Promise<void>;
  /** SIGKILL the listener and every session process (as if the server died). */
  kill(): Promise<void>;
  /** Starts sshd again on the same port with the same keys (stops it first if it runs). */
  restart(): Promise<void>;
  /** Stops sshd and removes the run's folder. Idempotent. */
  cleanup(): Promise<void>;
  logTail(lines?: number): string;
}

/** A TCP port nobody listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Every descendant of `pid` (sshd's session processes), found through /proc. Parents are read from
 * `status`, not `stat`: reading another process's `stat` waits for its memory map, and one process
 * stuck in the kernel anywhere on the machine would then hang this harness.
 */
function descendants(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = fs.readFileSync(`/proc/${entry}/status`, 'utf8');
      const ppid = Number(/^PPid:\s*(\d+)/m.exec(status)?.[1] ?? 0);
      parentOf.set(Number(entry), ppid);
    } catch {
      /* gone */
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift() as number;
    for (const [child, parent] of parentOf) {
      if (parent === p) {
        out.push(child);
        queue.push(child);
      }
    }
  }
  return out;
}

async function ok(file: string, args: string[], input?: string): Promise<string> {
  const r = await run(file, args, { timeoutMs: 30_000, input });
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

export interface StartSshdOptions {
  /**
   * The local address to listen on, default 127.0.0.1 (e.g. the address of a bridge a test made, so
   * that network namespaces on that bridge reach the server).
   */
  listenAddress?: string;
}

export async function startSshd(opts: StartSshdOptions = {}): Promise<Sshd> {
  const host = opts.listenAddress ?? '127.0.0.1';
  const dir = fs.mkdtempSync('/tmp/nvs-');
  fs.chmodSync(dir, 0o755);
  // A shared mount of its own: what a test mounts below it later (a small tmpfs…) propagates into
  // sshd's namespace, whatever the propagation of the machine's root mount.
  await ok('mount', ['--bind', dir, dir]);
  await ok('mount', ['--make-shared', dir]);
  const root = path.join(dir, 'root');
  fs.mkdirSync(root, { mode: 0o755 });
  const hostKey = path.join(dir, 'host_ed25519');
  const userKeyFile = path.join(dir, 'user_ed25519');
  const authorizedKeys = path.join(dir, 'authorized_keys');
  const knownHostsFile = path.join(dir, 'known_hosts');
  const configFile = path.join(dir, 'sshd_config');
  const shadowFile = path.join(dir, 'shadow');
  const startScript = path.join(dir, 'start.sh');
  const logFile = path.join(dir, 'sshd.log');
  const password = `pw-${crypto.randomBytes(12).toString('hex')}`;
  let child: ChildProcess | undefined;
  let cleaned = false;

  try {
    await ok('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'netvol-test-host', '-f', hostKey]);
    await ok('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'netvol-test-user', '-f', userKeyFile]);
    fs.copyFileSync(`${userKeyFile}.pub`, authorizedKeys);
    const port = await freePort();
    const hostPub = fs.readFileSync(`${hostKey}.pub`, 'utf8').trim().split(/\s+/);
    fs.writeFileSync(knownHostsFile, `[${host}]:${port} ${hostPub[0]} ${hostPub[1]}\n`);
    const fp = (await ok('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${hostKey}.pub`])).split(/\s+/)[1];

    // root gets this run's password in a private copy of /etc/shadow, seen only by this sshd.
    const hash = (await ok('openssl', ['passwd', '-6', '-stdin'], `${password}\n`)).trim();
    const shadow = fs
      .readFileSync('/etc/shadow', 'utf8')
      .split('\n')
      .map((line) => (line.startsWith('root:') ? ['root', hash, ...line.split(':').slice(2)].join(':') : line))
      .join('\n');
    fs.writeFileSync(shadowFile, shadow, { mode: 0o600 });
    fs.writeFileSync(
      configFile,
      [
        `Port ${port}`,
        `ListenAddress ${host}`,
        `HostKey ${hostKey}`,
        `PidFile ${path.join(dir, 'sshd.pid')}`,
        `AuthorizedKeysFile ${authorizedKeys}`,
        'StrictModes no',
        'PermitRootLogin yes',
        'PasswordAuthentication yes',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'MaxStartups 200',
        'MaxSessions 200',
        'LogLevel VERBOSE',
        'Subsystem sftp internal-sftp',
        '',
      ].join('\n'),
    );
    fs.writeFileSync(
      startScript,
      ['set -e', `mount --bind '${shadowFile}' /etc/shadow`, `exec ${SSHD} -D -e -f '${configFile}'`, ''].join('\n'),
    );
    fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });

    const launch = async (): Promise<void> => {
      const out = fs.openSync(logFile, 'a');
      // unshare execs sh, which execs sshd: the child's pid is the listener's.
      const c = spawn('unshare', ['--mount', '--propagation', 'slave', '--', 'sh', startScript], { stdio: ['ignore', out, out], detached: true });
      fs.closeSync(out);
      child = c;
      let exited: string | undefined;
      c.on('exit', (code, signal) => (exited = `sshd exited (${code ?? signal})`));
      await waitFor(
        `sshd to listen on ${host}:${port}`,
        async () => {
          if (exited) throw new Error(`${exited}\n${logTail()}`);
          return (await portOpen(port, host)) || undefined;
        },
        15_000,
        50,
      );
    };

    const logTail = (lines = 30): string => {
      try {
        return fs.readFileSync(logFile, 'utf8').split('\n').slice(-lines).join('\n');
      } catch {
        return '(no sshd log)';
      }
    };

    const halt = async (signal: NodeJS.Signals): Promise<void> => {
      const c = child;
      child = undefined;
      if (!c?.pid || !isAlive(c.pid)) return;
      const all = [c.pid, ...descendants(c.pid)];
      for (const p of all) {
        try {
          process.kill(p, signal);
        } catch {
          /* gone */
        }
      }
      const deadline = Date.now() + 10_000;
      while (all.some((p) => isAlive(p) && !isZombie(p)) && Date.now() < deadline) await sleep(50);
      for (const p of all) if (isAlive(p) && !isZombie(p)) process.kill(p, 'SIGKILL');
      await waitFor(`port ${port} to close`, async () => !(await portOpen(port, host)) || undefined, 10_000, 50);
    };

    const killOnExit = (): void => {
      if (child?.pid) for (const p of [child.pid, ...descendants(child.pid)]) try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
    };
    process.on('exit', killOnExit);

    await launch();

    return {
      host,
      port,
      dir,
      root,
      userKeyFile,
      knownHostsFile,
      hostKeyFingerprint: fp,
      password,
      logFile,
      get pid() {
        return child?.pid;
      },
      stop: () => halt('SIGTERM'),
      kill: () => halt('SIGKILL'),
      async restart() {
        if (cleaned) throw new Error('sshd run was cleaned up');
        await halt('SIGTERM');
        await launch();
      },
      async cleanup() {
        if (cleaned) return;
        cleaned = true;
        await halt('SIGTERM');
        process.removeListener('exit', killOnExit);
        removeTree(dir);
      },
      logTail,
    };
  } catch (err) {
    if (child?.pid) try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
    removeTree(dir);
    throw err;
  }
}

function isZombie(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/**
 * The options of a netvol `sftp` backend pointed at this sshd (key auth, known_hosts, volumes under
 * its root). `extra` overrides or adds keys; a key set to undefined is dropped.
 */
export function sftpOptions(sshd: Sshd, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const out: Record<string, unknown> = {
    host: sshd.host,
    port: sshd.port,
    username: 'root',
    privateKeyFile: sshd.userKeyFile,
    knownHostsFile: sshd.knownHostsFile,
    path: path.join(sshd.root, 'volumes'),
    ...extra,
  };
  for (const [k, v] of Object.entries(out)) if (v === undefined) delete out[k];
  return out;
}
