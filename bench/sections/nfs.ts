/**
 * The nfs backend with its userspace mounter (issue 4), against a real nfs-ganesha on 127.0.0.1
 * that the section starts itself: sequential 1 GiB write (fsync) and cold read through an nfs
 * directory volume against libnfs's C client (`nfs-cp`) on the same server and against dd on the
 * export's own disk, interleaved, and against a FUSE filesystem that does no work (the FUSE
 * ceiling: what the kernel's FUSE path and our FUSE library cost on this host); files created per
 * second unpacking a tar of 10,000 small files (into a directory volume and an image volume vs
 * into the export's own disk);
 * and control-operation latency over the socket with 1,000 volumes on the backend (Create, Get,
 * List), against Plugin.Activate, the floor of the socket + HTTP + JSON path.
 */
import fs from 'node:fs';
import path from 'node:path';
import { GaneshaServer, startGanesha } from '../../test/harness/ganesha';
import { BenchDaemon } from '../lib/daemon';
import { warmFreeMemory } from '../lib/host';
import { MiB } from '../lib/io';
import { elapsedMs, median, percentile } from '../lib/stats';
import { BenchContext, Figure, Row, Section } from '../lib/types';
import { NullFuse, nullFuseVariant, startNullFuse } from '../remote/null-fuse';
import { fmtList, mustDropCaches, rotated, timed } from '../remote/proc';
import { ddVariant, measureSeq, mibps, perRun, SeqVariant, sizeText } from '../remote/seqio';
import { makeSmallTree, unpackRate } from '../remote/tree';

const NFS_CP_TARGET = 1.0;
const BACKEND = 'nas';
/** The folder in the export holding the backend's volumes. */
const VOLUMES = 'netvol';

interface Setup {
  g: GaneshaServer;
  daemon: BenchDaemon;
  workDir: string;
}

/** Creates a volume and attaches it under `id`; the section's cleanup detaches and removes it. */
async function attached(ctx: BenchContext, s: Setup, name: string, id: string, opts: Record<string, string> = {}): Promise<string> {
  const c = s.daemon.client;
  await c.call('VolumeDriver.Create', { Name: name, Opts: opts }, 120_000);
  let mounted = false;
  ctx.defer(async () => {
    if (mounted) await c.request('VolumeDriver.Unmount', { Name: name, ID: id }, 120_000).catch(() => undefined);
    await c.request('VolumeDriver.Remove', { Name: name }, 300_000).catch((err: Error) => ctx.log(`removing ${name}: ${err.message}`));
  });
  const m = await c.call('VolumeDriver.Mount', { Name: name, ID: id }, 120_000);
  mounted = true;
  const status = (await c.call('VolumeDriver.Get', { Name: name })).Volume?.Status ?? {};
  if (status.mounter !== 'userspace') throw new Error(`${name} is attached with mounter ${JSON.stringify(status.mounter)}, not the userspace mounter this section measures`);
  return String(m.Mountpoint);
}

/** A path in the export as libnfs names it. */
function nfsUrl(g: GaneshaServer, rel: string): string {
  return `nfs://${g.host}${g.exportPath}/${rel}?nfsport=${g.nfsPort}&mountport=${g.mountPort}`;
}

