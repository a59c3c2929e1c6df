/**
 * Clones on a local backend whose folder is on XFS with reflinks (an image made and loop-mounted
 * in this test's own folder), through a real dockerd: netvolctl clone and docker volume create -o from.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { run } from '../harness/dockerd';
import { cloneJson, isNumberedPrefix, logLines, logLinesIn, netvolctl, startWriter } from './support/clone';
import { BUSYBOX_IMAGE, MiB, World, firstWord, md5OnVolume, startWorld, status, stopWorld, uniqueName } from './support/world';

jest.setTimeout(180_000);

let dir: string;
let mnt: string;
let img: string;
let w: World | undefined;
let mounted = false;

async function must(file: string, args: string[]): Promise<void> {
  const r = await run(file, args, { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nv-clone-'));
  img = path.join(dir, 'xfs.img');
  mnt = path.join(dir, 'mnt');
  fs.mkdirSync(mnt);
  fs.closeSync(fs.openSync(img, 'w'));
  fs.truncateSync(img, 2048 * MiB);
  await must('mkfs.xfs', ['-q', '-m', 'reflink=1', img]);
  await must('mount', ['-o', 'loop', img, mnt]);
  mounted = true;
  w = await startWorld({ backends: { local: { type: 'local', path: path.join(mnt, 'volumes') } } });
}, 180_000);

afterAll(async () => {
  await stopWorld(w);
  if (mounted) {
    const r = await run('umount', [mnt], { timeoutMs: 60_000 });
    if (r.code !== 0) process.stderr.write(`clone test: cannot unmount ${mnt}: ${r.stderr}\n`);
    // mount -o loop frees its loop device at umount; free one left attached to our image only.
    const left = await run('losetup', ['-j', img], { timeoutMs: 10_000 });
    for (const line of left.stdout.split('\n').filter(Boolean)) await run('losetup', ['-d', line.split(':')[0]], { timeoutMs: 10_000 });
  }
  fs.rmSync(dir, { recursive: true, force: true });
}, 300_000);

describe('a clone of an image volume while a container writes to it', () => {
  const src = uniqueName('clone-src');
  let writer = '';
  let markerMd5 = '';

  beforeAll(async () => {
    await w!.d.dockerOk(['volume', 'create', '-d', w!.plugin, '-o', 'size=64M', '-o', 'uid=1000', '-o', 'mode=0750', src]);
    const r = await w!.d.runContainer(['--rm', '-v', `${src}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'dd if=/dev/urandom of=/data/marker bs=1M count=4 2>/dev/null && sync && md5sum /data/marker']);
    expect(r.code).toBe(0);
    markerMd5 = firstWord(r.stdout);
    writer = await startWriter(w!, src);
    // Let the writer get going.
    for (let i = 0; i < 50 && (await logLinesIn(w!, writer).catch(() => [])).length < 200; i++) await new Promise((r) => setTimeout(r, 100));
  }, 120_000);

  afterAll(async () => {
    if (writer) await w!.d.docker(['rm', '-f', writer]);
  });

  test('netvolctl clone makes a point-in-time reflink copy holding what was written up to the clone', async () => {
    const dst = uniqueName('clone-dst');
    const before = (await logLinesIn(w!, writer)).length;
    const result = await cloneJson(w!, [src, dst]);
    const after = (await logLinesIn(w!, writer)).length;
    expect(result).toMatchObject({ name: dst, source: src, backend: 'local', layout: 'image', sizeBytes: 64 * MiB, method: 'reflink', pointInTime: true });
    expect(await md5OnVolume(w!, dst, 'marker')).toBe(markerMd5);
    const copied = await logLines(w!, dst);
    expect(copied.length).toBeGreaterThanOrEqual(before);
    expect(copied.length).toBeLessThanOrEqual(after + 1);
    expect(isNumberedPrefix(copied)).toBe(true);
    // Its options are the source's.
    expect(await status(w!, dst)).toMatchObject({ layout: 'image', sizeBytes: 64 * MiB, fs: 'ext4' });
    const owner = await w!.d.runContainer(['--rm', '-v', `${dst}:/data`, BUSYBOX_IMAGE, 'stat', '-c', '%u %a', '/data']);
    expect(owner.stdout.trim()).toBe('1000 750');

    // Independent: the clone no longer follows the source, and a write to it does not show in the source.
    await new Promise((r) => setTimeout(r, 500));
    expect((await logLines(w!, dst)).length).toBe(copied.length);
    const wrote = await w!.d.runContainer(['--rm', '-v', `${dst}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'echo only-in-clone > /data/own && rm /data/marker']);
    expect(wrote.code).toBe(0);
    const inSrc = await w!.d.docker(['exec', writer, 'sh', '-c', 'ls /data; md5sum /data/marker']);
    expect(inSrc.stdout).not.toContain('own');
    expect(inSrc.stdout).toContain(markerMd5);
    // The image shares its blocks with the source's: a reflink, not a byte copy.
    const srcImg = path.join(mnt, 'volumes', src, 'data.img');
    const dstImg = path.join(mnt, 'volumes', dst, 'data.img');
    const shared = await run('xfs_io', ['-r', '-c', 'fiemap -v', dstImg], { timeoutMs: 30_000 });
    // fiemap -v: the last column holds each extent's flags; 0x2000 is FIEMAP_EXTENT_SHARED.
    const flags = shared.stdout.split('\n').map((l) => /\s(0x[0-9a-f]+)\s*$/i.exec(l)?.[1]).filter((f): f is string => f !== undefined);
    expect(flags.some((f) => (parseInt(f, 16) & 0x2000) !== 0)).toBe(true);
    expect(fs.statSync(dstImg).size).toBe(fs.statSync(srcImg).size);
  });

  test('docker volume create -o from= makes the same kind of clone, and a grown one with -o size', async () => {
    const dst = uniqueName('from-dst');
    await w!.d.dockerOk(['volume', 'create', '-d', w!.plugin, '-o', `from=${src}`, dst]);
    expect(await md5OnVolume(w!, dst, 'marker')).toBe(markerMd5);
    expect(isNumberedPrefix(await logLines(w!, dst))).toBe(true);
    const meta = JSON.parse(fs.readFileSync(path.join(mnt, 'volumes', dst, 'volume.json'), 'utf8'));
    expect(meta).toMatchObject({ clonedFrom: src, spec: { layout: 'image', sizeBytes: 64 * MiB, uid: 1000, mode: 0o750 } });

    const big = uniqueName('from-big');
    await w!.d.dockerOk(['volume', 'create', '-d', w!.plugin, '-o', `from=${src}`, '-o', 'size=128M', big]);
    expect(await status(w!, big)).toMatchObject({ sizeBytes: 128 * MiB });
    const df = await w!.d.runContainer(['--rm', '-v', `${big}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'df -k /data | tail -1; md5sum /data/marker; test -e /data/lost+found || echo no-lost-found']);
    expect(df.code).toBe(0);
    const totalKiB = Number(df.stdout.trim().split('\n')[0].split(/\s+/)[1]);
    expect(totalKiB * 1024).toBeGreaterThan(100 * MiB);
    expect(df.stdout).toContain(markerMd5);
    expect(df.stdout).toContain('no-lost-found');
  });
});

describe('a clone of an xfs image volume', () => {
  test('gets a filesystem UUID of its own, so a container can mount it beside its source', async () => {
    const src = uniqueName('xfs-src');
    const dst = uniqueName('xfs-dst');
    await w!.d.dockerOk(['volume', 'create', '-d', w!.plugin, '-o', 'size=300M', '-o', 'fs=xfs', src]);
    const writer = await startWriter(w!, src);
    try {
      await new Promise((r) => setTimeout(r, 500));
      const result = await cloneJson(w!, [src, dst, '-o', 'size=400M']);
      expect(result).toMatchObject({ layout: 'image', sizeBytes: 400 * MiB, method: 'reflink', pointInTime: true });
    } finally {
      await w!.d.docker(['rm', '-f', writer]);
    }
    const both = await w!.d.runContainer(['--rm', '-v', `${src}:/a`, '-v', `${dst}:/b`, BUSYBOX_IMAGE, 'sh', '-c', 'head -3 /b/log; df -k /b | tail -1']);
    expect(both.stderr).toBe('');
    expect(both.code).toBe(0);
    expect(both.stdout.split('\n').slice(0, 3)).toEqual(['line 1', 'line 2', 'line 3']);
    expect(Number(both.stdout.split('\n')[3].split(/\s+/)[1]) * 1024).toBeGreaterThan(300 * MiB); // the 300M source's filesystem has about 236 MiB; its log does not grow
  });
});

describe('clones of directory volumes and refusals', () => {
  test('a directory volume is cloned with its owners, modes and links', async () => {
    const src = uniqueName('dir-src');
    const dst = uniqueName('dir-dst');
    await w!.d.dockerOk(['volume', 'create', '-d', w!.plugin, src]);
    const made = await w!.d.runContainer(['--rm', '-v', `${src}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'mkdir /data/d && echo hi > /data/d/f && chown 123:45 /data/d/f && chmod 0604 /data/d/f && ln -s d/f /data/l && ln /data/d/f /data/hard']);
    expect(made.code).toBe(0);
    const result = await cloneJson(w!, [src, dst]);
    expect(result).toMatchObject({ layout: 'directory', method: 'reflink', pointInTime: true });
    const seen = await w!.d.runContainer(['--rm', '-v', `${dst}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'stat -c "%u:%g %a %h" /data/d/f; readlink /data/l; cat /data/l']);
    expect(seen.stdout).toBe('123:45 604 2\nd/f\nhi\n');
  });

  test('refuses an unknown source, a smaller size, and a name that exists with other options, leaving nothing behind', async () => {
    const src = uniqueName('ref-src');
    await w!.d.dockerOk(['volume', 'create', '-d', w!.plugin, '-o', 'size=64M', src]);
    const unknown = await w!.d.docker(['volume', 'create', '-d', w!.plugin, '-o', 'from=no-such-volume', 'ref-a']);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('volume ref-a: cannot clone volume no-such-volume: it was not found on any netvol backend');
    const smaller = await w!.d.docker(['volume', 'create', '-d', w!.plugin, '-o', `from=${src}`, '-o', 'size=32M', 'ref-b']);
    expect(smaller.code).not.toBe(0);
    expect(smaller.stderr).toContain(`volume ref-b: size=32.0 MiB is smaller than volume ${src} (64.0 MiB)`);
    const other = uniqueName('ref-c');
    await w!.d.dockerOk(['volume', 'create', '-d', w!.plugin, other]);
    const exists = await netvolctl(w!, ['clone', src, other]);
    expect(exists.code).toBe(1);
    expect(exists.stderr).toBe(`netvolctl: volume ${other} already exists, not as a clone of ${src}: remove it first, or choose another name for the clone\n`);
    const missing = await netvolctl(w!, ['clone', 'no-such-volume', 'ref-d']);
    expect(missing.stderr).toContain('cannot clone volume no-such-volume');
    for (const name of ['ref-a', 'ref-b', 'ref-d']) expect(fs.existsSync(path.join(mnt, 'volumes', name))).toBe(false);
  });

  test('a clone re-requested with the same options succeeds without copying again', async () => {
    const src = uniqueName('again-src');
    const dst = uniqueName('again-dst');
    await w!.d.dockerOk(['volume', 'create', '-d', w!.plugin, src]);
    await cloneJson(w!, [src, dst, '-o', 'onRemove=delete']);
    const again = await cloneJson(w!, [src, dst, '-o', 'onRemove=delete']);
    expect(again).toMatchObject({ existed: true });
    const people = await netvolctl(w!, ['clone', src, dst, '-o', 'onRemove=delete']);
    expect(people.code).toBe(0);
    expect(people.stdout).toMatch(/copy\s+none \(the clone existed already\)/);
  });
});
