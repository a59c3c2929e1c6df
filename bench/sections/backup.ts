/**
 * netvolctl backup and restore (issue 14) against plain GNU tar on the same mounted data, on the
 * same host, interleaved in one run: a 1 GiB image volume of many small files and one of a few
 * large ones. Backup: `netvolctl backup VOL -o F.tar` (the daemon's tar streamed through the admin
 * socket to the CLI, which writes the file) against `tar -c` of the volume's mountpoint into a file
 * on the same disk, with the same flags (owners, xattrs, ACLs, holes), then synced to disk as
 * netvolctl does with its archive. Restore: `netvolctl restore
 * F.tar VOL` into an empty volume against `tar -x` of the same archive into the same empty volume,
 * both followed by a syncfs of the volume so that the data is on the image, not only in memory.
 * Page caches are dropped before every run. Volumes stay mounted by a plain mount ID meanwhile, so
 * every run times the transfer, not an attach.
 */
import fs from 'node:fs';
import path from 'node:path';
import { BenchDaemon } from '../lib/daemon';
import { MiB } from '../lib/io';
import { median } from '../lib/stats';
import { BenchContext, Figure, Row, Section } from '../lib/types';
import { fmtList, mustDropCaches, timed } from '../remote/proc';
import { measureRounds, TimedVariant } from '../remote/rounds';

const TARGET = 0.9;
const TAR_FLAGS = ['--xattrs', '--xattrs-include=*', '--acls', '--numeric-owner'];

interface Dataset {
  key: string;
  label: string;
  /** Fills `dir` with about `mib` MiB. */
  fill(dir: string, mib: number): void;
}

const DATASETS: Dataset[] = [
  {
    key: 'small',
    label: 'many small files',
    // 16 KiB files, 256 to a folder: 65,536 files for 1 GiB.
    fill(dir, mib) {
      const block = Buffer.alloc(16 * 1024);
      const files = (mib * MiB) / block.length;
      for (let i = 0; i < files; i++) {
        const sub = path.join(dir, `d${Math.floor(i / 256)}`);
        if (i % 256 === 0) fs.mkdirSync(sub);
        block.writeUInt32LE(i, 0);
        fs.writeFileSync(path.join(sub, `f${i}`), block);
      }
    },
  },
  {
    key: 'large',
    label: 'a few large files',
    // 4 files of a quarter each, pseudo-random so no layer below can shortcut them.
    fill(dir, mib) {
      const chunk = Buffer.alloc(MiB);
      for (let f = 0; f < 4; f++) {
        const fd = fs.openSync(path.join(dir, `large${f}.bin`), 'w');
        for (let m = 0; m < mib / 4; m++) {
          for (let o = 0; o < chunk.length; o += 4) chunk.writeUInt32LE((m * 2654435761 + o * 40503 + f) >>> 0, o);
          fs.writeSync(fd, chunk);
        }
        fs.closeSync(fd);
      }
    },
  },
];

interface Setup {
  daemon: BenchDaemon;
  ctl: string;
  socket: string;
  work: string;
}

/** Creates an image volume and mounts it under a plain mount ID; the section's cleanup undoes both. */
async function mounted(ctx: BenchContext, s: Setup, name: string, size: string): Promise<string> {
  const c = s.daemon.client;
  await c.call('VolumeDriver.Create', { Name: name, Opts: { size } }, 120_000);
  let isMounted = false;
  ctx.defer(async () => {
    if (isMounted) await c.request('VolumeDriver.Unmount', { Name: name, ID: 'bench-backup' }, 120_000).catch(() => undefined);
    await c.request('VolumeDriver.Remove', { Name: name }, 120_000).catch(() => undefined);
  });
  const m = await c.call('VolumeDriver.Mount', { Name: name, ID: 'bench-backup' }, 120_000);
  isMounted = true;
  return String(m.Mountpoint);
}

/** Empties a mountpoint (outside the timed part). */
function empty(dir: string): void {
  for (const e of fs.readdirSync(dir)) fs.rmSync(path.join(dir, e), { recursive: true, force: true });
}

function rate(ms: number[], mib: number, label: string): Figure {
  return { value: mib / (median(ms) / 1000), unit: 'MiB/s', digits: 0, label };
}