async function sequential(ctx: BenchContext, s: Setup): Promise<Row[]> {
  const mib = ctx.quick ? 256 : 1024;
  // Five rounds, not three: single 1 GiB writes on a 2-core machine spread widely, and a round
  // takes only ~10 s.
  const runs = ctx.quick ? 1 : 5;
  const { g } = s;
  const volMp = await attached(ctx, s, 'bench-seq', 'bench-seq');
  // nfs-cp and the disk baseline each get a folder of their own in the export, beside the volumes.
  const cpDir = path.join(g.exportDir, 'nfs-cp');
  const diskDir = path.join(g.exportDir, 'disk');
  fs.mkdirSync(cpDir);
  fs.mkdirSync(diskDir);
  // nfs-cp copies a file: zeros in tmpfs (memory, like /dev/zero for dd; drop_caches does not evict tmpfs).
  const source = path.join('/dev/shm', `netvol-bench-${process.pid}-${mib}.bin`);
  ctx.defer(() => {
    fs.rmSync(source, { force: true });
    fs.rmSync(`${source}.read`, { force: true });
  });
  await timed('dd', ['if=/dev/zero', `of=${source}`, 'bs=1M', `count=${mib}`, 'status=none']);

  const cpName = (i: number) => `seq-${i}.bin`;
  const nfsCp: SeqVariant = {
    key: 'nfscp',
    label: 'nfs-cp',
    async write(i, m) {
      // measureSeq has just run sync and dropped the page cache; warm as ddWrite does.
      warmFreeMemory();
      const t = process.hrtime.bigint();
      await timed('nfs-cp', [source, nfsUrl(g, `nfs-cp/${cpName(i)}`)]);
      // The same durability as dd's conv=fsync through the volume (a COMMIT): fsync the file on the server's disk.
      await timed('sync', [path.join(cpDir, cpName(i))]);
      return m / (elapsedMs(t) / 1000);
    },
    async read(i) {
      const file = path.join(cpDir, cpName(i));
      const size = fs.statSync(file).size / MiB;
      // nfs-cp cannot write to /dev/null; a tmpfs file costs a memory copy, as a read into dd's buffer does.
      const sink = `${source}.read`;
      mustDropCaches();
      const t = process.hrtime.bigint();
      try {
        await timed('nfs-cp', [nfsUrl(g, `nfs-cp/${cpName(i)}`), sink]);
        return size / (elapsedMs(t) / 1000);
      } finally {
        fs.rmSync(sink, { force: true });
      }
    },
    async discard(i) {
      // Emptied first: ganesha still holds the file open after nfs-cp is done, so a plain unlink
      // behind its back leaves the 1 GiB allocated until ganesha closes it, and that work then
      // falls on whichever variant writes next (measured: the write right after nfs-cp ran at half
      // speed in almost every round; emptied first, it did not).
      const file = path.join(cpDir, cpName(i));
      if (fs.existsSync(file)) fs.truncateSync(file, 0);
      fs.rmSync(file, { force: true });
    },
  };
  const variants: SeqVariant[] = [ddVariant('volume', 'nfs directory volume', () => volMp), nfsCp, ddVariant('disk', "export's disk", () => diskDir)];
  // The FUSE ceiling runs in the same rounds; without it the other rows still stand.
  const ceilingRows: Row[] = [];
  let ceiling: NullFuse | undefined;
  try {
    ceiling = await startNullFuse(ctx, path.join(s.workDir, 'null-fuse'));
  } catch (err) {
    ctx.log(`the FUSE ceiling could not start: ${(err as Error).message}`);
    ceilingRows.push({ metric: 'FUSE ceiling (a FUSE filesystem that discards the data)', error: (err as Error).message });
  }
  const measured = ceiling ? [...variants, nullFuseVariant('null', 'null FUSE fs', () => ceiling!)] : variants;
  const samples = await measureSeq(ctx, 'sequential I/O', measured, { mib, runs, warmups: ctx.quick ? 0 : 1 });
  const get = (k: string) => samples.get(k)!;
  const size = sizeText(mib);
  const m = `median of ${runs}`;
  ctx.note(
    `nfs sequential MiB/s per run (after ${ctx.quick ? 'no' : 'one unrecorded'} warm-up round) — write: ${perRun(samples, variants, 'write')}; read: ${perRun(samples, variants, 'read')}. ` +
      `Writes: dd bs=1M conv=fsync through the volume (UNSTABLE WRITEs + COMMIT) vs \`nfs-cp\` from a tmpfs file then an fsync of the file on the server's disk (reads: \`nfs-cp\` into a tmpfs file), vs dd conv=fsync on the export's disk; reads are cold (page cache dropped, server side included)`,
  );
  if (median(get('disk').read) > 2000) {
    ctx.note(`cold reads of the export's disk ran at ${median(get('disk').read).toFixed(0)} MiB/s after drop_caches: the virtual disk is cached by its host, so that baseline is memory, not a disk`);
  }
  const w = (k: string, label: string): Figure => mibps(get(k).write, label);
  const r = (k: string, label: string): Figure => mibps(get(k).read, label);
  if (ceiling) {
    const ratio = (k: 'write' | 'read') => (median(get('null')[k]) / median(get('nfscp')[k])).toFixed(2);
    const mounted = ceiling.mounted;
    ctx.note(
      `FUSE ceiling: a FUSE filesystem on src/fuse in its own process that discards writes and reads zeros (no network, no disk), mounted as the userspace mount is ` +
        `(max_write ${(mounted.fuse?.maxWrite ?? 0) / MiB} MiB, readahead ${mounted.readahead ? `${mounted.readahead / MiB} MiB` : 'the kernel default'}, UV_THREADPOOL_SIZE ${mounted.threadpool ?? '?'}), same dd commands, in the same rounds; ` +
        `MiB/s per run — write ${fmtList(get('null').write)}; read ${fmtList(get('null').read)}. The ceiling itself reaches ${ratio('write')} of nfs-cp's write and ${ratio('read')} of its read`,
    );
    ceilingRows.push(
      { metric: `sequential ${size} write + fsync, ${m} — against the FUSE ceiling (a FUSE filesystem that discards the data)`, netvol: w('volume', 'userspace mount'), baseline: w('null', 'null FUSE fs') },
      { metric: `sequential ${size} read, caches dropped, ${m} — against the FUSE ceiling (a FUSE filesystem that reads zeros)`, netvol: r('volume', 'userspace mount'), baseline: r('null', 'null FUSE fs') },
    );
  }
  return [
    { metric: `sequential ${size} write + fsync, ${m}`, netvol: w('volume', 'userspace mount'), baseline: w('nfscp', 'nfs-cp (libnfs)'), target: { on: 'ratio', op: '>=', value: NFS_CP_TARGET } },
    { metric: `sequential ${size} read, caches dropped, ${m}`, netvol: r('volume', 'userspace mount'), baseline: r('nfscp', 'nfs-cp (libnfs)'), target: { on: 'ratio', op: '>=', value: NFS_CP_TARGET } },
    { metric: `sequential ${size} write + fsync, ${m}`, netvol: w('volume', 'userspace mount'), baseline: w('disk', "export's disk") },
    { metric: `sequential ${size} read, caches dropped, ${m}`, netvol: r('volume', 'userspace mount'), baseline: r('disk', "export's disk") },
    ...ceilingRows,
  ];
}

