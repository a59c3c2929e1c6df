/**
 * What the resize scenarios share (test/e2e/resize.test.ts, test/sftp/resize.test.ts): netvolctl
 * run from the build against the world's daemon, and a container that writes 1 MiB files into a
 * volume until told to stop, counting what succeeded and where the first failure came.
 */
import * as path from 'node:path';
import { run, waitFor } from '../../harness/dockerd';
import { BUSYBOX_IMAGE, MiB, World } from './world';

const CLI = path.resolve(__dirname, '..', '..', '..', 'dist', 'cli', 'index.js');

/** `netvolctl ARGS --socket <the world's admin socket>`, whatever its exit code. */
export function netvolctl(w: World, args: string[], timeoutMs = 90_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [CLI, ...args, '--socket', path.join(w.nv.stateDir, 'admin.sock')], { timeoutMs });
}

export interface WriterState {
  /** MiB written in whole files. */
  ok: number;
  /** Writes that failed. */
  failed: number;
  /** `ok` when the first write failed (-1: none failed yet), and that failure's message. */
  firstFailAt: number;
  firstError: string;
}

/**
 * A container writing files of `chunkMiB` (dd, each one synced) into /data, one every
 * `pauseSeconds`, until /data/.stop exists; a file that cannot be written whole is removed and
 * retried after a pause. Its counts (in MiB) are in /tmp/state.
 */
export async function startWriter(w: World, volume: string, pauseSeconds = 0.02, chunkMiB = 4): Promise<string> {
  const script = [
    'n=0; f=0; first=-1',
    'while [ ! -e /data/.stop ]; do',
    `  if dd if=/dev/zero of=/data/w.$n bs=1M count=${chunkMiB} conv=fsync 2>/tmp/err; then n=$((n+${chunkMiB}));`,
    '  else f=$((f+1)); [ $first -lt 0 ] && first=$n && cp /tmp/err /tmp/first-err; rm -f /data/w.$n; sleep 0.2; fi',
    '  echo "$n $f $first" > /tmp/state.new && mv /tmp/state.new /tmp/state',
    `  sleep ${pauseSeconds}`,
    'done',
  ].join('\n');
  return w.d.dockerOk(['run', '--network', 'none', '--pull', 'never', '-d', '-v', `${volume}:/data`, BUSYBOX_IMAGE, 'sh', '-c', script]);
}

export async function writerState(w: World, container: string): Promise<WriterState> {
  const r = await w.d.docker(['exec', container, 'sh', '-c', 'cat /tmp/state 2>/dev/null; echo; cat /tmp/first-err 2>/dev/null']);
  const [line = '', ...rest] = r.stdout.split('\n');
  const [ok, failed, first] = line.trim().split(/\s+/).map(Number);
  return { ok: ok || 0, failed: failed || 0, firstFailAt: Number.isFinite(first) ? first : -1, firstError: rest.join(' ').trim() };
}

/** Waits until the writer's state satisfies `done`. */
export function waitWriter(w: World, container: string, what: string, done: (s: WriterState) => boolean, timeoutMs = 90_000): Promise<WriterState> {
  return waitFor(what, async () => {
    const s = await writerState(w, container);
    return done(s) ? s : undefined;
  }, timeoutMs, 100);
}

/** Stops the writer and waits for its container to exit. */
export async function stopWriter(w: World, container: string): Promise<void> {
  await w.d.docker(['exec', container, 'touch', '/data/.stop']);
  await w.d.docker(['wait', container], { timeoutMs: 30_000 });
  await w.d.docker(['rm', '-f', container]);
}

/** The size of the filesystem a container sees at /data (df's 1K blocks, total). */
export async function dfTotal(w: World, container: string): Promise<number> {
  const out = await w.d.dockerOk(['exec', container, 'df', '-k', '/data']);
  const cols = out.split('\n')[1]?.trim().split(/\s+/) ?? [];
  return Number(cols[1]) * 1024;
}

export { MiB };
