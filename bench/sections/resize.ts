/**
 * netvolctl resize (issue 14): a mounted 1 GiB image volume grown to 2 GiB while a writer keeps
 * writing into it. The resize is timed as netvolctl's request to the daemon (POST
 * /v1/volumes/:name/resize on the admin socket, from sending to the answer): netvolctl's own
 * start-up (Node loading its modules) is not the resize's, and is noted apart. The writer's
 * throughput during the resize is set against its own throughput in the seconds just before.
 */
import { ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { run } from '../../test/harness/dockerd';
import { AdminClient } from '../../src/cli/client';
import type { ResizeResult } from '../../src/driver';
import { canGrowMountedExt4 } from '../../src/quota';
import type { BenchDaemon } from '../lib/daemon';
import { median } from '../lib/stats';
import { BenchContext, Row, Section } from '../lib/types';

const MiB = 2 ** 20;
const ROUNDS = 3;
/** How long the writer runs before the resize starts (its "before" throughput window). */
const BEFORE_MS = 2000;

/**
 * The writer: 1 MiB writes over and over the first 256 MiB of a file (overwrites never take new
 * space, so the volume never fills), fdatasync every 4 MiB so the data reaches the image, and one
 * line "<ms since epoch> <bytes>" on stdout per sync.
 */
const WRITER = `
const fs = require('fs');
const fd = fs.openSync(process.argv[1], 'w');
const buf = Buffer.alloc(1 << 20, 7);
let i = 0, total = 0;
for (;;) {
  fs.writeSync(fd, buf, 0, buf.length, (i % 256) * buf.length);
  i++; total += buf.length;
  if (i % 4 === 0) { fs.fdatasyncSync(fd); process.stdout.write(Date.now() + ' ' + total + '\\n'); }
}`;

interface Sample {
  at: number;
  bytes: number;
}

interface Round {
  /** The admin request's wall time (ms). */
  wallMs: number;
  /** The daemon's own measure (ms), from netvolctl --json. */
  daemonMs: number;
  mode: string;
  /** Writer throughput (MiB/s) in the BEFORE_MS before the resize and during it. */
  before: number;
  during: number;
  /** The writer's longest gap between two syncs while the resize ran (ms). */
  stallMs: number;
}

function startWriter(file: string): { child: ChildProcess; samples: Sample[] } {
  const samples: Sample[] = [];
  const child = spawn(process.execPath, ['-e', WRITER, file], { stdio: ['ignore', 'pipe', 'inherit'] });
  let partial = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    const lines = (partial + d).split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      const [at, bytes] = l.split(' ').map(Number);
      if (Number.isFinite(at)) samples.push({ at, bytes });
    }
  });
  return { child, samples };
}

/** MiB/s written between `from` and `to` (ms since epoch), from the samples around that window. */
function throughput(samples: Sample[], from: number, to: number): number {
  const inside = samples.filter((s) => s.at >= from && s.at <= to);
  const before = [...samples].reverse().find((s) => s.at < from);
  const start = before ?? inside[0];
  const end = inside[inside.length - 1];
  if (!start || !end || end === start) return 0;
  return (end.bytes - start.bytes) / MiB / ((end.at - start.at) / 1000);
}

function longestGap(samples: Sample[], from: number, to: number): number {
  const times = [from, ...samples.filter((s) => s.at > from && s.at < to).map((s) => s.at)];
  const after = samples.find((s) => s.at >= to)?.at ?? to;
  times.push(after);
  let gap = 0;
  for (let i = 1; i < times.length; i++) gap = Math.max(gap, times[i] - times[i - 1]);
  return gap;
}

/** The resize as netvolctl asks for it, over the daemon's admin socket. */
async function resizeRequest(daemon: BenchDaemon, name: string, size: string): Promise<ResizeResult> {
  const client = new AdminClient(path.join(daemon.root, 'state', 'admin.sock'));
  return (await client.json<{ resize: ResizeResult }>('POST', `/v1/volumes/${encodeURIComponent(name)}/resize`, { size })).resize;
}

/** How long `netvolctl --help` takes to start and exit: what netvolctl adds to any request it makes. */
async function cliStartMs(ctx: BenchContext): Promise<number> {
  const t0 = Date.now();
  await run(process.execPath, [path.join(ctx.repoRoot, 'dist', 'cli', 'index.js'), '--help'], { timeoutMs: 60_000 });
  return Date.now() - t0;
}

async function oneRound(ctx: BenchContext, daemon: BenchDaemon, fs: 'ext4' | 'xfs', n: number): Promise<Round> {
  const name = `bench-resize-${fs}-${n}`;
  const c = daemon.client;
  const answer = (r: { Err?: string }, what: string) => {
    if (r.Err) throw new Error(`${what}: ${r.Err}`);
  };
  answer(await c.call('VolumeDriver.Create', { Name: name, Opts: { size: '1G', fs } }, 120_000), 'create');
  try {
    const m = await c.call('VolumeDriver.Mount', { Name: name, ID: 'bench-resize' }, 120_000);
    answer(m, 'mount');
    const mp = String(m.Mountpoint);
    const writer = startWriter(path.join(mp, 'stream'));
    try {
      await new Promise((r) => setTimeout(r, BEFORE_MS + 500));
      const t0 = Date.now();
      const out = await resizeRequest(daemon, name, '2G');
      const t1 = Date.now();
      if (out.newSizeBytes !== 2048 * MiB) throw new Error(`resize answered ${JSON.stringify(out)}`);
      await new Promise((res) => setTimeout(res, 300));
      if (writer.child.exitCode !== null) throw new Error(`the writer stopped during the resize (exit ${writer.child.exitCode})`);
      return {
        wallMs: t1 - t0,
        daemonMs: out.durationMs,
        mode: out.mode,
        before: throughput(writer.samples, t0 - BEFORE_MS, t0),
        during: throughput(writer.samples, t0, t1),
        stallMs: longestGap(writer.samples, t0, t1),
      };
    } finally {
      writer.child.kill('SIGKILL');
      await new Promise((r) => (writer.child.exitCode !== null || writer.child.signalCode !== null ? r(undefined) : writer.child.once('exit', r)));
      await c.call('VolumeDriver.Unmount', { Name: name, ID: 'bench-resize' }, 120_000);
    }
  } finally {
    await c.call('VolumeDriver.Remove', { Name: name }, 120_000);
  }
}

