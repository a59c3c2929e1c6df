/** What the gc tests on every backend share: running `netvolctl gc --json`, and reading and faking what a crash leaves. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { GcItem, GcReport } from '../../../src/driver';
import { run } from '../../../src/system';
import { netvolctl } from './netvolctl';
import { uniqueName } from './world';

/** `netvolctl gc --json ARGS` against the daemon at `socket`; throws with its output when it fails. */
export async function gcJson(socket: string, args: string[]): Promise<GcReport> {
  const r = await netvolctl(['gc', '--socket', socket, '--json', ...args]);
  if (r.code !== 0) throw new Error(`netvolctl gc ${args.join(' ')} exited ${r.code}: ${r.stderr}\n${r.stdout}`);
  return JSON.parse(r.stdout) as GcReport;
}

/** Sorted "kind backend volume target" lines, the loop device's name replaced by LOOP. */
export function gcSummary(items: GcItem[]): string[] {
  const loop = items.find((i) => i.kind === 'loop');
  return items.map((i) => `${i.kind} ${i.backend ?? '-'} ${i.volume ?? '-'} ${loop && i.target === loop.target ? 'LOOP' : i.target}`).sort();
}

/** The loop devices backed by `file`. */
export async function loopsOf(file: string): Promise<string[]> {
  return (await run('losetup', ['-j', file])).stdout.split('\n').filter(Boolean);
}

/** The daemon's ledger (`stateDir`/state.json) without the records of `names`, as a daemon killed before saving them leaves it. */
export function forgetRecords(stateDir: string, names: string[]): void {
  const file = path.join(stateDir, 'state.json');
  const state = JSON.parse(fs.readFileSync(file, 'utf8')) as { data: { volumes: Record<string, unknown> } };
  for (const n of names) {
    if (!(n in state.data.volumes)) throw new Error(`no record of ${n} in state.json`);
    delete state.data.volumes[n];
  }
  fs.writeFileSync(file, JSON.stringify(state), { mode: 0o600 });
}

/**
 * The names a gc test leaves things under, each unique to the run: volumes kept in use, volumes a
 * crash lost, a retained one, archives fresh and old, trash, and a gone and a live host.
 */
export function gcNames(prefix: string) {
  return {
    keepDir: uniqueName(`${prefix}-keep-dir`),
    keepImg: uniqueName(`${prefix}-keep-img`),
    lostDir: uniqueName(`${prefix}-lost-dir`),
    lostImg: uniqueName(`${prefix}-lost-img`),
    retained: uniqueName(`${prefix}-retained`),
    freshArchive: uniqueName(`${prefix}-fresh`),
    markedLive: uniqueName(`${prefix}-marked-live`),
    oldArchive: `${uniqueName(`${prefix}-old`)}.archive-20200101T000000Z`,
    trash: `.netvol-trash-${uniqueName(`${prefix}-crash`)}-0badc0de`,
    ghost: uniqueName('ghost-host'),
    peer: uniqueName('live-host'),
  };
}

/**
 * Leaves a trash folder behind as a crash would (`make`), after the daemon's own sweep: a backend
 * sweeps the trash it finds when it opens, in the background, so a folder made just then may be
 * swept too. Made again until it stays for a while (the sweep lists once); throws if it never does.
 */
export async function leaveTrash(make: () => Promise<void> | void, exists: () => Promise<boolean> | boolean): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await make();
    await new Promise((r) => setTimeout(r, 1500));
    if (await exists()) return;
  }
  throw new Error('the trash folder the test made was removed each time: is something sweeping it all the time?');
}