async function dataset(ctx: BenchContext, s: Setup, d: Dataset): Promise<Row[]> {
  const mib = ctx.quick ? 256 : 1024;
  const runs = ctx.quick ? 1 : 3;
  const size = ctx.quick ? '1G' : '2G';
  const src = `bench-backup-${d.key}`;
  const dst = `bench-restore-${d.key}`;
  const srcMp = await mounted(ctx, s, src, size);
  const dstMp = await mounted(ctx, s, dst, size);
  ctx.log(`${d.label}: writing ${mib} MiB`);
  d.fill(srcMp, mib);
  const archive = path.join(s.work, `${d.key}.tar`);
  const netvolOut = path.join(s.work, `${d.key}-netvol.tar`);
  const tarOut = path.join(s.work, `${d.key}-tar.tar`);
  const ctl = (args: string[]) => timed(process.execPath, [s.ctl, ...args, '-q', '--socket', s.socket]);
  await ctl(['backup', src, '-o', archive]);
  const bytes = fs.statSync(archive).size;

  const backups: TimedVariant[] = [
    {
      key: 'netvol',
      label: 'netvolctl backup',
      async once() {
        fs.rmSync(netvolOut, { force: true });
        mustDropCaches();
        return (await ctl(['backup', src, '-o', netvolOut])).ms;
      },
    },
    {
      key: 'tar',
      label: 'tar -c',
      async once() {
        fs.rmSync(tarOut, { force: true });
        mustDropCaches();
        const t = await timed('tar', ['-c', '-f', tarOut, ...TAR_FLAGS, '--sparse', '-C', srcMp, '.']);
        // netvolctl fsyncs the archive before it names it done: so does the baseline (sync FILE).
        return t.ms + (await timed('sync', [tarOut])).ms;
      },
    },
  ];
  const b = await measureRounds(ctx, `${d.label} backup`, backups, runs, 1);
  fs.rmSync(netvolOut, { force: true });
  fs.rmSync(tarOut, { force: true });

  const restores: TimedVariant[] = [
    {
      key: 'netvol',
      label: 'netvolctl restore',
      async once() {
        empty(dstMp);
        mustDropCaches();
        const t = await ctl(['restore', archive, dst]);
        return t.ms + (await timed('sync', ['-f', dstMp])).ms;
      },
    },
    {
      key: 'tar',
      label: 'tar -x',
      async once() {
        empty(dstMp);
        mustDropCaches();
        const t = await timed('tar', ['-x', '-f', archive, ...TAR_FLAGS, '--same-owner', '--same-permissions', '-C', dstMp]);
        return t.ms + (await timed('sync', ['-f', dstMp])).ms;
      },
    },
  ];
  const r = await measureRounds(ctx, `${d.label} restore`, restores, runs, 1);
  const archiveMib = bytes / MiB;
  ctx.note(
    `backup, ${d.label} (${Math.round(archiveMib)} MiB of tar): ms per run — netvolctl ${fmtList(b.get('netvol')!)}; tar ${fmtList(b.get('tar')!)}. ` +
      `restore: netvolctl ${fmtList(r.get('netvol')!)}; tar ${fmtList(r.get('tar')!)} (each including a syncfs of the volume)`,
  );
  const m = `median of ${runs}, caches dropped`;
  return [
    { metric: `backup of a ${mib} MiB image volume, ${d.label}, ${m}`, netvol: rate(b.get('netvol')!, archiveMib, 'netvolctl backup -o F'), baseline: rate(b.get('tar')!, archiveMib, 'tar -c of the mountpoint'), target: { on: 'ratio', op: '>=', value: TARGET } },
    { metric: `restore of a ${mib} MiB image volume, ${d.label}, ${m}`, netvol: rate(r.get('netvol')!, archiveMib, 'netvolctl restore F'), baseline: rate(r.get('tar')!, archiveMib, 'tar -x into the mountpoint'), target: { on: 'ratio', op: '>=', value: TARGET } },
  ];
}

export const section: Section = {
  name: 'backup',
  description: 'netvolctl backup and restore of 1 GiB image volumes (many small files, a few large ones) against plain tar on the same mounted data',
  async run(ctx) {
    const daemon = await ctx.startNetvol();
    const s: Setup = {
      daemon,
      ctl: path.join(ctx.repoRoot, 'dist', 'cli', 'index.js'),
      socket: path.join(daemon.root, 'state', 'admin.sock'),
      work: ctx.workDir('backup'),
    };
    ctx.note('backup: every run reads the live volume (the local backend is on ext4 here, without reflinks, so no snapshot is taken); netvolctl runs as a new node process each time, its start-up included');
    const rows: Row[] = [];
    for (const d of DATASETS) {
      try {
        rows.push(...(await dataset(ctx, s, d)));
      } catch (err) {
        ctx.log(`${d.label} failed: ${(err as Error).stack ?? String(err)}\n--- netvol log ---\n${daemon.logTail()}`);
        rows.push({ metric: `backup/restore, ${d.label}`, error: (err as Error).message });
      }
    }
    return rows;
  },
};
