/**
 * Three (or more) Docker hosts on one machine, for the multihost tier.
 *
 * Each host is a network namespace plus a mount namespace of its own: its own dockerd, its own
 * netvol daemon (`node dist/main.js`) listening on `/run/docker/plugins/netvol.sock` inside that
 * mount namespace (a bind mount of the host's own plugins folder, so the driver is simply `netvol`
 * on every host), its own stateDir and mountRoot. The hosts sit on a bridge this run creates, with a
 * random /24 in 10.251.0.0/16 and no route anywhere else; one sshd and one nfs-ganesha listen on the
 * bridge's own address in the root namespace, and every host's netvol points its `sftp` and `nfs`
 * backends at them. Recipe: ../shared/ENVIRONMENT.md, "Several hosts on one machine".
 *
 * Everything a run creates carries its prefix `nvt<4 hex>` (bridge, veths, netns names) or lies
 * under its folder `/tmp/nvmh-…`; teardown touches nothing else, and runs whatever failed before.
 *
 * Nothing here imports src/ (except through the ganesha harness's NFS probe): the harness must keep
 * working while the daemon under test is broken.
 */
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildBusyboxTar } from '../../harness/busybox';
import { BUSYBOX_IMAGE, DOCKER_CLI, DOCKERD, RunOptions, RunResult, isAlive, mountsUnder, run, sleep, waitFor } from '../../harness/dockerd';
import { GaneshaServer, startGanesha } from '../../harness/ganesha';
import { pluginRequest } from '../../harness/netvol';
import { Sshd, sftpOptions, startSshd } from '../../harness/sshd';
import { nfsOptions } from '../../nfs/backend/support/backend';

export { BUSYBOX_IMAGE };

export type BackendName = 'sftp' | 'nfs';
export const BACKENDS: BackendName[] = ['sftp', 'nfs'];

/** The lease every host's netvol is configured with: the minimum, so takeovers are quick. */
export const LEASE_SECONDS = 5;

/** The repository: the nearest folder above this file with netvol's package.json (this file also runs compiled, from .test-work/). */
function repoRoot(): string {
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    try {
      if ((JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string }).name === 'netvol') return dir;
    } catch {
      /* not here */
    }
  }
  throw new Error(`no netvol package.json above ${__dirname}`);
}
const REPO_ROOT = repoRoot();
const MAIN_JS = path.join(REPO_ROOT, 'dist', 'main.js');
/** Logs of each run are copied here at teardown (git-ignored), for reading after a failure. */
const LOG_ARCHIVE = path.join(REPO_ROOT, '.test-work', 'multihost');

export interface HostOptions {
  /** How many hosts; default 3. */
  hosts?: number;
  /** Import busybox:local into every dockerd; default true. */
  image?: boolean;
}

export interface Host {
  /** `h1`, `h2`, … — also the host's netvol `hostId`. */
  readonly name: string;
  readonly hostId: string;
  /** Its address on the run's bridge. */
  readonly addr: string;
  readonly netns: string;
  /** The bridge end of its veth pair: set it down to cut the host off. */
  readonly bridgePort: string;
  /** The host's private folder (dockerd roots, netvol state and mounts, logs). */
  readonly dir: string;
  readonly stateDir: string;
  /** Where the host's netvol socket shows from the root namespace. */
  readonly socket: string;
  readonly netvolConfigPath: string;
  readonly netvolLogFile: string;
  readonly dockerdLogFile: string;
  readonly dockerdPid: number | undefined;
  readonly netvolPid: number | undefined;
  /** The Debian docker CLI against this host's dockerd; resolves whatever the exit code. */
  docker(args: string[], opts?: RunOptions): Promise<RunResult>;
  /** Like docker(), but rejects with the CLI's output unless it exits 0; resolves with trimmed stdout. */
  dockerOk(args: string[], opts?: RunOptions): Promise<string>;
  /** A program run inside the host's network and mount namespaces. */
  exec(file: string, args: string[], opts?: RunOptions): Promise<RunResult>;
  /** Cuts the host off the bridge (its TCP connections stall, nothing is reset). */
  cut(): Promise<void>;
  /** Puts it back. */
  restore(): Promise<void>;
  readonly isCut: boolean;
  /** Raw `POST /<method>` to this host's netvol. */
  plugin(method: string, body?: unknown): Promise<{ status: number; json: any; raw: string }>;
  netvolLogTail(lines?: number): string;
  dockerdLogTail(lines?: number): string;
}

