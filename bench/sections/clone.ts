/**
 * Clone on a local backend with reflinks (issue 14): a 10 GiB image volume holding 1 GiB of real
 * data, in use (mounted, as under a container), cloned through the daemon's admin API (what
 * `netvolctl clone` asks for: a reflink of data.img while its filesystem is frozen), against a
 * streamed copy of the same image on the same disk (`cp --sparse=always --reflink=never`, then
 * fsync), interleaved. The backend's folder is on XFS with reflink=1, made in a loop-mounted image
 * of the section's own folder. A second netvol row after another 1 GiB is written shows whether
 * the clone's time grows with the data (it should not: constant time).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { run } from '../../test/harness/dockerd';
import { BenchDaemon } from '../lib/daemon';
import { elapsedMs, median } from '../lib/stats';
import { BenchContext, Row, Section } from '../lib/types';

const GiB = 1024 * 1024 * 1024;

async function must(file: string, args: string[], timeoutMs = 600_000): Promise<string> {
  const r = await run(file, args, { timeoutMs });
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** POST /v1/volumes/DST/clone on the admin socket; resolves with the result line, rejects with the daemon's error. */
function adminClone(socket: string, src: string, dst: string): Promise<Record<string, unknown>> {
  const payload = Buffer.from(JSON.stringify({ source: src, opts: {} }));
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: socket, method: 'POST', path: `/v1/volumes/${dst}/clone`, headers: { 'content-type': 'application/json', 'content-length': String(payload.length) } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => {
        const lines = text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
        const last = lines[lines.length - 1] ?? {};
        if (last.result) resolve(last.result as Record<string, unknown>);
        else reject(new Error(`clone ${src} → ${dst}: ${String(last.error ?? text)}`));
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

async function measure(ctx: BenchContext, daemon: BenchDaemon, mnt: string): Promise<Row[]> {
  const client = daemon.client;
  const admin = path.join(daemon.root, 'state', 'admin.sock');
  const src = 'bench-clone-src';
  await client.call('VolumeDriver.Create', { Name: src, Opts: { size: '10G' } }, 120_000);
  const { Mountpoint: mp } = (await client.call('VolumeDriver.Mount', { Name: src, ID: 'bench-writer' }, 120_000)) as { Mountpoint: string };
  ctx.defer(() => client.request('VolumeDriver.Unmount', { Name: src, ID: 'bench-writer' }).catch(() => undefined));
  ctx.log('writing 1 GiB of random data into the 10 GiB image volume');
  await must('dd', ['if=/dev/urandom', `of=${path.join(mp, 'data1')}`, 'bs=4M', 'count=256', 'conv=fsync', 'status=none']);
  const srcImg = path.join(mnt, 'volumes', src, 'data.img');
  const baseImg = path.join(mnt, 'volumes', 'baseline-copy.img');
  const rounds = ctx.quick ? 2 : 5;

  const netvolRun = async (tag: string, i: number): Promise<number> => {
    const dst = `bench-clone-${tag}-${i}`;
    const started = process.hrtime.bigint();
    const result = await adminClone(admin, src, dst);
    const ms = elapsedMs(started);
    if (result.method !== 'reflink') throw new Error(`the clone was made by ${String(result.method)}, not a reflink: is ${mnt} XFS with reflink=1?`);
    await client.call('VolumeDriver.Remove', { Name: dst }, 60_000);
    return ms;
  };
  const baselineRun = async (): Promise<number> => {
    await must('sync', []);
    const started = process.hrtime.bigint();
    await must('cp', ['--sparse=always', '--reflink=never', srcImg, baseImg]);
    await must('sync', ['-f', baseImg]);
    const ms = elapsedMs(started);
    fs.rmSync(baseImg, { force: true });
    return ms;
  };

  // One unrecorded pair first (page cache, first connection of the admin socket).
  await netvolRun('warm', 0);
  await baselineRun();
  const nv: number[] = [];
  const base: number[] = [];
  for (let i = 1; i <= rounds; i++) {
    if (i % 2) {
      nv.push(await netvolRun('a', i));
      base.push(await baselineRun());
    } else {
      base.push(await baselineRun());
      nv.push(await netvolRun('a', i));
    }
  }
  ctx.log(`1 GiB written: clone ${nv.map((v) => v.toFixed(0)).join('/')} ms, streamed copy ${base.map((v) => v.toFixed(0)).join('/')} ms`);

  ctx.log('writing another 1 GiB (2 GiB in the image) to see whether the clone grows with the data');
  await must('dd', ['if=/dev/urandom', `of=${path.join(mp, 'data2')}`, 'bs=4M', 'count=256', 'conv=fsync', 'status=none']);
  const nv2: number[] = [];
  for (let i = 1; i <= rounds; i++) nv2.push(await netvolRun('b', i));
  const allocated = fs.statSync(srcImg).blocks * 512;

  ctx.note(
    `every run (ms) — reflink clone with 1 GiB written ${nv.map((v) => v.toFixed(0)).join(', ')}; streamed copy ${base.map((v) => v.toFixed(0)).join(', ')}; ` +
      `clone with 2 GiB written ${nv2.map((v) => v.toFixed(0)).join(', ')}. The source (10 GiB image, ${(allocated / GiB).toFixed(2)} GiB allocated) stays mounted, as under a container; ` +
      'each clone is a full admin request (hold, fsfreeze, FICLONE via cp --reflink=always, thaw, metadata), each copy is cp --sparse=always --reflink=never plus sync, on the same XFS (reflink=1) loop-mounted image.',
  );
  return [
    {
      metric: `clone of a 10 GiB image volume in use, 1 GiB written (median of ${rounds})`,
      netvol: { value: median(nv) / 1000, unit: 's', digits: 3, label: 'netvolctl clone: reflink' },
      baseline: { value: median(base) / 1000, unit: 's', digits: 3, label: 'streamed copy (cp)' },
      target: { on: 'netvol', op: '<', value: 1 },
    },
    {
      metric: `clone of the same image with 2 GiB written (median of ${rounds})`,
      netvol: { value: median(nv2) / 1000, unit: 's', digits: 3, label: 'netvolctl clone: reflink' },
      baseline: { value: median(nv) / 1000, unit: 's', digits: 3, label: 'the clone with 1 GiB written' },
    },
  ];
}

export const section: Section = {
  name: 'clone',
  description: 'local backend on XFS with reflinks: cloning a 10 GiB image volume in use (reflink) vs a streamed copy',
  async run(ctx) {
    const dir = ctx.workDir('clone');
    const img = path.join(dir, 'xfs.img');
    const mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);
    fs.closeSync(fs.openSync(img, 'w'));
    fs.truncateSync(img, 24 * GiB);
    await must('mkfs.xfs', ['-q', '-m', 'reflink=1', img]);
    await must('mount', ['-o', 'loop', img, mnt]);
    ctx.defer(async () => {
      await run('umount', [mnt], { timeoutMs: 60_000 });
      for (const line of execFileSync('losetup', ['-j', img]).toString().split('\n').filter(Boolean)) await run('losetup', ['-d', line.split(':')[0]], { timeoutMs: 10_000 });
    });
    const daemon = await ctx.startNetvol({ backends: { local: { type: 'local', path: path.join(mnt, 'volumes') } } });
    try {
      return await measure(ctx, daemon, mnt);
    } catch (err) {
      ctx.log(`clone failed: ${(err as Error).stack ?? String(err)}\n--- netvol log ---\n${daemon.logTail()}`);
      return [{ metric: 'clone of a 10 GiB image volume', error: (err as Error).message }];
    }
  },
};
