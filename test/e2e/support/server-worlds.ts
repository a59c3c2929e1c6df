/**
 * The rig of a test file that drives a networked backend through dockerd: a real server (nfs-ganesha
 * or OpenSSH sshd), and a World (netvol daemon + private dockerd) whose one backend lives on it.
 * startNfsWorld/startSftpWorld start it and hand back one stop(); withNfsWorld/withSftpWorld do the
 * same from the calling file's beforeAll/afterAll.
 */
import * as fs from 'node:fs';
import { GaneshaServer, nfsOptions, startGanesha } from '../../harness/ganesha';
import type { BackendConfig, StartNetvolOptions } from '../../harness/netvol';
import { sftpOptions, startSshd, Sshd } from '../../harness/sshd';
import { startWorld, stopWorld, World } from './world';

export interface ServerWorldOptions {
  /** Merged over the server backend's options. */
  backend?: Record<string, unknown>;
  /**
   * Adds a backend `local` of type local in a fresh folder made with this mkdtemp prefix; the rig's
   * localDir, removed by stop().
   */
  localBackend?: string;
  /** Which backend volumes get when they name none: the server's (default) or the local one (listed first). */
  defaultBackend?: 'server' | 'local';
  /** The daemon's other options (extraConfig, stateDir, ...). */
  netvol?: Omit<StartNetvolOptions, 'backends'>;
}

export type NfsWorldOptions = ServerWorldOptions;

export interface SftpWorldOptions extends ServerWorldOptions {
  /** How the backend checks sshd's host key: its pinned fingerprint (default) or the harness's known_hosts file. */
  hostKey?: 'fingerprint' | 'knownHosts';
}

export interface ServerWorld<S> {
  server: S;
  world: World;
  /** The local backend's folder, with the localBackend option. */
  localDir?: string;
  /**
   * Stops the World (never throws), then the server (throws what that threw), then removes localDir.
   * Every call returns the first call's promise.
   */
  stop(): Promise<void>;
}

export type NfsWorld = ServerWorld<GaneshaServer>;
export type SftpWorld = ServerWorld<Sshd>;

/** nfs-ganesha with backend `nas`: the export's folder `docker`, the userspace mounter (options.backend changes them). */
export async function startNfsWorld(options: NfsWorldOptions = {}): Promise<NfsWorld> {
  return startServerWorld(options, startGanesha, (g) => ({ type: 'nfs', ...nfsOptions(g, { path: 'docker', ...options.backend }) }), (g) => g.stop(), 'nas');
}

/** sshd with backend `remote`: the folder `volumes` of sshd's root, as root with the harness's key. */
export async function startSftpWorld(options: SftpWorldOptions = {}): Promise<SftpWorld> {
  const hostKey = (sshd: Sshd) => (options.hostKey === 'knownHosts' ? {} : { knownHostsFile: undefined, hostKeyFingerprint: sshd.hostKeyFingerprint });
  return startServerWorld(options, () => startSshd(), (sshd) => ({ type: 'sftp', ...sftpOptions(sshd, { ...hostKey(sshd), ...options.backend }) }), (sshd) => sshd.cleanup(), 'remote');
}

/** startNfsWorld in the calling file's beforeAll, stop() in its afterAll; `started` gets the rig. */
export function withNfsWorld(started: (rig: NfsWorld) => void, options: NfsWorldOptions = {}): void {
  withRig(() => startNfsWorld(options), started, 240_000);
}

/** startSftpWorld in the calling file's beforeAll, stop() in its afterAll; `started` gets the rig. */
export function withSftpWorld(started: (rig: SftpWorld) => void, options: SftpWorldOptions = {}): void {
  withRig(() => startSftpWorld(options), started, 180_000);
}

function withRig<R extends { stop(): Promise<void> }>(start: () => Promise<R>, started: (rig: R) => void, startTimeoutMs: number): void {
  let rig: R | undefined;
  beforeAll(async () => {
    rig = await start();
    started(rig);
  }, startTimeoutMs);
  afterAll(async () => {
    await rig?.stop();
  }, 300_000);
}

async function startServerWorld<S>(
  options: ServerWorldOptions,
  startServer: () => Promise<S>,
  backendOf: (server: S) => BackendConfig,
  stopServer: (server: S) => Promise<void>,
  name: string,
): Promise<ServerWorld<S>> {
  const localDir = options.localBackend === undefined ? undefined : fs.mkdtempSync(options.localBackend);
  let server: S | undefined;
  let world: World | undefined;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await stopWorld(world);
      try {
        if (server !== undefined) await stopServer(server);
      } finally {
        if (localDir) fs.rmSync(localDir, { recursive: true, force: true });
      }
    })();
    return stopping;
  };
  try {
    server = await startServer();
    // The harness makes the first backend listed the default.
    const own = { [name]: backendOf(server) };
    const local: Record<string, BackendConfig> = localDir ? { local: { type: 'local', path: localDir } } : {};
    const backends = options.defaultBackend === 'local' ? { ...local, ...own } : { ...own, ...local };
    world = await startWorld({ ...options.netvol, backends });
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
  return { server, world, localDir, stop };
}
