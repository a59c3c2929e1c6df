/**
 * Readers the multihost scenarios share: what a host's dockerd says about a volume, what lies on
 * the server, what an image holds (read with e2fsprogs, never mounted), and which helper
 * processes a host runs for a volume.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { run } from '../../harness/dockerd';
import { Host, netnsPids } from './cluster';

/** A volume's Status: whatever the plugin says. */
export type Status = Record<string, any>;

export interface VolumeInspect {
  Name: string;
  Driver: string;
  Status: Status | null;
  Options: Record<string, string> | null;
}

export async function inspectVolume(h: Host, name: string): Promise<VolumeInspect> {
  const out = await h.dockerOk(['volume', 'inspect', name]);
  return (JSON.parse(out) as VolumeInspect[])[0];
}

/** The names a server-side folder holds that mention `volume` (the volume's folder, and any temporary or trash copies). */
export function serverEntriesFor(dir: string, volume: string): string[] {
  try {
    return fs.readdirSync(dir).filter((e) => e.includes(volume)).sort();
  } catch {
    return [];
  }
}

/** Every file named `name` below `dir`. */
export function findFiles(dir: string, name: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name === name) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** `e2fsck -fn` of an image file: read-only, forced. */
export async function fsckImage(image: string): Promise<{ clean: boolean; output: string }> {
  const r = await run('e2fsck', ['-fn', image], { timeoutMs: 120_000 });
  return { clean: r.code === 0, output: `${r.stdout}${r.stderr}`.trim() };
}

/**
 * The regular files in the image's root folder with their contents, read with debugfs (no mount,
 * no loop device): a snapshot of what the image holds for anyone who attaches it next.
 */
export function readImageRoot(image: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nvmh-img-'));
  try {
    const r = spawnSync('debugfs', ['-R', `rdump / ${tmp}`, image], { encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) throw new Error(`debugfs rdump of ${image} failed: ${r.stderr}`);
    for (const e of fs.readdirSync(tmp, { withFileTypes: true })) {
      if (e.isFile()) out.set(e.name, fs.readFileSync(path.join(tmp, e.name)));
    }
    return out;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** Pids in the host's namespace whose argv names a path ending in `/<volume>` below the host's folder: its sshfs or FUSE helper. */
export function helperPids(h: Host, volume: string): number[] {
  const out: number[] = [];
  for (const p of netnsPids(h.netns)) {
    try {
      const argv = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (argv.some((a) => a.startsWith(`${h.dir}/`) && a.endsWith(`/${volume}`))) out.push(p);
    } catch {
      /* gone */
    }
  }
  return out;
}

/** The text a file's content is made of in the scenarios: `tag` repeated to `bytes`. */
export function fileContent(tag: string, bytes: number): Buffer {
  const line = `${tag}\n`;
  return Buffer.from(line.repeat(Math.ceil(bytes / line.length)).slice(0, bytes));
}

/**
 * Shell (busybox sh) that writes `bytes` of `tag` lines to `file` and fsyncs it — the same bytes
 * as fileContent(tag, bytes).
 */
export function writeSyncedShell(file: string, tag: string, bytes: number): string {
  return `yes '${tag}' | head -c ${bytes} > ${file} && sync -f ${file}`;
}