async function metadata(ctx: BenchContext, s: Setup): Promise<Row[]> {
  const files = ctx.quick ? 2000 : 10_000;
  const runs = ctx.quick ? 1 : 3;
  const tree = await makeSmallTree(s.workDir, files);
  const volMp = await attached(ctx, s, 'bench-meta', 'bench-meta');
  // An image volume keeps metadata in its own ext4, so only whole blocks of the image cross the network.
  const imageSize = '2G';
  const imageMp = await attached(ctx, s, 'bench-meta-image', 'bench-meta-image', { size: imageSize });
  const diskDir = path.join(s.g.exportDir, 'disk-tree');
  const rates = { volume: [] as number[], image: [] as number[], disk: [] as number[] };
  const where = { volume: volMp, image: imageMp, disk: diskDir };
  const labels = { volume: 'nfs directory volume', image: 'nfs image volume', disk: "export's disk" };
  for (let round = 0; round < runs; round++) {
    for (const kind of rotated(['volume', 'image', 'disk'] as const, round)) {
      ctx.log(`unpacking ${files} files: run ${round + 1}/${runs}, ${labels[kind]}`);
      const dest = path.join(where[kind], `run-${round}`);
      await timed('sync', []);
      rates[kind].push(await unpackRate(tree, dest));
    }
  }
  // The copies on the export's disk go now; the volume's go with the volume.
  fs.rmSync(diskDir, { recursive: true, force: true });
  ctx.note(
    `tar -x of ${files} files of ${tree.bytesPerFile} B in ${tree.dirs} folders, then sync -f of the target, files/s per run — directory volume ${fmtList(rates.volume)}; image volume (size=${imageSize}, ext4 in a file on the export, loop-mounted over the userspace mount) ${fmtList(rates.image)}; export's disk ${fmtList(rates.disk)}`,
  );
  const rate = (kind: keyof typeof rates, label: string): Figure => ({ value: median(rates[kind]), unit: 'files/s', digits: 0, label });
  const disk = rate('disk', "export's disk");
  return [
    { metric: `files created per second, tar -x of ${files} small files, median of ${runs}`, netvol: rate('volume', 'userspace mount'), baseline: disk },
    { metric: `same, image volume (size=${imageSize}) over the userspace mount`, netvol: rate('image', 'image'), baseline: disk },
  ];
}