export interface LoopAttachment {
  host: string;
  device: string;
  backingFile: string;
  readOnly: boolean;
}

export interface Cluster {
  readonly prefix: string;
  /** The run's folder; every host's folder lies below it. */
  readonly root: string;
  readonly bridge: string;
  /** The bridge's own address: the servers listen there. */
  readonly serverAddr: string;
  readonly hosts: Host[];
  readonly sshd: Sshd;
  readonly ganesha: GaneshaServer;
  /** The server-side folder holding one sub-folder per volume of a backend. */
  serverDir(backend: BackendName): string;
  /** The server-side folder of one volume. */
  volumeDir(backend: BackendName, volume: string): string;
  /** Loop devices whose backing file is a host's view of `volume` (every volume when omitted). */
  loopAttachments(volume?: string): LoopAttachment[];
  /** One line per host with the tails of its netvol and dockerd logs, for failure messages. */
  diagnostics(lines?: number): string;
  /** Tears everything down; returns what it could not clean (empty when all went). Idempotent. */
  stop(): Promise<string[]>;
}

// ---------------------------------------------------------------------------------------------
// small helpers

async function sh(file: string, args: string[], opts: RunOptions = {}): Promise<string> {
  const r = await run(file, args, { timeoutMs: 30_000, ...opts });
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

function shSync(file: string, args: string[]): boolean {
  return spawnSync(file, args, { stdio: 'ignore', timeout: 20_000 }).status === 0;
}

function tail(file: string, lines: number): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return `(no ${path.basename(file)})`;
  }
}

