/**
 * Sequential 1 GiB write with fsync into a fresh netvol image volume (ext4 in a sparse file on a
 * loop device) against the same dd into a fresh file on the filesystem that holds the volumes;
 * then a 1 GiB read of what was written, after dropping the page cache. Fresh on both sides: a
 * new volume per run, a new file per run, so both allocate their blocks as a first write does.
 */
import fs from 'node:fs';
import path from 'node:path';
import { BenchDaemon } from '../lib/daemon';
import { ddReadCold, ddWrite, describeMount, sameFilesystem } from '../lib/io';
import { interleaved, median } from '../lib/stats';
import { BenchContext, Row } from '../lib/types';

const WRITE_RATIO_TARGET = 0.9;

export async function measureImageIo(ctx: BenchContext, daemon: BenchDaemon): Promise<Row[]> {
  // Five rounds: one round's image/raw ratio ranged from 0.77 to 0.96 within a run, so a median
  // of three moved across the target from run to run.
  const runs = ctx.quick ? 1 : 5;
  const mib = ctx.quick ? 256 : 1024;
  const c = daemon.client;
  const rawDir = path.join(daemon.root, 'raw');
  fs.mkdirSync(rawDir);
  if (!sameFilesystem(rawDir, daemon.localPath)) throw new Error('the raw-disk baseline is not on the volumes\' filesystem');

  const samples = { netvol: { write: [] as number[], read: [] as number[] }, raw: { write: [] as number[], read: [] as number[] } };
  let described = false;

  /** Whether figures are kept: the first write of a part is slow whichever side goes first, so one warm-up pair runs unrecorded. */
  let recording = false;
  const netvolRun = async (i: number): Promise<void> => {
    const name = `bench-io-${i}`;
    // The image holds the file plus ext4's metadata and journal.
    await c.call('VolumeDriver.Create', { Name: name, Opts: { size: `${mib * 2}M` } });
    let mounted = false;
    try {
      const m = await c.call('VolumeDriver.Mount', { Name: name, ID: 'bench-io' }, 120_000);
      mounted = true;
      const mp = String(m.Mountpoint);
      if (!described) {
        ctx.note(`image volume mount: ${describeMount(mp)}`);
        described = true;
      }
      const file = path.join(mp, 'seq.bin');
      const write = await ddWrite(file, mib);
      const read = await ddReadCold(file);
      if (recording) {
        samples.netvol.write.push(write);
        if (read !== undefined) samples.netvol.read.push(read);
      }
    } finally {
      if (mounted) await c.call('VolumeDriver.Unmount', { Name: name, ID: 'bench-io' }, 120_000);
      await c.call('VolumeDriver.Remove', { Name: name }, 120_000);
    }
  };
  const rawRun = async (i: number): Promise<void> => {
    const file = path.join(rawDir, `seq-${i}.bin`);
    try {
      const write = await ddWrite(file, mib);
      const read = await ddReadCold(file);
      if (recording) {
        samples.raw.write.push(write);
        if (read !== undefined) samples.raw.read.push(read);
      }
    } finally {
      fs.rmSync(file, { force: true });
    }
  };

  for (let i = -1; i < runs; i++) {
    recording = i >= 0;
    for (const kind of interleaved(['netvol', 'raw'] as const, Math.max(0, i))) {
      ctx.log(`sequential I/O: ${recording ? `run ${i + 1}/${runs}` : 'warm-up'}, ${kind === 'netvol' ? 'netvol image volume' : 'raw disk'}`);
      await (kind === 'netvol' ? netvolRun(i + 1) : rawRun(i + 1));
    }
  }

  const fig = (v: number[], label: string) => ({ value: median(v), unit: 'MiB/s', digits: 0, label });
  const size = mib === 1024 ? '1 GiB' : `${mib} MiB`;
  const rows: Row[] = [
    {
      metric: `sequential ${size} write + fsync, median of ${runs}`,
      netvol: fig(samples.netvol.write, 'image'),
      baseline: fig(samples.raw.write, 'raw disk'),
      target: { on: 'ratio', op: '>=', value: WRITE_RATIO_TARGET },
    },
  ];
  if (samples.netvol.read.length > 0 && samples.raw.read.length > 0) {
    rows.push({
      metric: `sequential ${size} read, caches dropped, median of ${runs}`,
      netvol: fig(samples.netvol.read, 'image'),
      baseline: fig(samples.raw.read, 'raw disk'),
    });
  } else {
    ctx.note('reads not measured: the page cache cannot be dropped here (needs root outside a restricted container)');
  }
  const all = (v: number[]) => v.map((x) => x.toFixed(0)).join(', ');
  ctx.note(
    `sequential MiB/s per run (after one unrecorded warm-up pair) — write: image ${all(samples.netvol.write)}; raw ${all(samples.raw.write)}` +
      (samples.netvol.read.length ? `; read: image ${all(samples.netvol.read)}; raw ${all(samples.raw.read)}` : ''),
  );
  return rows;
}