async function measure(ctx: BenchContext, daemon: BenchDaemon, fs: 'ext4' | 'xfs'): Promise<Row[]> {
  const rounds: Round[] = [];
  const count = ctx.quick ? 1 : ROUNDS;
  for (let i = 0; i < count; i++) {
    ctx.log(`${fs} round ${i + 1}/${count}`);
    rounds.push(await oneRound(ctx, daemon, fs, i));
  }
  const f = (xs: number[], d = 0) => xs.map((x) => x.toFixed(d)).join(', ');
  ctx.note(
    `resize ${fs}: request wall ms ${f(rounds.map((r) => r.wallMs))}; daemon ms ${f(rounds.map((r) => r.daemonMs))}; ` +
      `writer MiB/s before ${f(rounds.map((r) => r.before))}, during ${f(rounds.map((r) => r.during))}; longest writer stall ms ${f(rounds.map((r) => r.stallMs))}; mode ${rounds[0].mode}`,
  );
  const label = `${fs}, ${rounds[0].mode}`;
  return [
    {
      metric: `resize of a mounted 1 GiB ${fs} image to 2 GiB while a writer runs (netvolctl's request, sent to answered), median of ${count}`,
      netvol: { value: median(rounds.map((r) => r.wallMs)) / 1000, unit: 's', digits: 2, label },
      target: { on: 'netvol', op: '<', value: 2 },
    },
    {
      metric: `writer throughput during that resize, against the ${BEFORE_MS / 1000} s before it (fdatasync every 4 MiB), median of ${count}`,
      netvol: { value: median(rounds.map((r) => r.during)), unit: 'MiB/s', digits: 0, label: 'during' },
      baseline: { value: median(rounds.map((r) => r.before)), unit: 'MiB/s', digits: 0, label: 'before' },
    },
    {
      metric: `the writer's longest pause between two syncs while the ${fs} resize ran, median of ${count}`,
      netvol: { value: median(rounds.map((r) => r.stallMs)), unit: 'ms', digits: 0, label },
    },
  ];
}

export const section: Section = {
  name: 'resize',
  description: 'netvolctl resize of a mounted 1 GiB image volume to 2 GiB while a writer runs',
  async run(ctx) {
    const daemon = await ctx.startNetvol();
    const rows: Row[] = [];
    const online = await canGrowMountedExt4();
    if (!online) {
      ctx.note('resize ext4: this host\'s root lacks CAP_SYS_RESOURCE, without which the kernel grows no mounted ext4; netvol refuses that online grow before changing anything, so ext4 is measured offline here (no container using it: the image is unmounted, grown with resize2fs, mounted again) and xfs online.');
    }
    const starts = [await cliStartMs(ctx), await cliStartMs(ctx), await cliStartMs(ctx)];
    ctx.note(`netvolctl start-up (\`netvolctl --help\`, not in the rows above): ms ${starts.join(', ')}; a resize by hand takes that plus the request`);
    for (const fs of ['xfs', 'ext4'] as const) {
      try {
        if (fs === 'ext4' && !online) rows.push(...(await measureOffline(ctx, daemon)));
        else rows.push(...(await measure(ctx, daemon, fs)));
      } catch (err) {
        ctx.log(`${fs} failed: ${(err as Error).stack ?? String(err)}\n--- netvol log ---\n${daemon.logTail()}`);
        rows.push({ metric: `resize of a mounted 1 GiB ${fs} image to 2 GiB`, error: (err as Error).message });
      }
    }
    return rows;
  },
};

/** ext4 where it cannot grow mounted: the offline resize of a 1 GiB volume holding 256 MiB, timed as netvolctl's wall time. */
async function measureOffline(ctx: BenchContext, daemon: BenchDaemon): Promise<Row[]> {
  const c = daemon.client;
  const times: number[] = [];
  const count = ctx.quick ? 1 : ROUNDS;
  for (let i = 0; i < count; i++) {
    const name = `bench-resize-ext4-offline-${i}`;
    await c.call('VolumeDriver.Create', { Name: name, Opts: { size: '1G' } }, 120_000);
    try {
      const mp = String((await c.call('VolumeDriver.Mount', { Name: name, ID: 'fill' }, 120_000)).Mountpoint);
      await run('dd', ['if=/dev/zero', `of=${path.join(mp, 'data')}`, 'bs=1M', 'count=256', 'conv=fsync'], { timeoutMs: 120_000 });
      await c.call('VolumeDriver.Unmount', { Name: name, ID: 'fill' }, 120_000);
      const t0 = Date.now();
      await resizeRequest(daemon, name, '2G');
      times.push(Date.now() - t0);
    } finally {
      await c.call('VolumeDriver.Remove', { Name: name }, 120_000);
    }
  }
  ctx.note(`resize ext4 offline: request wall ms ${times.join(', ')}`);
  return [
    {
      metric: `resize of an unmounted 1 GiB ext4 image (256 MiB used) to 2 GiB, offline (mount, e2fsck -n, resize2fs, unmount), median of ${count}`,
      netvol: { value: median(times) / 1000, unit: 's', digits: 2, label: 'ext4, offline' },
    },
  ];
}
