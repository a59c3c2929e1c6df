// Starts a private nfs-ganesha (NFSv3, VFS backend) on 127.0.0.1 for tests,
// plus rpcbind if none is running.
//
// rpcbind is shared by every ganesha on the machine, and each ganesha rewrites
// the NFS and MOUNT registrations when it starts and erases them when it
// stops. Instances therefore start and stop under a cross-process lock, and a
// test that needs the registrations to point at its own server (portmapper
// discovery) asks for `exclusiveRpcbind`, which holds that lock for the
// server's whole life. An rpcbind started here is stopped by the last
// harness instance to stop; an rpcbind someone else started is never touched.

import { ChildProcess, spawn } from 'node:child_process';
import { promises as fsp, existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { MOUNT_PROGRAM, MOUNT_VERSION, NFS_PROGRAM, NFS_VERSION, PMAP_PORT, RpcClient, lookupPort } from '../../src/nfs';

const LOOPBACK = '127.0.0.1';
const SHARED_DIR = path.join(os.tmpdir(), 'netvol-ganesha-shared');
const LOCK_DIR = path.join(SHARED_DIR, 'lock');
const INSTANCES_DIR = path.join(SHARED_DIR, 'instances');
const RPCBIND_PID_FILE = path.join(SHARED_DIR, 'rpcbind.pid');

export interface GaneshaOptions {
  /** Local address ganesha binds and is probed on; default 127.0.0.1 (rpcbind stays on 127.0.0.1). */
  host?: string;
  /** Directory to export; a fresh one under the work directory by default. */
  exportDir?: string;
  /** Keep rpcbind's NFS/MOUNT registrations pointing at this server until stop(). */
  exclusiveRpcbind?: boolean;
  /** How long to wait for the server to answer. Default 30 s. */
  startTimeoutMs?: number;
}

export interface GaneshaServer {
  readonly host: string;
  readonly nfsPort: number;
  readonly mountPort: number;
  /** The path to pass to MOUNT (ganesha's v3 exports are named by their directory). */
  readonly exportPath: string;
  readonly exportDir: string;
  readonly workDir: string;
  readonly logFile: string;
  /** Pid of the running ganesha, or undefined while it is stopped. */
  readonly pid: number | undefined;
  /** Stops ganesha and rpcbind (if started here and no longer used) and removes the work directory. */
  stop(): Promise<void>;
  /** Stops ganesha and starts it again on the same ports and export. */
  restart(): Promise<void>;
  /** Stops only the ganesha process (the server looks dead until startServer()). */
  stopServer(): Promise<void>;
  startServer(): Promise<void>;
  /** SIGKILL, as a crash: connections are cut with no clean shutdown. */
  crash(): Promise<void>;
  /** SIGSTOP, resolved once every ganesha thread is stopped: the server keeps its sockets but stops answering. */
  pause(): Promise<void>;
  resume(): void;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function processName(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** True when every thread of the process is in the stopped state. */
function allThreadsStopped(pid: number): boolean {
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (!'TtZX'.includes(state)) return false;
    }
    return true;
  } catch {
    return false;
  }
}

// ---- cross-process lock (a directory holding its owner's pid) -------------

async function acquireLock(timeoutMs: number): Promise<() => Promise<void>> {
  await fsp.mkdir(SHARED_DIR, { recursive: true });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await fsp.mkdir(LOCK_DIR);
      await fsp.writeFile(path.join(LOCK_DIR, 'owner'), String(process.pid));
      let released = false;
      return async () => {
        if (released) return;
        released = true;
        await fsp.rm(LOCK_DIR, { recursive: true, force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    await breakStaleLock();
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for the ganesha harness lock`);
    await sleep(50 + Math.random() * 50);
  }
}

async function breakStaleLock(): Promise<void> {
  try {
    const owner = Number(await fsp.readFile(path.join(LOCK_DIR, 'owner'), 'utf8'));
    if (owner > 0 && !isAlive(owner)) await fsp.rm(LOCK_DIR, { recursive: true, force: true });
  } catch {
    // No owner file: either being created right now, or left by a crash.
    const st = await fsp.stat(LOCK_DIR).catch(() => undefined);
    if (st && Date.now() - st.mtimeMs > 10_000) await fsp.rm(LOCK_DIR, { recursive: true, force: true });
  }
}

// ---- helpers --------------------------------------------------------------

async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

async function answersNull(port: number, prog: number, vers: number, timeoutMs = 1000, host = LOOPBACK): Promise<boolean> {
  let rpc: RpcClient | undefined;
  try {
    rpc = await RpcClient.connect({ host, port, timeoutMs, connectTimeoutMs: timeoutMs });
    await rpc.call(prog, vers, 0, undefined, { name: 'NULL' });
    return true;
  } catch {
    return false;
  } finally {
    rpc?.close();
  }
}

async function ensureRpcbind(): Promise<void> {
  if (await answersNull(PMAP_PORT, 100000, 2)) return;
  const child = spawn('rpcbind', ['-w', '-f'], { stdio: 'ignore', detached: true });
  child.unref();
  if (child.pid) await fsp.writeFile(RPCBIND_PID_FILE, String(child.pid));
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (await answersNull(PMAP_PORT, 100000, 2)) return;
    await sleep(100);
  }
  throw new Error('rpcbind did not start answering on 127.0.0.1:111 within 10 s');
}

/** Stops the rpcbind this harness started, when no harness ganesha is left. */
function stopRpcbindIfUnused(): void {
  for (const name of readdirSync(INSTANCES_DIR)) {
    const pid = Number(name);
    if (pid > 0 && isAlive(pid) && processName(pid)?.startsWith('ganesha')) return;
    rmSync(path.join(INSTANCES_DIR, name), { force: true });
  }
  if (!existsSync(RPCBIND_PID_FILE)) return;
  const pid = Number(readFileSync(RPCBIND_PID_FILE, 'utf8'));
  rmSync(RPCBIND_PID_FILE, { force: true });
  if (pid > 0 && processName(pid) === 'rpcbind') process.kill(pid, 'SIGTERM');
}

function config(o: { host: string; nfsPort: number; mountPort: number; exportDir: string; workDir: string }): string {
  return `
NFS_CORE_PARAM {
  NFS_Port = ${o.nfsPort};
  MNT_Port = ${o.mountPort};
  Enable_NLM = false;
  Enable_RQUOTA = false;
  Enable_UDP = false;
  Protocols = 3, 4;
  Bind_addr = ${o.host};
}
NFS_KRB5 { Active_krb5 = false; }
NFSV4 {
  Graceless = true;
  RecoveryRoot = "${path.join(o.workDir, 'recovery')}";
}
EXPORT {
  Export_Id = 1;
  Path = "${o.exportDir}";
  Pseudo = /export;
  Access_Type = RW;
  Squash = No_Root_Squash;
  SecType = sys;
  Protocols = 3, 4;
  Transports = TCP;
  FSAL { Name = VFS; }
}
`;
}

// ---- the server -----------------------------------------------------------

export async function startGanesha(opts: GaneshaOptions = {}): Promise<GaneshaServer> {
  const startTimeoutMs = opts.startTimeoutMs ?? 30_000;
  const workDir = await fsp.realpath(await fsp.mkdtemp(path.join(os.tmpdir(), 'netvol-ganesha-')));
  const exportDir = await fsp.realpath(
    opts.exportDir ?? (await fsp.mkdir(path.join(workDir, 'export'), { recursive: true }), path.join(workDir, 'export')),
  );
  await fsp.mkdir(path.join(workDir, 'recovery'), { recursive: true });
  await fsp.mkdir(INSTANCES_DIR, { recursive: true });
  const host = opts.host ?? LOOPBACK;
  const nfsPort = await freePort(host);
  let mountPort = await freePort(host);
  while (mountPort === nfsPort) mountPort = await freePort(host);
  const confFile = path.join(workDir, 'ganesha.conf');
  const logFile = path.join(workDir, 'ganesha.log');
  const pidFile = path.join(workDir, 'ganesha.pid');
  await fsp.writeFile(confFile, config({ host, nfsPort, mountPort, exportDir, workDir }));

  let child: ChildProcess | undefined;
  let exited: Promise<void> | undefined;
  let heldLock: (() => Promise<void>) | undefined;

  const logTail = async (): Promise<string> => {
    const text = await fsp.readFile(logFile, 'utf8').catch(() => '');
    return text.split('\n').slice(-15).join('\n');
  };

  const withLock = async <T>(fn: () => Promise<T>): Promise<T> => {
    if (heldLock) return fn();
    const release = await acquireLock(120_000);
    try {
      return await fn();
    } finally {
      await release();
    }
  };

  const spawnServer = async (): Promise<void> => {
    await ensureRpcbind();
    const proc = spawn('ganesha.nfsd', ['-F', '-f', confFile, '-L', logFile, '-p', pidFile, '-N', 'NIV_EVENT'], {
      stdio: 'ignore',
    });
    child = proc;
    let gone = false;
    exited = new Promise<void>((resolve) => {
      proc.once('exit', () => {
        gone = true;
        resolve();
      });
      proc.once('error', () => {
        gone = true;
        resolve();
      });
    });
    if (proc.pid) await fsp.writeFile(path.join(INSTANCES_DIR, String(proc.pid)), workDir);
    const deadline = Date.now() + startTimeoutMs;
    for (;;) {
      if (gone) throw new Error(`ganesha.nfsd exited during startup; log:\n${await logTail()}`);
      if ((await answersNull(nfsPort, NFS_PROGRAM, NFS_VERSION, 1000, host)) && (await answersNull(mountPort, MOUNT_PROGRAM, MOUNT_VERSION, 1000, host))) {
        break;
      }
      if (Date.now() > deadline) {
        await killServer();
        throw new Error(`ganesha.nfsd did not answer NULL within ${startTimeoutMs} ms; log:\n${await logTail()}`);
      }
      await sleep(100);
    }
    // Registration happens during startup; make sure it is ours before others may change it.
    if (heldLock) {
      while ((await lookupPort({ host: LOOPBACK }, NFS_PROGRAM, NFS_VERSION).catch(() => 0)) !== nfsPort) {
        if (Date.now() > deadline) throw new Error('ganesha did not register with rpcbind');
        await sleep(100);
      }
    }
  };

  const killServer = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    const proc = child;
    if (!proc || !exited) return;
    child = undefined;
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill(signal);
      proc.kill('SIGCONT');
      let timer: NodeJS.Timeout | undefined;
      const done = await Promise.race([
        exited.then(() => true),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 10_000))),
      ]);
      clearTimeout(timer);
      if (!done) {
        proc.kill('SIGKILL');
        await exited;
      }
    }
    if (proc.pid) rmSync(path.join(INSTANCES_DIR, String(proc.pid)), { force: true });
  };

  if (opts.exclusiveRpcbind) heldLock = await acquireLock(120_000);
  try {
    await withLock(spawnServer);
  } catch (err) {
    await killServer();
    await heldLock?.();
    await fsp.rm(workDir, { recursive: true, force: true });
    throw err;
  }

  let stopped = false;
  return {
    host,
    nfsPort,
    mountPort,
    exportPath: exportDir,
    exportDir,
    workDir,
    logFile,
    get pid() {
      return child?.pid;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        await withLock(async () => {
          await killServer();
          stopRpcbindIfUnused();
        });
      } finally {
        await heldLock?.();
        heldLock = undefined;
        await fsp.rm(workDir, { recursive: true, force: true });
      }
    },
    async restart() {
      await withLock(async () => {
        await killServer();
        await spawnServer();
      });
    },
    async stopServer() {
      await withLock(() => killServer());
    },
    async crash() {
      await withLock(() => killServer('SIGKILL'));
    },
    async startServer() {
      if (child) return;
      await withLock(spawnServer);
    },
    async pause() {
      const pid = child?.pid;
      if (!pid) return;
      child!.kill('SIGSTOP');
      const deadline = Date.now() + 5_000;
      while (!allThreadsStopped(pid)) {
        if (Date.now() > deadline) throw new Error('ganesha did not stop after SIGSTOP');
        await sleep(10);
      }
    },
    resume() {
      child?.kill('SIGCONT');
    },
  };
}

/**
 * A netvol nfs backend's options (without `type`) for `g`: the export's folder `volumes`, the
 * userspace mounter; `extra` is merged over them.
 */
export function nfsOptions(g: GaneshaServer, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { server: g.host, export: g.exportPath, port: g.nfsPort, mountPort: g.mountPort, path: 'volumes', mounter: 'userspace', ...extra };
}
