/**
 * Small process helpers for the remote-backend sections (sftp, nfs): timed commands, shell
 * pipelines, FUSE unmounts, and the interleaving of three or more variants.
 */
import fs from 'node:fs';
import { run } from '../../test/harness/dockerd';
import { dropCaches } from '../lib/host';
import { elapsedMs } from '../lib/stats';

/** Runs a program, rejects when it exits non-zero; resolves with its wall time in ms and its stdout. */
export async function timed(file: string, args: string[], timeoutMs = 600_000): Promise<{ ms: number; stdout: string }> {
  const t = process.hrtime.bigint();
  const r = await run(file, args, { timeoutMs });
  const ms = elapsedMs(t);
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')} exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(0, 400)}`);
  return { ms, stdout: r.stdout };
}

/** A `sh -c` script, timed; for pipelines such as `dd … | ssh … 'cat > /dev/null'`. `set -o pipefail` is not in dash: check every stage yourself. */
export function timedShell(script: string, timeoutMs = 600_000): Promise<{ ms: number; stdout: string }> {
  return timed('bash', ['-o', 'pipefail', '-c', script], timeoutMs);
}

/** Single-quotes a word for sh. */
export function q(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Drops the page cache, or throws: a read measured from memory would be meaningless. `warm`: as dropCaches. */
export function mustDropCaches(warm = true): void {
  if (!dropCaches(warm)) throw new Error('cannot drop the page cache (echo 3 > /proc/sys/vm/drop_caches): cold reads cannot be measured here');
}

export function isMountpoint(dir: string): boolean {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === dir);
}

/** Unmounts a FUSE mount (fusermount3 -u, then a lazy umount); no-op when nothing is mounted there. */
export async function unmountFuse(dir: string): Promise<void> {
  if (!isMountpoint(dir)) return;
  const r = await run('fusermount3', ['-u', dir], { timeoutMs: 30_000 }).catch(() => undefined);
  if (r?.code === 0 && !isMountpoint(dir)) return;
  await run('umount', ['-l', dir], { timeoutMs: 30_000 }).catch(() => undefined);
}

/**
 * The order of `variants` in round `i`: rotated by one each round, and reversed on odd rounds, so that
 * over a few rounds every variant runs first, last and in the middle (for two variants: A B, B A…).
 */
export function rotated<T>(variants: readonly T[], round: number): T[] {
  const n = variants.length;
  const r = ((round % n) + n) % n;
  const out = [...variants.slice(r), ...variants.slice(0, r)];
  return round % 2 === 1 ? out.reverse() : out;
}

export function fmtList(values: readonly number[], digits = 0): string {
  return values.map((v) => v.toFixed(digits)).join(', ');
}
