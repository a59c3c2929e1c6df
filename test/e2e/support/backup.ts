/**
 * What the backup scenarios share (local, sftp and nfs alike): the built netvolctl against the
 * world's daemon, a tree with every kind of thing a backup must keep, and its fingerprint read by
 * a container.
 */
import { execFile, spawn, ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { BUSYBOX_IMAGE, World, inspect } from './world';

const exec = promisify(execFile);
export const NETVOLCTL = path.join(__dirname, '..', '..', '..', 'dist', 'cli', 'index.js');

export interface CtlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function adminSocket(w: World): string {
  return path.join(w.nv.stateDir, 'admin.sock');
}

/** The built netvolctl against the world's daemon; resolves whatever the exit code. */
export async function ctl(w: World, args: string[], timeoutMs = 120_000): Promise<CtlResult> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [NETVOLCTL, ...args, '--socket', adminSocket(w)], { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout, stderr: e.stderr };
  }
}

/** netvolctl started with stdout piped to the caller (not read until the caller reads it). */
export function ctlSpawn(w: World, args: string[]): ChildProcess {
  return spawn(process.execPath, [NETVOLCTL, ...args, '--socket', adminSocket(w)], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * Fills /data with what a backup must keep: owners and modes (setgid folder, a 0600 file of
 * another user), a hard link, a symlink and a dangling one, a 32 MiB sparse file holding 1 byte,
 * random data, an old mtime.
 */
export const FILL_TREE = [
  'set -e; cd /data',
  'mkdir -p sub/deep empty',
  'echo hello > a.txt && chmod 640 a.txt && chown 1234:5678 a.txt && touch -d "2020-01-02 03:04:05" a.txt',
  'busybox ln a.txt sub/hard.txt && busybox ln -s ../a.txt sub/link && busybox ln -s /nowhere dangling',
  'dd if=/dev/urandom of=sub/deep/r.bin bs=1k count=700 2>/dev/null && chmod 600 sub/deep/r.bin && chown 42:43 sub/deep/r.bin',
  'dd if=/dev/zero of=sparse.img bs=1 count=1 seek=33554431 2>/dev/null',
  'chmod 2750 sub && chown 7:8 sub && chmod 1777 empty',
  'sync',
].join('\n');

/**
 * Every entry below /data (lost+found aside, it belongs to the filesystem): name, owner, mode,
 * link count, size, type, mtime (not of symlinks), link target, md5 of each file; and whether the
 * hard link still is one and the sparse file's blocks.
 */
export const FINGERPRINT = [
  'set -e; cd /data',
  'find . -mindepth 1 ! -path "./lost+found*" | sort | while read f; do if [ -L "$f" ]; then echo "$f -> $(busybox readlink "$f") $(stat -c "%u:%g" "$f")"; else stat -c "%n %u:%g %a %h %s %F %Y" "$f"; fi; done',
  'find . -type f ! -path "./lost+found*" | sort | while read f; do md5sum "$f"; done',
  'echo "hardlinked=$([ "$(stat -c %i a.txt)" = "$(stat -c %i sub/hard.txt)" ] && echo yes || echo no)"',
  'echo "sparseKiB=$(du -k sparse.img | cut -f1)"',
].join('\n');

export async function runIn(w: World, volume: string, script: string): Promise<string> {
  const r = await w.d.runContainer(['--rm', '-v', `${volume}:/data`, BUSYBOX_IMAGE, 'sh', '-c', script], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`container on ${volume} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** The volume's mountpoint on the host, valid while something holds it mounted. */
export async function hostMountpoint(w: World, volume: string): Promise<string> {
  return (await inspect(w, volume)).Mountpoint;
}

/** Simple content any backend keeps (no foreign owners: an sftp or nfs directory volume maps them to its login). */
export const FILL_SIMPLE = [
  'set -e; cd /data',
  'mkdir -p sub && echo hello > a.txt && chmod 640 a.txt && busybox ln -s ../a.txt sub/link',
  'dd if=/dev/urandom of=sub/r.bin bs=1k count=3000 2>/dev/null',
  'sync',
].join('\n');

export const FINGERPRINT_SIMPLE = [
  'set -e; cd /data',
  'find . -mindepth 1 ! -path "./lost+found*" ! -path "./.netvol-unlinked*" | sort | while read f; do if [ -L "$f" ]; then echo "$f -> $(busybox readlink "$f")"; else stat -c "%n %a %s %F" "$f"; fi; done',
  'find . -type f ! -path "./lost+found*" ! -path "./.netvol-unlinked*" | sort | while read f; do md5sum "$f"; done',
].join('\n');

/**
 * backup → docker volume rm → restore --create [--verify] of one volume made with `createOpts`,
 * filled by `fill`; resolves with the fingerprints before and after; throws when a command fails.
 */
export async function roundTrip(w: World, work: string, prefix: string, createOpts: string[], fill: string, fingerprint: string, verify = true): Promise<{ before: string; after: string; backup: CtlResult; restore: CtlResult }> {
  const name = `${prefix}-${Math.random().toString(16).slice(2, 8)}`;
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, ...createOpts, name]);
  await runIn(w, name, fill);
  const before = await runIn(w, name, fingerprint);
  const file = path.join(work, `${name}.tar.zst`);
  const backup = await ctl(w, ['backup', name, '-o', file]);
  if (backup.code !== 0) throw new Error(`netvolctl backup ${name} exited ${backup.code}: ${backup.stderr}\n--- netvol log ---\n${w.nv.logTail(12)}`);
  await w.d.dockerOk(['volume', 'rm', name]);
  const restore = await ctl(w, ['restore', file, name, '--create', ...createOpts, ...(verify ? ['--verify'] : [])]);
  if (restore.code !== 0) throw new Error(`netvolctl restore into ${name} exited ${restore.code}: ${restore.stderr}\n--- netvol log ---\n${w.nv.logTail(12)}`);
  const after = await runIn(w, name, fingerprint);
  await w.d.docker(['volume', 'rm', name]);
  return { before, after, backup, restore };
}
