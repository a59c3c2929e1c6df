/**
 * One private dockerd and one netvol daemon per test file, plus the small readers the scenarios share.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BUSYBOX_IMAGE, Dockerd, MountEntry, mountsUnder, ownVolumes, startDockerd } from '../../harness/dockerd';
import { Netvol, StartNetvolOptions, startNetvol } from '../../harness/netvol';

export { BUSYBOX_IMAGE };
export const MiB = 1024 * 1024;

export interface World {
  d: Dockerd;
  nv: Netvol;
  /** netvol's driver name, for `docker volume create -d`. */
  plugin: string;
}

export async function startWorld(opts: StartNetvolOptions = {}): Promise<World> {
  // netvol first: dockerd finds it by its socket whenever a command names it.
  const nv = await startNetvol(opts);
  let d: Dockerd;
  try {
    d = await startDockerd();
  } catch (err) {
    await nv.cleanup();
    throw err;
  }
  return { d, nv, plugin: nv.pluginName };
}

/**
 * Containers, then this run's netvol volumes (only while netvol answers), then dockerd, then netvol
 * and its socket. Never throws. Volumes of any other driver are left alone: the private dockerd also
 * sees every other plugin socket in /run/docker/plugins.
 */
export async function stopWorld(w: World | undefined): Promise<void> {
  if (!w) return;
  const problems: string[] = [];
  const step = async (what: string, f: () => Promise<void>): Promise<void> => {
    try {
      await f();
    } catch (err) {
      problems.push(`${what}: ${(err as Error).message}`);
    }
  };
  await step('remove containers and volumes', async () => {
    const ps = await w.d.docker(['ps', '-aq'], { timeoutMs: 30_000 });
    const ids = ps.stdout.split('\n').map((s) => s.trim()).filter(Boolean);
    if (ids.length > 0) await w.d.docker(['rm', '-f', ...ids], { timeoutMs: 90_000 });
    if (w.nv.pid !== undefined) {
      for (const name of await ownVolumes(w.d.docker, w.plugin)) {
        await w.d.docker(['volume', 'rm', '-f', name], { timeoutMs: 60_000 });
      }
    }
  });
  await step('stop dockerd', () => w.d.stop());
  await step('stop netvol', () => w.nv.cleanup());
  if (problems.length > 0) process.stderr.write(`e2e cleanup: ${problems.join('\n')}\n`);
}

/** A volume name unique to this run, so a failed earlier run can never collide with this one. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${crypto.randomBytes(3).toString('hex')}`;
}

/** Status is whatever the plugin says. */
export type Status = Record<string, any>;

export async function inspect(w: World, name: string): Promise<{ Driver: string; Mountpoint: string; Status: Status; Options: Record<string, string> | null; Name: string }> {
  const out = await w.d.dockerOk(['volume', 'inspect', name]);
  const arr = JSON.parse(out) as Array<{ Driver: string; Mountpoint: string; Status: Status; Options: Record<string, string> | null; Name: string }>;
  return arr[0];
}

export async function status(w: World, name: string): Promise<Status> {
  return (await inspect(w, name)).Status ?? {};
}

/** The md5 of a file inside a running container. */
export async function md5InContainer(w: World, container: string, file: string): Promise<string> {
  return firstWord(await w.d.dockerOk(['exec', container, 'md5sum', file]));
}

/** The md5 of a file on the volume, read by a fresh container. */
export async function md5OnVolume(w: World, volume: string, file: string): Promise<string> {
  const r = await w.d.runContainer(['--rm', '-v', `${volume}:/data`, BUSYBOX_IMAGE, 'md5sum', `/data/${file}`]);
  if (r.code !== 0) throw new Error(`md5sum /data/${file} on ${volume} failed (${r.code}): ${r.stderr}`);
  return firstWord(r.stdout);
}

export function md5File(file: string): string {
  return crypto.createHash('md5').update(fs.readFileSync(file)).digest('hex');
}

export function firstWord(s: string): string {
  const w = s.trim().split(/\s+/)[0] ?? '';
  if (!/^[0-9a-f]{32}$/.test(w)) throw new Error(`not an md5 line: ${JSON.stringify(s)}`);
  return w;
}

/** Mounts on the host at or below netvol's mountRoot that hold `mountpoint` (the volume's own mount). */
export function hostMountsHolding(w: World, mountpoint: string): MountEntry[] {
  const mountRoot = (w.nv.config.mountRoot as string | undefined) ?? path.join(w.nv.stateDir, 'mounts');
  return mountsUnder(mountRoot).filter((m) => mountpoint === m.mountPoint || mountpoint.startsWith(`${m.mountPoint}/`) || m.mountPoint.startsWith(`${mountpoint}/`));
}

