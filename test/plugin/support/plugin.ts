/**
 * Helpers for the managed-plugin tier: building the plugin with the repository's own script, and
 * releasing the loop devices a plugin can leave behind when it is stopped while volumes are attached.
 * Nothing here imports src/.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DOCKER_CLI, Dockerd, run } from '../../harness/dockerd';

export const REPO = path.resolve(__dirname, '..', '..', '..');
export const VERSION: string = (JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
/** The image scripts/plugin-build.sh tags and keeps (its layers are the next build's cache). */
export const ROOTFS_IMAGE = `netvol-plugin-rootfs:${VERSION}`;

export interface BuildResult {
  seconds: number;
  output: string;
}

/**
 * Runs `scripts/plugin-build.sh --docker-host <d> <name>` as a user would. The debootstrap base is
 * cached in the repository's .cache/ (NETVOL_CACHE), so only a fresh clone pays for it.
 */
export async function buildPlugin(d: Dockerd, name: string, timeoutMs: number): Promise<BuildResult> {
  const started = Date.now();
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER: DOCKER_CLI };
  delete env.DOCKER_HOST;
  const r = await run('bash', [path.join(REPO, 'scripts', 'plugin-build.sh'), '--docker-host', d.host, name], { env, timeoutMs });
  const output = `${r.stdout}\n${r.stderr}`;
  if (r.code !== 0) throw new Error(`plugin-build.sh exited ${r.code}\n${output.split('\n').slice(-60).join('\n')}`);
  return { seconds: (Date.now() - started) / 1000, output };
}

/** `dev:ino` of a file, the identity losetup reports for a loop device's backing file. */
export function fileIdentity(file: string): string {
  const st = fs.statSync(file);
  return `${Math.floor(st.dev / 256)}:${st.dev % 256}:${st.ino}`;
}

/**
 * Detaches loop devices backed by any of `identities` (from fileIdentity). A plugin killed with
 * volumes attached (dockerd stop, `plugin disable -f`) loses its mounts with its mount namespace,
 * but a loop device stays attached to its image file until someone detaches it.
 */
export function detachLoopsBackedBy(identities: Iterable<string>): string[] {
  const wanted = new Set(identities);
  const r = spawnSync('losetup', ['-l', '-n', '--raw', '-O', 'NAME,BACK-MAJ:MIN,BACK-INO'], { encoding: 'utf8', timeout: 10_000 });
  const detached: string[] = [];
  for (const line of (r.stdout ?? '').split('\n')) {
    const [dev, majMin, ino] = line.trim().split(/\s+/);
    if (!dev || !majMin || !ino) continue;
    if (wanted.has(`${majMin}:${ino}`)) {
      spawnSync('losetup', ['-d', dev], { stdio: 'ignore', timeout: 10_000 });
      detached.push(dev);
    }
  }
  return detached;
}

/** Plugin inspect, parsed. */
export async function inspectPlugin(d: Dockerd, name: string): Promise<PluginInspect> {
  return (JSON.parse(await d.dockerOk(['plugin', 'inspect', name])) as PluginInspect[])[0];
}

export interface PluginInspect {
  Id: string;
  Name: string;
  Enabled: boolean;
  Settings: { Env: string[]; Mounts: Array<{ Name: string; Source: string; Destination: string }> };
  Config: { Interface: { Socket: string; Types: string[] }; PropagatedMount: string };
}