async function control(ctx: BenchContext, s: Setup): Promise<Row[]> {
  const n = ctx.quick ? 200 : 1000;
  const c = s.daemon.client;
  const names = Array.from({ length: n }, (_, i) => `bench-ctl-${String(i).padStart(4, '0')}`);
  const created = new Set<string>();
  ctx.defer(async () => {
    for (const name of created) await c.request('VolumeDriver.Remove', { Name: name }, 60_000).catch(() => undefined);
  });
  const activate = async (into: number[]): Promise<void> => {
    const t = process.hrtime.bigint();
    const a = await c.request('Plugin.Activate');
    into.push(elapsedMs(t));
    if (!Array.isArray(a.json?.Implements)) throw new Error(`Plugin.Activate answered ${JSON.stringify(a.json)}`);
  };
  const timedCall = async (method: string, body: unknown, into: number[]): Promise<unknown> => {
    const t = process.hrtime.bigint();
    const r = await c.call(method, body, 60_000);
    into.push(elapsedMs(t));
    return r;
  };
  // Warm-up: connection, JIT, the backend's connection to the server.
  for (let i = 0; i < 20; i++) await c.request('Plugin.Activate');
  await c.call('VolumeDriver.List', {}, 60_000);

  const t = { create: [] as number[], get: [] as number[], remove: [] as number[], list: [] as number[], floor: [] as number[] };
  // Each request is paired with an Activate, alternating which goes first, so the floor sees the same load.
  for (let i = 0; i < n; i++) {
    const pair = [() => timedCall('VolumeDriver.Create', { Name: names[i], Opts: { backend: BACKEND } }, t.create).then(() => created.add(names[i])), () => activate(t.floor)];
    for (const f of rotated(pair, i)) await f();
    if ((i + 1) % 250 === 0) ctx.log(`created ${i + 1}/${n} volumes`);
  }
  for (let i = 0; i < n; i++) {
    const name = names[(i * 7919) % n];
    const pair = [() => timedCall('VolumeDriver.Get', { Name: name }, t.get), () => activate(t.floor)];
    for (const f of rotated(pair, i)) await f();
  }
  let listed = 0;
  for (let i = 0; i < 3; i++) {
    const r = (await timedCall('VolumeDriver.List', {}, t.list)) as { Volumes?: unknown[] };
    listed = r.Volumes?.length ?? 0;
  }
  if (listed < n) throw new Error(`List answered ${listed} volumes, expected at least ${n}`);
  for (const name of names) {
    await timedCall('VolumeDriver.Remove', { Name: name }, t.remove);
    created.delete(name);
  }

  const ms = (value: number, label?: string): Figure => ({ value, unit: 'ms', digits: 2, ...(label ? { label } : {}) });
  const floor = (p: number) => ms(percentile(t.floor, p), 'Activate');
  ctx.note(
    `control operations over the socket, sequential on one keep-alive connection, each paired with a Plugin.Activate (the floor); List of ${listed} volumes ms per run: ${fmtList(t.list, 1)}; ` +
      `Remove p50 ${percentile(t.remove, 50).toFixed(2)} ms, p99 ${percentile(t.remove, 99).toFixed(2)} ms (information)`,
  );
  return [
    { metric: `Create p50 (${n} directory volumes, one after another)`, netvol: ms(percentile(t.create, 50)), baseline: floor(50) },
    { metric: `Create p99 (${n} directory volumes)`, netvol: ms(percentile(t.create, 99)), baseline: floor(99) },
    { metric: `Get p50 (${n} volumes on the backend)`, netvol: ms(percentile(t.get, 50)), baseline: floor(50) },
    { metric: `Get p99 (${n} volumes on the backend)`, netvol: ms(percentile(t.get, 99)), baseline: floor(99) },
    { metric: `List of ${listed} volumes, median of 3`, netvol: ms(median(t.list)) },
  ];
}

type Part = (ctx: BenchContext, s: Setup) => Promise<Row[]>;

const PARTS: Array<[string, Part]> = [
  ['sequential I/O', sequential],
  ['metadata (tar -x)', metadata],
  ['control latency', control],
];

export const section: Section = {
  name: 'nfs',
  description: 'nfs backend (userspace mounter) against nfs-cp (libnfs) and the export\'s disk; tar -x of small files; Create/Get/List with 1,000 volumes',
  async run(ctx) {
    ctx.log('starting nfs-ganesha');
    const g = await startGanesha();
    ctx.defer(() => g.stop());
    const daemon = await ctx.startNetvol({
      backends: { [BACKEND]: { type: 'nfs', server: g.host, export: g.exportPath, port: g.nfsPort, mountPort: g.mountPort, path: VOLUMES, mounter: 'userspace' } },
    });
    const s: Setup = { g, daemon, workDir: ctx.workDir('nfs') };
    const rows: Row[] = [];
    for (const [name, part] of PARTS) {
      const started = Date.now();
      try {
        rows.push(...(await part(ctx, s)));
      } catch (err) {
        ctx.log(`${name} failed: ${(err as Error).stack ?? String(err)}\n--- netvol log ---\n${daemon.logTail()}`);
        rows.push({ metric: name, error: (err as Error).message });
      }
      ctx.log(`${name}: ${Math.round((Date.now() - started) / 1000)} s`);
    }
    return rows;
  },
};
