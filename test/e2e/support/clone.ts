/** What the clone tests share: netvolctl run from the build against a world's daemon, and a writer container. */
import * as path from 'node:path';
import { run } from '../../harness/dockerd';
import { BUSYBOX_IMAGE, World } from './world';

const CLI = path.join(__dirname, '..', '..', '..', 'dist', 'cli', 'index.js');

export interface CtlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `netvolctl ARGS --socket <the world's admin socket>`, as an operator runs it (no terminal: no progress bar). */
export function netvolctl(w: World, args: string[], timeoutMs = 120_000): Promise<CtlResult> {
  const socket = path.join(w.nv.stateDir, 'admin.sock');
  return run(process.execPath, [CLI, ...args, '--socket', socket], { timeoutMs });
}

/** `netvolctl clone SRC DST … --json`, its result parsed; fails the test with netvolctl's stderr otherwise. */
export async function cloneJson(w: World, args: string[]): Promise<Record<string, any>> {
  const r = await netvolctl(w, ['clone', ...args, '--json']);
  if (r.code !== 0) throw new Error(`netvolctl clone ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, any>;
}

/**
 * A container appending a numbered line to /data/log every few milliseconds (synced), for as long
 * as it runs. Returns its id.
 */
export async function startWriter(w: World, volume: string): Promise<string> {
  return (
    await w.d.dockerOk([
      'run', '--network', 'none', '--pull', 'never', '-d', '-v', `${volume}:/data`, BUSYBOX_IMAGE, 'sh', '-c',
      'i=0; while true; do i=$((i+1)); echo "line $i" >> /data/log; if [ $((i % 20)) -eq 0 ]; then sync; fi; done',
    ])
  ).trim();
}

/** The lines of /data/log on a volume, read by a fresh container. */
export async function logLines(w: World, volume: string): Promise<string[]> {
  const r = await w.d.runContainer(['--rm', '-v', `${volume}:/data`, BUSYBOX_IMAGE, 'cat', '/data/log']);
  if (r.code !== 0) throw new Error(`cat /data/log on ${volume} failed: ${r.stderr}`);
  return r.stdout.split('\n').filter(Boolean);
}

/** The lines of /data/log inside a running container. */
export async function logLinesIn(w: World, container: string): Promise<string[]> {
  return (await w.d.dockerOk(['exec', container, 'cat', '/data/log'])).split('\n').filter(Boolean);
}

/** Lines "line 1".."line n" with no gap: what a log copied at one instant holds (a last line may be cut). */
export function isNumberedPrefix(lines: string[]): boolean {
  const whole = lines.slice(0, -1);
  return whole.every((l, i) => l === `line ${i + 1}`);
}
