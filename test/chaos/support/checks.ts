/**
 * The invariants every chaos run checks against a real daemon, each returning the problems it
 * found as sentences (an empty list when the invariant holds), so a run can count them, print
 * them in its table and let a jest test fail with all of them at once.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loopsBackedUnder, mountsUnder, pidsMentioning } from '../../harness/dockerd';
import type { PluginResponse } from '../../harness/netvol';
import type { MountModel } from './model';

/** A stack frame as Node prints it, or a bare `Error:`-prefixed dump: never in an Err. */
const STACK = /\n\s+at |\bat [\w.<>]+ \([^)]*:\d+:\d+\)|^\w*Error: /;
/** Longest Err the runs accept: dockerd prints it on one line in front of the user. */
export const MAX_ERR_LENGTH = 2000;

/**
 * Whether an answer is what dockerd can use: a JSON object with a readable `Err`, or a result with
 * `Err` empty or absent. Returns the problem, or undefined.
 */
export function answerProblem(route: string, r: PluginResponse): string | undefined {
  const j: unknown = r.json;
  if (j === null || typeof j !== 'object' || Array.isArray(j)) return `${route} answered ${r.status} with a body that is not a JSON object: ${r.raw.slice(0, 200)}`;
  const err = (j as Record<string, unknown>).Err;
  if (err !== undefined && typeof err !== 'string') return `${route} answered an Err that is not a string: ${r.raw.slice(0, 200)}`;
  if (r.status !== 200 && !err) return `${route} answered ${r.status} without an Err: ${r.raw.slice(0, 200)}`;
  if (err) {
    if (STACK.test(err)) return `${route} answered an Err with a stack trace: ${err.slice(0, 300)}`;
    if (err.length > MAX_ERR_LENGTH) return `${route} answered an Err of ${err.length} characters (over ${MAX_ERR_LENGTH}): ${err.slice(0, 120)}…`;
    if (/\[object \w+\]|\bundefined\b/.test(err)) return `${route} answered an Err that prints a JavaScript value instead of a sentence: ${err.slice(0, 300)}`;
  }
  return undefined;
}

/**
 * Real bugs the chaos runs found and report, kept apart from new failures until they are fixed
 * (test/chaos/known-bugs.test.ts reproduces each, skipped with its reason). Each returns a short
 * label when a problem is that bug. Delete an entry once its bug is fixed: the runs then fail on it.
 */
export function knownBug(_body: unknown, _problem: string): string | undefined {
  return undefined;
}

export interface DaemonFolders {
  /** The run's folder: every mount, loop device and helper of the daemon is below it. */
  root: string;
  mountRoot: string;
  stateFile: string;
  /** Local backend folders (name → path) whose volume folders the state file is checked against. */
  localBackends: Record<string, string>;
  /** The daemon's own PID, which names the run's folder in its argv and is not a helper. */
  daemonPid?: number;
}

export interface ListedVolume {
  Name: string;
  Mountpoint?: string;
  Status?: { mounts?: string[]; mountCount?: number; backend?: string; layout?: string };
}

function sameIds(a: string[], b: string[]): boolean {
  return a.length === b.length && [...a].sort().join('\0') === [...b].sort().join('\0');
}

/** Status/List against the model: each volume's mount IDs and count are the model's. */
export function countProblems(listed: ListedVolume[], model: MountModel): string[] {
  const out: string[] = [];
  const byName = new Map(listed.map((v) => [v.Name, v]));
  for (const v of listed) {
    const ids = v.Status?.mounts ?? [];
    const want = model.mountsOf(v.Name);
    if (!sameIds(ids, Object.keys(want)) || (v.Status?.mountCount ?? 0) !== model.total(v.Name)) {
      out.push(`volume ${v.Name}: the daemon holds mount IDs [${ids.join(', ')}] (count ${v.Status?.mountCount}), the model holds ${JSON.stringify(want)}`);
    }
  }
  for (const name of model.names()) {
    if (!byName.has(name)) out.push(`volume ${name}: the model holds mounts ${JSON.stringify(model.mountsOf(name))} but List does not show the volume`);
  }
  return out;
}

/**
 * The kernel against the model: a mount under the daemon's folders only for a volume the model
 * holds mounted, and every such volume mounted; a loop device backed by a file under the run's
 * folder only for such a volume, and never two on one image.
 */
export function orphanProblems(f: DaemonFolders, model: MountModel): string[] {
  const out: string[] = [];
  const held = new Set(model.names().filter((n) => model.total(n) > 0));
  const mounted = new Map<string, number>();
  const backendRoot = path.join(path.dirname(f.stateFile), 'backends');
  for (const m of mountsUnder(f.root)) {
    const rel = path.relative(f.mountRoot, m.mountPoint);
    // A networked backend's attachment (sshfs, the userspace NFS mount) at <stateDir>/backends/<backend>/<volume>.
    const att = path.relative(backendRoot, m.mountPoint).split(path.sep);
    if (!att[0].startsWith('..') && att.length === 2) {
      if (!held.has(att[1])) out.push(`orphan attachment ${m.mountPoint} (${m.fsType}): volume ${att[1]} has no acknowledged mount`);
      continue;
    }
    const name = rel.split(path.sep)[0];
    if (rel.startsWith('..') || rel === '' || rel.includes(path.sep)) {
      out.push(`orphan mount ${m.mountPoint} (${m.fsType} from ${m.source}): not a volume mountpoint`);
      continue;
    }
    mounted.set(name, (mounted.get(name) ?? 0) + 1);
    if (!held.has(name)) out.push(`orphan mount ${m.mountPoint} (${m.fsType}): volume ${name} has no acknowledged mount`);
  }
  for (const [name, n] of mounted) if (n > 1) out.push(`volume ${name} is mounted ${n} times at its mountpoint`);
  for (const name of held) if (!mounted.has(name)) out.push(`volume ${name}: the model holds ${model.total(name)} mount(s) but its mountpoint is not mounted`);
  const loops = loopsBackedUnder(f.root);
  if (loops.length > 0) {
    const backs = loopBackings(loops);
    const perFile = new Map<string, string[]>();
    for (const [dev, file] of backs) perFile.set(file, [...(perFile.get(file) ?? []), dev]);
    for (const [file, devs] of perFile) {
      const name = path.basename(path.dirname(file));
      if (devs.length > 1) out.push(`image ${file} is attached on ${devs.length} loop devices (${devs.join(', ')})`);
      if (!held.has(name)) out.push(`orphan loop device ${devs.join(', ')} on ${file}: volume ${name} has no acknowledged mount`);
    }
  }
  return out;
}

