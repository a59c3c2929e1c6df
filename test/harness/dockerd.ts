/**
 * A private, real dockerd for the e2e tier (Debian docker.io 20.10), with its own data-root,
 * exec-root and socket, so tests never touch another dockerd on the machine. Containers run with
 * `--network none` from `busybox:local`, an image imported from the host's static busybox.
 *
 * This file also holds the small process and mount helpers the e2e harnesses share. Nothing here
 * imports src/: the harness must keep working while the daemon under test is broken.
 */
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BUSYBOX_IMAGE, buildBusyboxTar } from './busybox';

export { BUSYBOX_IMAGE };

/** The Debian CLI that matches dockerd 20.10; /usr/local/bin/docker may be a newer client. */
export const DOCKER_CLI = '/usr/bin/docker';
export const DOCKERD = '/usr/sbin/dockerd';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Milliseconds before the child is killed and the call rejects. Default 60 s. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Written to the child's stdin, which is then closed. */
  input?: string | Buffer;
}

/** Runs a program with an argv array and resolves with its exit code and output, whatever the code. */
export function run(file: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${file}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(
          new Error(
            `${file} ${args.join(' ')} did not finish within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`,
          ),
        );
      } else {
        resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr });
      }
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits for `p`, but at most `ms`; the timer is cleared either way, so it never holds jest open. */
export async function settleWithin(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([p, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` until it returns a value other than undefined/false, or throws after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? `: ${lastError.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(intervalMs);
  }
}

export function isAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Sends SIGTERM, waits up to `graceMs`, then SIGKILL and waits up to 5 s more. */
export async function terminate(pid: number | undefined, graceMs: number): Promise<void> {
  if (!isAlive(pid)) return;
  try {
    process.kill(pid!, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(100);
  if (isAlive(pid)) {
    try {
      process.kill(pid!, 'SIGKILL');
    } catch {
      /* already gone */
    }
    const killDeadline = Date.now() + 5000;
    while (isAlive(pid) && Date.now() < killDeadline) await sleep(50);
  }
}

/** Milliseconds since the epoch at which `pid` started, from /proc (1 s resolution), or undefined. */
export function processStartMs(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime, in clock ticks since boot) counts from the field after the ")" that ends comm.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[19]);
    const btime = /^btime (\d+)$/m.exec(fs.readFileSync('/proc/stat', 'utf8'));
    if (!btime || !Number.isFinite(ticks)) return undefined;
    return Number(btime[1]) * 1000 + (ticks * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** USER_HZ: what Linux reports /proc times in, 100 on every architecture Docker runs on. */
const CLOCK_TICKS_PER_SECOND = 100;

/**
 * A process's state letter and parent from /proc/<pid>/status, which never blocks. Reading the
 * `cmdline` or `stat` of a process in uninterruptible sleep (D: e.g. stuck on a frozen FUSE mount
 * of another test) can block the reader for as long, so callers look at the state first.
 */
export function processStatus(pid: number): { state: string; ppid: number } | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const state = /^State:\s+(\S)/m.exec(text)?.[1];
    const ppid = /^PPid:\s+(\d+)/m.exec(text)?.[1];
    return state && ppid ? { state, ppid: Number(ppid) } : undefined;
  } catch {
    return undefined;
  }
}

/** This process and its ancestors: never ours to kill, whatever their command lines say. */
function selfAndAncestors(): Set<number> {
  const out = new Set<number>([process.pid]);
  let pid = process.ppid;
  while (pid > 1 && !out.has(pid)) {
    out.add(pid);
    pid = processStatus(pid)?.ppid ?? 0;
  }
  return out;
}

/**
 * Whether one argv element names `dir` or a path below it: the path starts the element or follows
 * "=", ":" or ",", and ends the element or goes on with "/" or ",". So `/tmp/nvd-ab12cd` matches
 * `--data-root=/tmp/nvd-ab12cd/data` but never `/tmp/nvd-ab12cd2`, nor a shell command line that
 * merely mentions it (`sh -c "ls /tmp/nvd-ab12cd"`).
 */
export function argNamesPath(arg: string, dir: string): boolean {
  for (let at = arg.indexOf(dir); at >= 0; at = arg.indexOf(dir, at + 1)) {
    const before = at === 0 ? '' : arg[at - 1];
    const after = arg[at + dir.length] ?? '';
    if ((before === '' || '=:,'.includes(before)) && (after === '' || after === '/' || after === ',')) return true;
  }
  return false;
}

export interface OwnProcessFilter {
  /**
   * Only processes started at or after this time (ms since the epoch, e.g. when the run made its
   * folder): nothing that ran before the folder existed can be the run's helper.
   */
  startedAfterMs?: number;
}

/**
 * Pids whose argv names `dir` (a folder this run created, with a unique random name) as a path;
 * never this process or its ancestors. Helpers left behind by a killed parent are found this way.
 */
export function pidsMentioning(dir: string, filter: OwnProcessFilter = {}): number[] {
  assertOwnFolder(dir);
  const exclude = selfAndAncestors();
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (exclude.has(pid)) continue;
    // Zombies are gone already; a process in D cannot be killed until it wakes, and reading its
    // command line could block this one with it.
    const st = processStatus(pid);
    if (!st || st.state === 'Z' || st.state === 'D') continue;
    try {
      const argv = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (!argv.some((a) => argNamesPath(a, dir))) continue;
      if (filter.startedAfterMs !== undefined) {
        const started = processStartMs(pid);
        // /proc/stat's boot time has a 1 s resolution: allow that much.
        if (started === undefined || started < filter.startedAfterMs - 1000) continue;
      }
      out.push(pid);
    } catch {
      /* gone */
    }
  }
  return out;
}

/** SIGKILLs what pidsMentioning(dir, filter) finds: only this run's own helpers, by its own folder. */
export function killAllMentioning(dir: string, filter: OwnProcessFilter = {}): void {
  for (const pid of pidsMentioning(dir, filter)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/** Refuses a folder that could name more than one run's files ("/", "/tmp", a relative path). */
function assertOwnFolder(dir: string): void {
  if (!path.isAbsolute(dir) || path.normalize(dir) !== dir || dir.endsWith('/') || dir.split('/').length < 3) {
    throw new Error(`harness: refusing to look for processes by ${JSON.stringify(dir)}: give the run's own folder (e.g. /tmp/nvd-XXXXXX)`);
  }
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export interface MountEntry {
  mountPoint: string;
  source: string;
  fsType: string;
}

export function mountsUnder(root: string): MountEntry[] {
  const text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  const prefix = root.endsWith('/') ? root : `${root}/`;
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [left, right] = line.split(' - ');
    const mp = unescapeMountinfo(left.split(' ')[4]);
    const [fsType, source] = (right ?? '').split(' ');
    if (mp === root || mp.startsWith(prefix)) out.push({ mountPoint: mp, source: unescapeMountinfo(source ?? ''), fsType });
  }
  return out;
}

/** Loop devices whose backing file lies below `root`, as `losetup -l` reports them. */
export function loopsBackedUnder(root: string): string[] {
  const loops = spawnSync('losetup', ['-l', '-n', '-O', 'NAME,BACK-FILE'], { encoding: 'utf8', timeout: 10_000 });
  const out: string[] = [];
  for (const line of (loops.stdout ?? '').split('\n')) {
    const m = /^(\S+)\s+(.*)$/.exec(line.trim());
    if (m && m[2].replace(/ \(deleted\)$/, '').startsWith(`${root}/`)) out.push(m[1]);
  }
  return out;
}

/**
 * Unmounts everything at or below `root`, deepest first, then detaches the loop devices whose
 * backing file lies below `root` (only those: a loop device mounted here but backed by someone
 * else's file is not ours to detach). Returns what is still mounted afterwards.
 */
export function unmountUnder(root: string): MountEntry[] {
  for (let pass = 0; pass < 3; pass++) {
    const mounts = mountsUnder(root).sort((a, b) => b.mountPoint.length - a.mountPoint.length);
    for (const m of mounts) {
      const r = spawnSync('umount', [m.mountPoint], { stdio: 'ignore', timeout: 20_000 });
      if (r.status !== 0) spawnSync('umount', ['-l', m.mountPoint], { stdio: 'ignore', timeout: 20_000 });
    }
    for (const dev of loopsBackedUnder(root)) spawnSync('losetup', ['-d', dev], { stdio: 'ignore', timeout: 10_000 });
    if (mounts.length === 0) break;
  }
  return mountsUnder(root);
}

/** Removes `dir` only if nothing is mounted below it (never delete through a live mount). */
export function removeTree(dir: string): void {
  const left = unmountUnder(dir);
  if (left.length > 0) {
    process.stderr.write(`harness: not removing ${dir}: still mounted: ${left.map((m) => m.mountPoint).join(', ')}\n`);
    return;
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// dockerd

export interface Dockerd {
  /** `unix:///tmp/nvd-…/d.sock`, for DOCKER_HOST. */
  readonly host: string;
  readonly dataRoot: string;
  readonly execRoot: string;
  /** dockerd's own stdout and stderr. */
  readonly logFile: string;
  /** Runs the Debian docker CLI against this dockerd; resolves whatever the exit code. */
  docker(args: string[], opts?: RunOptions): Promise<RunResult>;
  /** Like docker(), but rejects with the CLI's output when the exit code is not 0; resolves with trimmed stdout. */
  dockerOk(args: string[], opts?: RunOptions): Promise<string>;
  /** `docker run --network none --pull never <args>`: every container in the tier is offline and never pulls. */
  runContainer(args: string[], opts?: RunOptions): Promise<RunResult>;
  /** Stops dockerd (SIGTERM, its containers stop with it) and starts it again on the same roots. */
  restart(): Promise<void>;
  /**
   * Force-removes every container of this dockerd, and the volumes it owns: its `local` volumes
   * (they live in its own data-root) and those of the plugin drivers named here (the caller's own,
   * with names unique to the run). Never a volume of another driver: this dockerd sees every plugin
   * socket in /run/docker/plugins, including other daemons' (best effort, for afterAll).
   */
  removeAll(ownDrivers?: string[]): Promise<void>;
  /** Stops dockerd and its containerd, unmounts what it left, removes its folders. Idempotent. */
  stop(): Promise<void>;
  /** The tail of dockerd's log, for failure messages. */
  logTail(lines?: number): string;
}

export interface StartDockerdOptions {
  /** Milliseconds to wait for `docker version` to answer. Default 60 s. */
  startTimeoutMs?: number;
  /** Skip importing busybox:local (a test that needs no containers). */
  noImage?: boolean;
}

const live = new Set<() => void>();
let exitHookInstalled = false;

/** If jest dies with a dockerd still running, kill it rather than leave it behind. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const kill of live) kill();
  });
}

/**
 * Names of the volumes `driver` holds, as this dockerd lists them (`--filter driver=` matches the
 * driver name exactly; the format re-checks it, so a lookalike name can never slip through).
 */
export async function ownVolumes(docker: (args: string[], o?: RunOptions) => Promise<RunResult>, driver: string): Promise<string[]> {
  const r = await docker(['volume', 'ls', '--filter', `driver=${driver}`, '--format', '{{.Driver}}\t{{.Name}}'], { timeoutMs: 60_000 }).catch(() => undefined);
  if (!r || r.code !== 0) return [];
  const out: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const [d, name] = line.trim().split('\t');
    if (d === driver && name) out.push(name);
  }
  return out;
}

export async function startDockerd(opts: StartDockerdOptions = {}): Promise<Dockerd> {
  installExitHook();
  // Processes that started before the run's folder existed cannot be its dockerd or containerd.
  const since = Date.now();
  // Short: the socket path must fit in sun_path (108 bytes), and containerd nests sockets below exec-root.
  const root = fs.mkdtempSync('/tmp/nvd-');
  const dataRoot = path.join(root, 'data');
  const execRoot = path.join(root, 'exec');
  const socket = path.join(root, 'd.sock');
  const pidFile = path.join(root, 'd.pid');
  const logFile = path.join(root, 'dockerd.log');
  const configFile = path.join(root, 'daemon.json');
  fs.mkdirSync(dataRoot);
  fs.mkdirSync(execRoot);
  // An empty config keeps a host /etc/docker/daemon.json from changing this daemon.
  fs.writeFileSync(configFile, '{}\n');
  const host = `unix://${socket}`;
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: host, DOCKER_CONFIG: path.join(root, 'cli') };
  delete env.DOCKER_CONTEXT;
  delete env.DOCKER_TLS_VERIFY;
  delete env.DOCKER_CERT_PATH;

  let child: ChildProcess | undefined;
  let stopped = false;

  const killSync = (): void => {
    if (child?.pid && isAlive(child.pid)) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    killAllMentioning(root, { startedAfterMs: since });
  };

  const docker = (args: string[], o: RunOptions = {}): Promise<RunResult> =>
    run(DOCKER_CLI, args, { timeoutMs: 90_000, ...o, env: { ...env, ...(o.env ?? {}) } });

  const logTail = (lines = 40): string => {
    try {
      return fs.readFileSync(logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no dockerd log)';
    }
  };

  const launch = async (): Promise<void> => {
    const out = fs.openSync(logFile, 'a');
    child = spawn(
      DOCKERD,
      [
        '--config-file', configFile,
        '--iptables=false', '--ip-masq=false', '--bridge=none',
        '--storage-driver=vfs',
        '--data-root', dataRoot,
        '--exec-root', execRoot,
        '-H', host,
        '--pidfile', pidFile,
        '--shutdown-timeout', '5',
      ],
      { stdio: ['ignore', out, out], env },
    );
    fs.closeSync(out);
    const started = child;
    let exited: string | undefined;
    started.on('exit', (code, signal) => (exited = `dockerd exited (${code ?? signal})`));
    await waitFor(
      'dockerd to answer `docker version`',
      async () => {
        if (exited) throw new Error(`${exited}\n${logTail()}`);
        const r = await run(DOCKER_CLI, ['version', '--format', '{{.Server.Version}}'], { env, timeoutMs: 10_000 });
        return r.code === 0 && r.stdout.trim() !== '' ? true : undefined;
      },
      opts.startTimeoutMs ?? 60_000,
      250,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n--- dockerd log ---\n${logTail()}`);
    });
  };

  /** SIGTERM dockerd (it stops containers, then its containerd), then reap what a kill left. */
  const halt = async (): Promise<void> => {
    const pid = child?.pid;
    await terminate(pid, 30_000);
    // A containerd or shim outlives a SIGKILLed dockerd; the pid files name it, and so does its argv.
    for (const f of [path.join(execRoot, 'containerd', 'containerd.pid')]) {
      try {
        await terminate(Number(fs.readFileSync(f, 'utf8').trim()), 5000);
      } catch {
        /* no pid file */
      }
    }
    killAllMentioning(root, { startedAfterMs: since });
    child = undefined;
  };

  live.add(killSync);
  try {
    await launch();
    if (!opts.noImage) {
      const tar = buildBusyboxTar(root);
      const r = await docker(['import', tar, BUSYBOX_IMAGE], { timeoutMs: 60_000 });
      fs.rmSync(tar, { force: true });
      if (r.code !== 0) throw new Error(`docker import failed: ${r.stderr}`);
    }
  } catch (err) {
    await halt();
    removeTree(root);
    live.delete(killSync);
    throw err;
  }

  const d: Dockerd = {
    host,
    dataRoot,
    execRoot,
    logFile,
    docker,
    async dockerOk(args, o) {
      const r = await docker(args, o);
      if (r.code !== 0) {
        throw new Error(`docker ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
      }
      return r.stdout.trim();
    },
    runContainer(args, o) {
      return docker(['run', '--network', 'none', '--pull', 'never', ...args], o);
    },
    async restart() {
      if (stopped) throw new Error('dockerd was stopped');
      await halt();
      await launch();
    },
    async removeAll(ownDrivers = []) {
      if (stopped || !child) return;
      const ps = await docker(['ps', '-aq'], { timeoutMs: 30_000 }).catch(() => undefined);
      const ids = (ps?.stdout ?? '').split('\n').map((s) => s.trim()).filter(Boolean);
      if (ids.length > 0) await docker(['rm', '-f', ...ids], { timeoutMs: 90_000 }).catch(() => undefined);
      for (const driver of ['local', ...ownDrivers]) {
        const names = await ownVolumes(docker, driver);
        for (const n of names) await docker(['volume', 'rm', '-f', n], { timeoutMs: 60_000 }).catch(() => undefined);
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await halt();
      removeTree(root);
      live.delete(killSync);
    },
    logTail,
  };
  return d;
}