/** Whether `p` settles within `ms`; leaves no timer behind either way. */
export async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([p.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A /24 in 10.251.0.0/16 that no address or route of the machine uses yet. */
async function freeSubnet(): Promise<string> {
  const used = (await sh('ip', ['-4', 'route', 'show', 'table', 'all'])) + (await sh('ip', ['-4', 'addr', 'show']));
  for (let i = 0; i < 50; i++) {
    const third = crypto.randomInt(0, 256);
    const net = `10.251.${third}`;
    if (!used.includes(`${net}.`) && !used.includes('10.251.0.0/16')) return net;
  }
  throw new Error('no free /24 in 10.251.0.0/16');
}

/** Loop devices by name with their backing files, read from sysfs. */
function loopDevices(): Array<{ device: string; backingFile: string; readOnly: boolean }> {
  const out: Array<{ device: string; backingFile: string; readOnly: boolean }> = [];
  let entries: string[];
  try {
    entries = fs.readdirSync('/sys/block').filter((e) => /^loop\d+$/.test(e));
  } catch {
    return out;
  }
  for (const e of entries) {
    try {
      const backingFile = fs.readFileSync(`/sys/block/${e}/loop/backing_file`, 'utf8').trim().replace(/ \(deleted\)$/, '');
      const readOnly = fs.readFileSync(`/sys/block/${e}/ro`, 'utf8').trim() === '1';
      out.push({ device: `/dev/${e}`, backingFile, readOnly });
    } catch {
      /* not attached */
    }
  }
  return out;
}

/** The inode number of a loop device's backing file, or undefined when it is not attached. */
function backingInode(device: string): string | undefined {
  const r = spawnSync('losetup', ['-n', '-O', 'BACK-INO', device], { encoding: 'utf8', timeout: 10_000 });
  const ino = (r.stdout ?? '').trim();
  return r.status === 0 && ino !== '' ? ino : undefined;
}

/** The memory cgroup in /proc/<pid>/cgroup (where this machine's sandbox groups a session's processes), or the v2 cgroup. */
function memoryCgroup(text: string): string {
  return /^\d+:memory:(.*)$/m.exec(text)?.[1] ?? /^0::(.*)$/m.exec(text)?.[1] ?? '';
}
const OWN_CGROUP = (() => {
  try {
    return memoryCgroup(fs.readFileSync('/proc/self/cgroup', 'utf8'));
  } catch {
    return '';
  }
})();

/**
 * The pids in a network namespace (every process of a simulated host runs in one). Like `ip netns
 * pids`, but it only looks at candidates: processes in this process's own cgroup, or in the host's
 * container cgroup `marker` (dockerd runs with --cgroup-parent /<netns>). Reading another process's
 * namespace link waits while that process is stuck in the kernel, and a stuck process of some
 * other user of the machine would otherwise hang the harness; a process of ours in
 * uninterruptible sleep is skipped for the same reason (it cannot be killed anyway).
 */
export function netnsPids(netns: string, marker = `/${netns}/`): number[] {
  let ino: number;
  try {
    ino = fs.statSync(`/var/run/netns/${netns}`).ino;
  } catch {
    return [];
  }
  const want = `net:[${ino}]`;
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cgroup = fs.readFileSync(`/proc/${entry}/cgroup`, 'utf8');
      if (memoryCgroup(cgroup) !== OWN_CGROUP && !cgroup.includes(marker)) continue;
      if (/^State:\s+[DZ]/m.test(fs.readFileSync(`/proc/${entry}/status`, 'utf8'))) continue;
      if (fs.readlinkSync(`/proc/${entry}/ns/net`) === want) out.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// hosts

interface HostInternal extends Host {
  start(): Promise<void>;
  /** Best-effort teardown of this host; pushes what is left into `left`. */
  teardown(left: string[]): Promise<void>;
  /** Synchronous last resort when the process exits with the cluster still up. */
  killSync(): void;
}

function makeHost(o: {
  index: number;
  prefix: string;
  root: string;
  subnet: string;
  bridge: string;
  backends: Record<string, Record<string, unknown>>;
  imageTar: string | undefined;
}): HostInternal {
  const name = `h${o.index}`;
  const dir = path.join(o.root, name);
  const addr = `${o.subnet}.${10 + o.index}`;
  const netns = `${o.prefix}-${name}`;
  const bridgePort = `${o.prefix}-${name}b`;
  const innerPort = `${o.prefix}-${name}n`;
  const pluginsDir = path.join(dir, 'plugins');
  const stateDir = path.join(dir, 'state');
  const dockerSocket = path.join(dir, 'd.sock');
  const dockerdLogFile = path.join(dir, 'dockerd.log');
  const netvolLogFile = path.join(dir, 'netvol.log');
  const netvolConfigPath = path.join(dir, 'netvol.json');
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: `unix://${dockerSocket}`, DOCKER_CONFIG: path.join(dir, 'cli') };
  delete env.DOCKER_CONTEXT;
  delete env.DOCKER_TLS_VERIFY;
  delete env.DOCKER_CERT_PATH;

  let dockerd: ChildProcess | undefined;
  let netvol: ChildProcess | undefined;
  let cut = false;
  let netnsMade = false;
  let vethMade = false;

  const docker = (args: string[], opts: RunOptions = {}): Promise<RunResult> =>
    run(DOCKER_CLI, args, { timeoutMs: 90_000, ...opts, env: { ...env, ...(opts.env ?? {}) } });

  const exec = (file: string, args: string[], opts: RunOptions = {}): Promise<RunResult> => {
    if (!dockerd?.pid) return Promise.reject(new Error(`${name} is not running`));
    return run('nsenter', ['-t', String(dockerd.pid), '-m', '-n', '--', file, ...args], opts);
  };

  const startNetwork = async (): Promise<void> => {
    await sh('ip', ['netns', 'add', netns]);
    netnsMade = true;
    await sh('ip', ['link', 'add', bridgePort, 'type', 'veth', 'peer', 'name', innerPort]);
    vethMade = true;
    await sh('ip', ['link', 'set', innerPort, 'netns', netns]);
    await sh('ip', ['link', 'set', bridgePort, 'master', o.bridge]);
    await sh('ip', ['link', 'set', bridgePort, 'up']);
    await sh('ip', ['-n', netns, 'link', 'set', innerPort, 'name', 'eth0']);
    // Only IPv4 on the bridge's /24: no link-local chatter, no default route.
    await run('nsenter', [`--net=/var/run/netns/${netns}`, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1']);
    await sh('ip', ['-n', netns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0']);
    await sh('ip', ['-n', netns, 'link', 'set', 'eth0', 'up']);
    await sh('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
  };

  const startDockerd = async (): Promise<void> => {
    const dataRoot = path.join(dir, 'data');
    const execRoot = path.join(dir, 'exec');
    const configFile = path.join(dir, 'daemon.json');
    for (const d of [dataRoot, execRoot, pluginsDir, stateDir, path.join(dir, 'mnt')]) fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(configFile, '{}\n');
    fs.mkdirSync('/run/docker/plugins', { recursive: true });
    const dockerdArgs = [
      '--config-file', configFile,
      '--iptables=false', '--ip-masq=false', '--bridge=none',
      '--storage-driver=vfs',
      '--data-root', dataRoot,
      '--exec-root', execRoot,
      '-H', `unix://${dockerSocket}`,
      '--pidfile', path.join(dir, 'd.pid'),
      '--shutdown-timeout', '5',
      // Containers in cgroups named after the host, so netnsPids() finds them without reading
      // every process on the machine.
      '--cgroup-parent', `/${netns}`,
    ];
    // Not `ip netns exec`: it remounts /sys and dockerd then finds no cgroup mounts. Each exec
    // replaces the previous program, so the child's pid is dockerd's.
    const script = `set -e; mount --bind "$1" /run/docker/plugins; shift; exec "$@"`;
    const out = fs.openSync(dockerdLogFile, 'a');
    const c = spawn(
      'nsenter',
      [`--net=/var/run/netns/${netns}`, '--', 'unshare', '--mount', '--propagation', 'private', '--', 'bash', '-c', script, 'bash', pluginsDir, DOCKERD, ...dockerdArgs],
      { stdio: ['ignore', out, out], env },
    );
    fs.closeSync(out);
    dockerd = c;
    let exited: string | undefined;
    c.on('exit', (code, signal) => (exited = `dockerd on ${name} exited (${code ?? signal})`));
    await waitFor(
      `dockerd on ${name} to answer`,
      async () => {
        if (exited) throw new Error(`${exited}\n${tail(dockerdLogFile, 30)}`);
        const r = await docker(['version', '--format', '{{.Server.Version}}'], { timeoutMs: 10_000 });
        return r.code === 0 && r.stdout.trim() !== '' ? true : undefined;
      },
      60_000,
      250,
    );
    if (o.imageTar) {
      const r = await docker(['import', o.imageTar, BUSYBOX_IMAGE], { timeoutMs: 90_000 });
      if (r.code !== 0) throw new Error(`docker import on ${name} failed: ${r.stderr}`);
    }
  };

  const startNetvol = async (): Promise<void> => {
    const config = {
      socket: '/run/docker/plugins/netvol.sock',
      stateDir,
      mountRoot: path.join(dir, 'mnt'),
      logLevel: 'debug',
      hostId: name,
      // netvol announces itself to this host's own dockerd (and never to another dockerd of the machine).
      dockerHost: `unix://${dockerSocket}`,
      defaultBackend: 'sftp',
      backends: o.backends,
    };
    fs.writeFileSync(netvolConfigPath, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
    const out = fs.openSync(netvolLogFile, 'a');
    const c = spawn('nsenter', ['-t', String(dockerd!.pid), '-m', '-n', '--', process.execPath, MAIN_JS, '--config', netvolConfigPath], {
      stdio: ['ignore', out, out],
      cwd: REPO_ROOT,
      env: { ...process.env, NODE_ENV: 'test' },
    });
    fs.closeSync(out);
    netvol = c;
    let exited: string | undefined;
    c.on('exit', (code, signal) => (exited = `netvol on ${name} exited (${code ?? signal})`));
    const socket = path.join(pluginsDir, 'netvol.sock');
    await waitFor(
      `netvol on ${name} to answer Plugin.Activate`,
      async () => {
        if (exited) throw new Error(`${exited}\n${tail(netvolLogFile, 30)}`);
        if (!fs.existsSync(socket)) return undefined;
        const r = await pluginRequest(socket, 'Plugin.Activate', undefined, { timeoutMs: 2000 });
        return r.status === 200 && Array.isArray(r.json?.Implements) ? true : undefined;
      },
      30_000,
      100,
    );
  };

  const stopProcess = async (c: ChildProcess | undefined, graceMs: number): Promise<void> => {
    if (!c?.pid || c.exitCode !== null || c.signalCode !== null) return;
    const done = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGTERM');
    if (!(await within(done, graceMs))) {
      c.kill('SIGKILL');
      await within(done, 5000);
    }
  };

  /** Loop devices that are this host's (backing file below its folder), read while its namespace lives. */
  const ownLoops = (): Array<{ device: string; backingFile: string; readOnly: boolean }> =>
    loopDevices().filter((l) => l.backingFile.startsWith(`${dir}/`));

  const host: HostInternal = {
    name,
    hostId: name,
    addr,
    netns,
    bridgePort,
    dir,
    stateDir,
    socket: path.join(pluginsDir, 'netvol.sock'),
    netvolConfigPath,
    netvolLogFile,
    dockerdLogFile,
    get dockerdPid() {
      return dockerd?.pid;
    },
    get netvolPid() {
      return netvol?.pid;
    },
    get isCut() {
      return cut;
    },
    docker,
    async dockerOk(args, opts) {
      const r = await docker(args, opts);
      if (r.code !== 0) throw new Error(`docker ${args.join(' ')} on ${name} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
      return r.stdout.trim();
    },
    exec,
    async cut() {
      await sh('ip', ['link', 'set', bridgePort, 'down']);
      cut = true;
    },
    async restore() {
      await sh('ip', ['link', 'set', bridgePort, 'up']);
      cut = false;
    },
    plugin(method, body) {
      return pluginRequest(path.join(pluginsDir, 'netvol.sock'), method, body, { timeoutMs: 60_000 });
    },
    netvolLogTail: (lines = 40) => tail(netvolLogFile, lines),
    dockerdLogTail: (lines = 40) => tail(dockerdLogFile, lines),

    async start() {
      fs.mkdirSync(dir, { recursive: true });
      await startNetwork();
      await startDockerd();
      await startNetvol();
    },

    async teardown(left) {
      if (cut) await host.restore().catch(() => undefined);
      if (dockerd?.pid && isAlive(dockerd.pid)) {
        // Containers first, so dockerd sends its Unmounts while netvol still answers.
        const ps = await docker(['ps', '-aq'], { timeoutMs: 30_000 }).catch(() => undefined);
        const ids = (ps?.stdout ?? '').split('\n').map((s) => s.trim()).filter(Boolean);
        if (ids.length > 0) await docker(['rm', '-f', ...ids], { timeoutMs: 60_000 }).catch(() => undefined);
      }
      await stopProcess(netvol, 15_000);
      // While the mount namespace still lives: unmount everything of this host (deepest first) and
      // detach its loop devices. Once the namespace is gone their backing files show as bare names.
      const loops = ownLoops().map((l) => ({ ...l, ino: backingInode(l.device) }));
      if (dockerd?.pid && isAlive(dockerd.pid)) {
        const info = await run('cat', [`/proc/${dockerd.pid}/mountinfo`]).catch(() => undefined);
        const mps = (info?.stdout ?? '')
          .split('\n')
          .map((l) => l.split(' ')[4])
          .filter((mp): mp is string => !!mp && mp.startsWith(`${dir}/`))
          .map((mp) => mp.replace(/\\([0-7]{3})/g, (_, n: string) => String.fromCharCode(parseInt(n, 8))))
          .sort((a, b) => b.length - a.length);
        for (const mp of mps) await exec('umount', ['-l', mp], { timeoutMs: 20_000 }).catch(() => undefined);
      }
      for (const l of loops) await run('losetup', ['-d', l.device], { timeoutMs: 20_000 }).catch(() => undefined);
      await stopProcess(dockerd, 20_000);
      // Whatever is left in the namespace (containerd, shims, containers on the host network,
      // sshfs and FUSE helpers) is this host's.
      for (let pass = 0; pass < 20; pass++) {
        const pids = netnsMade ? netnsPids(netns) : [];
        if (pids.length === 0) break;
        for (const p of pids) {
          try {
            process.kill(p, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
        await sleep(250);
      }
      if (netnsMade && netnsPids(netns).length > 0) left.push(`processes in netns ${netns}: ${netnsPids(netns).join(' ')}`);
      // Loops the kernel still holds, recognised by the inode they were backed by.
      for (const l of loops) {
        if (fs.existsSync(`/sys/block/${path.basename(l.device)}/loop/backing_file`) && l.ino && backingInode(l.device) === l.ino) {
          await run('losetup', ['-d', l.device], { timeoutMs: 20_000 }).catch(() => undefined);
          if (fs.existsSync(`/sys/block/${path.basename(l.device)}/loop/backing_file`)) left.push(`loop device ${l.device} (${l.backingFile})`);
        }
      }
      if (netnsMade) {
        if (!shSync('ip', ['netns', 'del', netns])) left.push(`netns ${netns}`);
        netnsMade = false;
      }
      if (vethMade) {
        // Deleting the namespace deletes the pair, a moment later.
        const gone = (): boolean => !fs.existsSync(`/sys/class/net/${bridgePort}`);
        for (let i = 0; i < 20 && !gone(); i++) await sleep(100);
        if (!gone()) shSync('ip', ['link', 'del', bridgePort]);
        if (!gone()) left.push(`veth ${bridgePort}`);
        vethMade = false;
      }
    },

    killSync() {
      for (const p of netnsMade ? netnsPids(netns) : []) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      if (netnsMade) shSync('ip', ['netns', 'del', netns]);
      if (vethMade && fs.existsSync(`/sys/class/net/${bridgePort}`)) shSync('ip', ['link', 'del', bridgePort]);
    },
  };
  return host;
}

// ---------------------------------------------------------------------------------------------
// the cluster

export async function startCluster(opts: HostOptions = {}): Promise<Cluster> {
  if (!fs.existsSync(MAIN_JS)) throw new Error(`${MAIN_JS} is missing: run \`npm run build\` first`);
  const count = opts.hosts ?? 3;
  const prefix = `nvt${crypto.randomBytes(2).toString('hex')}`;
  const root = fs.mkdtempSync(`/tmp/nvmh-${prefix}-`);
  const bridge = `${prefix}-br`;
  const hosts: HostInternal[] = [];
  let sshd: Sshd | undefined;
  let ganesha: GaneshaServer | undefined;
  let bridgeMade = false;
  let stopped: Promise<string[]> | undefined;

  const exitHook = (): void => {
    for (const h of hosts) h.killSync();
    if (bridgeMade) shSync('ip', ['link', 'del', bridge]);
  };
  process.on('exit', exitHook);

  const stop = (): Promise<string[]> =>
    (stopped ??= (async () => {
      const left: string[] = [];
      await Promise.all(hosts.map((h) => h.teardown(left).catch((err: Error) => left.push(`${h.name}: ${err.message}`))));
      archiveLogs();
      if (sshd) await sshd.cleanup().catch((err: Error) => left.push(`sshd: ${err.message}`));
      if (ganesha) await ganesha.stop().catch((err: Error) => left.push(`ganesha: ${err.message}`));
      if (bridgeMade) {
        if (!shSync('ip', ['link', 'del', bridge])) left.push(`bridge ${bridge}`);
        bridgeMade = false;
      }
      const mounted = mountsUnder(root);
      if (mounted.length > 0) left.push(`mounts under ${root}: ${mounted.map((m) => m.mountPoint).join(', ')}`);
      else fs.rmSync(root, { recursive: true, force: true });
      for (const l of loopDevices()) if (l.backingFile.startsWith(`${root}/`)) left.push(`loop device ${l.device} (${l.backingFile})`);
      process.removeListener('exit', exitHook);
      return left;
    })());

  const archiveLogs = (): void => {
    try {
      const to = path.join(LOG_ARCHIVE, prefix);
      fs.mkdirSync(to, { recursive: true });
      for (const h of hosts) {
        for (const f of [h.netvolLogFile, h.dockerdLogFile]) {
          if (fs.existsSync(f)) fs.copyFileSync(f, path.join(to, `${h.name}-${path.basename(f)}`));
        }
      }
      if (sshd && fs.existsSync(sshd.logFile)) fs.copyFileSync(sshd.logFile, path.join(to, 'sshd.log'));
      if (ganesha && fs.existsSync(ganesha.logFile)) fs.copyFileSync(ganesha.logFile, path.join(to, 'ganesha.log'));
    } catch {
      /* logs are a convenience */
    }
  };

  try {
    const subnet = await freeSubnet();
    const serverAddr = `${subnet}.1`;
    await sh('ip', ['link', 'add', bridge, 'type', 'bridge']);
    bridgeMade = true;
    // Frames between hosts on this bridge stay out of the machine's iptables (br_netfilter).
    await run('ip', ['link', 'set', bridge, 'type', 'bridge', 'nf_call_iptables', '0', 'nf_call_ip6tables', '0', 'nf_call_arptables', '0']);
    await sh('ip', ['addr', 'add', `${serverAddr}/24`, 'dev', bridge]);
    await sh('ip', ['link', 'set', bridge, 'up']);

    [sshd, ganesha] = await Promise.all([startSshd({ listenAddress: serverAddr }), startGanesha({ host: serverAddr })]);
    const backends: Record<string, Record<string, unknown>> = {
      sftp: { type: 'sftp', ...sftpOptions(sshd), leaseSeconds: LEASE_SECONDS },
      nfs: { type: 'nfs', ...nfsOptions(ganesha), leaseSeconds: LEASE_SECONDS },
    };
    // sshd only makes its root: the backend makes `volumes` itself, ganesha's export is there.
    const imageTar = opts.image === false ? undefined : buildBusyboxTar(root);
    for (let i = 1; i <= count; i++) hosts.push(makeHost({ index: i, prefix, root, subnet, bridge, backends, imageTar }));
    // dockerd start-up is mostly waiting: start them together.
    await Promise.all(hosts.map((h) => h.start()));
    if (imageTar) fs.rmSync(imageTar, { force: true });

    const s = sshd;
    const g = ganesha;
    const serverDir = (b: BackendName): string => (b === 'sftp' ? path.join(s.root, 'volumes') : path.join(g.exportDir, 'volumes'));
    return {
      prefix,
      root,
      bridge,
      serverAddr,
      hosts,
      sshd: s,
      ganesha: g,
      serverDir,
      volumeDir: (b, volume) => path.join(serverDir(b), volume),
      loopAttachments(volume) {
        const out: LoopAttachment[] = [];
        for (const l of loopDevices()) {
          const h = hosts.find((x) => l.backingFile.startsWith(`${x.dir}/`));
          if (!h) continue;
          if (volume !== undefined && !l.backingFile.split('/').includes(volume)) continue;
          out.push({ host: h.name, ...l });
        }
        return out;
      },
      diagnostics(lines = 25) {
        return hosts
          .map((h) => `--- ${h.name} netvol log ---\n${h.netvolLogTail(lines)}\n--- ${h.name} dockerd log ---\n${h.dockerdLogTail(Math.ceil(lines / 2))}`)
          .join('\n');
      },
      stop,
    };
  } catch (err) {
    const left = await stop();
    if (left.length > 0) process.stderr.write(`multihost: left after a failed start: ${left.join('; ')}\n`);
    throw err;
  }
}

/** A volume name unique to this run. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${crypto.randomBytes(3).toString('hex')}`;
}

/** `docker run` on a host: never pulls, and stays on the host's own network namespace. */
export function runArgs(args: string[]): string[] {
  return ['run', '--network', 'host', '--pull', 'never', ...args];
}