function loopBackings(devs: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const dev of devs) {
    try {
      const file = fs.readFileSync(`/sys/block/${path.basename(dev)}/loop/backing_file`, 'utf8').trim().replace(/ \(deleted\)$/, '');
      out.push([dev, file]);
    } catch {
      out.push([dev, '?']);
    }
  }
  return out;
}

/** Processes other than the daemon whose argv names the run's folder (sshfs, FUSE helpers). */
export function helperPids(f: DaemonFolders): number[] {
  return pidsMentioning(f.root).filter((p) => p !== f.daemonPid);
}

interface StateRecord {
  backend?: string;
  layout?: string;
  mounts?: Record<string, number>;
  attached?: boolean;
  pending?: string;
}

/** Reads the daemon's state file (its `data.volumes` map), or a problem when it cannot be read. */
export function readState(stateFile: string): Record<string, StateRecord> | string {
  let text: string;
  try {
    text = fs.readFileSync(stateFile, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    return `state file ${stateFile} cannot be read: ${(err as Error).message}`;
  }
  try {
    const doc = JSON.parse(text) as { data?: { volumes?: Record<string, StateRecord> } };
    return doc.data?.volumes ?? {};
  } catch (err) {
    return `state file ${stateFile} is not JSON: ${(err as Error).message}`;
  }
}

/**
 * The state file against the model, the kernel and the backend: each record's mounts are the
 * model's, `attached` says whether its mountpoint is mounted, and a volume with mounts has its
 * folder and metadata on its (local) backend. Meant for a quiet moment (no request in flight).
 */
export function stateProblems(f: DaemonFolders, model: MountModel): string[] {
  const state = readState(f.stateFile);
  if (typeof state === 'string') return [state];
  const out: string[] = [];
  const mounted = new Set(mountsUnder(f.mountRoot).map((m) => path.relative(f.mountRoot, m.mountPoint)));
  for (const [name, r] of Object.entries(state)) {
    const want = model.mountsOf(name);
    const have = r.mounts ?? {};
    if (JSON.stringify(Object.entries(have).sort()) !== JSON.stringify(Object.entries(want).sort())) {
      out.push(`state file: volume ${name} holds mounts ${JSON.stringify(have)}, the model ${JSON.stringify(want)}`);
    }
    if (r.pending) out.push(`state file: volume ${name} still has a pending ${r.pending} while nothing is in flight`);
    if (Boolean(r.attached) !== mounted.has(name)) out.push(`state file: volume ${name} attached=${r.attached} but its mountpoint is ${mounted.has(name) ? '' : 'not '}mounted`);
    const folder = r.backend !== undefined ? f.localBackends[r.backend] : undefined;
    if (folder && Object.keys(have).length > 0 && !fs.existsSync(path.join(folder, name, 'volume.json'))) {
      out.push(`state file: volume ${name} holds mounts but backend ${r.backend} has no ${name}/volume.json`);
    }
  }
  for (const name of model.names()) {
    if (!state[name]) out.push(`state file: no record for volume ${name}, which the model holds mounted ${JSON.stringify(model.mountsOf(name))}`);
  }
  return out;
}

/**
 * The local backends' folders against List: every finished volume folder (volume.json present,
 * not retained, not an archive or netvol's own) is listed, and every listed volume of a local
 * backend has its folder. Meant for a quiet moment.
 */
export function backendProblems(f: DaemonFolders, listed: ListedVolume[]): string[] {
  const out: string[] = [];
  const names = new Set(listed.map((v) => v.Name));
  for (const [backend, root] of Object.entries(f.localBackends)) {
    let entries: string[];
    try {
      entries = fs.readdirSync(root);
    } catch (err) {
      out.push(`backend ${backend}: cannot list ${root}: ${(err as Error).message}`);
      continue;
    }
    const onDisk = new Set<string>();
    for (const e of entries) {
      if (e.startsWith('.') || e.includes('.archive-')) continue;
      let meta: { retained?: unknown };
      try {
        meta = JSON.parse(fs.readFileSync(path.join(root, e, 'volume.json'), 'utf8')) as { retained?: unknown };
      } catch {
        continue; // no metadata: not a finished volume
      }
      if (meta.retained) continue;
      onDisk.add(e);
      if (!names.has(e)) out.push(`backend ${backend}: volume folder ${e} has its volume.json but List does not show it`);
    }
    for (const v of listed) {
      if (v.Status?.backend === backend && !onDisk.has(v.Name)) out.push(`backend ${backend}: List shows ${v.Name} but its folder has no volume.json`);
    }
  }
  return out;
}
