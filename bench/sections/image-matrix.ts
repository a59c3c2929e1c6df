/**
 * An investigation, run with `--only image-matrix`: where does an image volume's sequential write
 * lose against the raw disk? It builds images the way src/quota/image.ts does (sparse file,
 * lazily-initialised ext4, loop device with direct I/O) and varies one thing at a time, next to the
 * same write through the daemon, interleaving every variant with the raw-disk write in each round.
 */
import fs from 'node:fs';
import path from 'node:path';
import { run } from '../../test/harness/dockerd';
import { BenchDaemon } from '../lib/daemon';
import { ddWrite, describeMount } from '../lib/io';
import { median } from '../lib/stats';
import { BenchContext, Row, Section } from '../lib/types';

interface Variant {
  name: string;
  /** losetup --direct-io value. */
  dio: 'on' | 'off';
  /** Allocate the image's blocks up front (fallocate) instead of leaving it sparse. */
  prealloc?: boolean;
  /** Initialise inode tables and journal at mkfs time instead of lazily. */
  fullInit?: boolean;
  /** Extra ext4 mount options inside the image. */
  mountOptions?: string;
  /** Create and Mount a volume through the daemon instead of building the image here. */
  viaDaemon?: boolean;
}

const VARIANTS: Variant[] = [
  { name: 'through netvol (Create + Mount)', dio: 'on', viaDaemon: true },
  { name: 'as netvol: sparse, lazy init, loop dio=on', dio: 'on' },
  { name: 'loop dio=off (page cache on both layers)', dio: 'off' },
  { name: 'image preallocated (fallocate), dio=on', dio: 'on', prealloc: true },
  { name: 'mkfs without lazy init, dio=on', dio: 'on', fullInit: true },
];

async function must(file: string, args: string[]): Promise<string> {
  const r = await run(file, args, { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

async function daemonWrite(ctx: BenchContext, daemon: BenchDaemon, v: Variant, mib: number, describe: boolean): Promise<number> {
  const c = daemon.client;
  const name = 'bench-matrix';
  await c.call('VolumeDriver.Create', { Name: name, Opts: { size: `${mib * 2}M` } });
  try {
    const mp = String((await c.call('VolumeDriver.Mount', { Name: name, ID: 'bench-matrix' }, 120_000)).Mountpoint);
    try {
      if (describe) ctx.note(`${v.name}: ${describeMount(mp)}`);
      return await ddWrite(path.join(mp, 'seq.bin'), mib);
    } finally {
      await c.call('VolumeDriver.Unmount', { Name: name, ID: 'bench-matrix' }, 120_000);
    }
  } finally {
    await c.call('VolumeDriver.Remove', { Name: name }, 120_000);
  }
}

async function imageWrite(ctx: BenchContext, dir: string, v: Variant, mib: number, describe: boolean): Promise<number> {
  const img = path.join(dir, 'data.img');
  const mp = path.join(dir, 'mnt');
  fs.mkdirSync(mp, { recursive: true });
  const size = `${mib * 2}M`;
  await must('truncate', ['-s', size, img]);
  if (v.prealloc) await must('fallocate', ['-l', size, img]);
  const ext = v.fullInit ? 'lazy_itable_init=0,lazy_journal_init=0,nodiscard' : 'lazy_itable_init=1,lazy_journal_init=1,nodiscard';
  await must('mkfs.ext4', ['-q', '-F', '-m', '0', '-E', ext, img]);
  const dev = await must('losetup', ['--find', '--show', `--direct-io=${v.dio}`, img]);
  try {
    await must('mount', ['-t', 'ext4', '-o', ['nodev,nosuid', v.mountOptions].filter(Boolean).join(','), dev, mp]);
    try {
      if (describe) ctx.note(`${v.name}: ${describeMount(mp)}`);
      return await ddWrite(path.join(mp, 'seq.bin'), mib);
    } finally {
      await must('umount', [mp]);
    }
  } finally {
    await run('losetup', ['-d', dev]);
    fs.rmSync(img, { force: true });
  }
}

export const section: Section = {
  name: 'image-matrix',
  description: 'investigation: image volume write vs raw disk, varying loop direct I/O, preallocation and lazy init',
  optIn: true,
  async run(ctx) {
    const rounds = ctx.quick ? 1 : 3;
    const mib = ctx.quick ? 256 : 1024;
    const daemon = await ctx.startNetvol();
    // On the daemon's filesystem, next to its volumes.
    const dir = path.join(daemon.root, 'matrix');
    fs.mkdirSync(dir);
    const raw: number[] = [];
    const got = VARIANTS.map(() => [] as number[]);
    for (let r = 0; r < rounds; r++) {
      // Raw opens and closes each round; the variants rotate so none always follows raw.
      const order = VARIANTS.map((_, i) => (i + r) % VARIANTS.length);
      const rawWrite = async () => {
        const f = path.join(dir, 'raw.bin');
        try {
          raw.push(await ddWrite(f, mib));
        } finally {
          fs.rmSync(f, { force: true });
        }
      };
      await rawWrite();
      for (const i of order) {
        ctx.log(`round ${r + 1}/${rounds}: ${VARIANTS[i].name}`);
        const v = VARIANTS[i];
        got[i].push(await (v.viaDaemon ? daemonWrite(ctx, daemon, v, mib, r === 0) : imageWrite(ctx, dir, v, mib, r === 0)));
      }
      await rawWrite();
    }
    const all = (v: number[]) => v.map((x) => x.toFixed(0)).join(', ');
    ctx.note(`MiB/s per run — raw ${all(raw)}; ${VARIANTS.map((v, i) => `${v.name}: ${all(got[i])}`).join('; ')}`);
    const size = mib === 1024 ? '1 GiB' : `${mib} MiB`;
    return VARIANTS.map(
      (v, i): Row => ({
        metric: `${size} write + fsync, ${v.name}, median of ${rounds}`,
        netvol: { value: median(got[i]), unit: 'MiB/s', digits: 0, label: 'image' },
        baseline: { value: median(raw), unit: 'MiB/s', digits: 0, label: 'raw disk' },
      }),
    );
  },
};
