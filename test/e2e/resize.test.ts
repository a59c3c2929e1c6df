import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { waitFor } from '../harness/dockerd';
import { canGrowMountedExt4 } from '../../src/quota';
import { dfTotal, MiB, netvolctl, startWriter, stopWriter, waitWriter } from './support/resize';
import { BUSYBOX_IMAGE, firstWord, hostMountsHolding, inspect, md5OnVolume, startWorld, status, stopWorld, uniqueName, World } from './support/world';

jest.setTimeout(180_000);

/**
 * netvolctl resize through a real dockerd and the real daemon on a local backend: containers keep
 * writing while their volume grows, and their writes stop at the new size. (The same on sftp in
 * test/sftp/resize.test.ts.)
 */
let w: World;
beforeAll(async () => {
  w = await startWorld();
}, 180_000);
afterAll(async () => {
  await stopWorld(w);
}, 300_000);

test('an xfs volume grows while a container writes into it: its writes go past the old size without a failure, and stop with ENOSPC at the new size', async () => {
  const name = uniqueName('rs-xfs');
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'size=320M', '-o', 'fs=xfs', name]);
  const c = await startWriter(w, name);
  try {
    const oldTotal = await dfTotal(w, c);
    await waitWriter(w, c, 'the writer to have written 32 MiB', (s) => s.ok >= 32);
    const r = await netvolctl(w, ['resize', name, '480M']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^${name}: 320\\.0 MiB → 480\\.0 MiB \\(online, while mounted on this host; xfs now \\d+\\.\\d MiB, \\d+\\.\\d s\\)\\n$`));
    const during = await waitWriter(w, c, 'the writer to fill the grown volume', (s) => s.failed > 0);
    // Not one write failed before the volume was full at its new size.
    expect(during.firstFailAt).toBe(during.ok);
    expect(during.firstError).toMatch(/No space left on device/);
    expect(during.ok * MiB).toBeGreaterThan(oldTotal + 64 * MiB);
    expect(during.ok * MiB).toBeLessThanOrEqual(480 * MiB);
    expect(await dfTotal(w, c)).toBeGreaterThan(oldTotal + 150 * MiB);
    expect((await status(w, name)).sizeBytes).toBe(480 * MiB);
  } finally {
    await stopWriter(w, c);
  }
});

test('a mounted ext4 volume grows online where netvol has CAP_SYS_RESOURCE; without it, resize says so and leaves the writing container alone, and grows the volume offline once it is stopped', async () => {
  const name = uniqueName('rs-ext4');
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'size=64M', name]);
  const keep = await w.d.runContainer(['--rm', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'dd if=/dev/urandom of=/data/keep bs=1M count=4 2>/dev/null && sync && md5sum /data/keep']);
  expect(keep.code).toBe(0);
  const c = await startWriter(w, name, 0.05, 1);
  let oldTotal: number;
  try {
    oldTotal = await dfTotal(w, c);
    await waitWriter(w, c, 'the writer to have written 8 MiB', (s) => s.ok >= 8);
    const r = await netvolctl(w, ['resize', name, '128M']);
    if (await canGrowMountedExt4()) {
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`${name}: 64.0 MiB → 128.0 MiB (online`);
      const full = await waitWriter(w, c, 'the writer to fill the grown volume', (s) => s.failed > 0);
      expect(full.firstFailAt).toBe(full.ok);
      expect(full.ok * MiB).toBeGreaterThan(oldTotal);
      expect(full.ok * MiB).toBeLessThanOrEqual(128 * MiB);
      return;
    }
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `netvolctl: cannot resize volume ${name}: the kernel grows a mounted ext4 filesystem only for a process with CAP_SYS_RESOURCE, which this netvol process lacks; nothing was changed: stop the containers using it and run netvolctl resize again (with no host using it, it grows offline, which needs no capability), or run netvol with CAP_SYS_RESOURCE\n`,
    );
    const before = await waitWriter(w, c, 'the writer to go on writing', (s) => s.ok >= 12);
    expect(before.failed).toBe(0);
    expect((await status(w, name)).sizeBytes).toBe(64 * MiB);
  } finally {
    await stopWriter(w, c);
  }
  // Offline: no container uses it now.
  const r = await netvolctl(w, ['resize', name, '128M']);
  expect(r.stderr).toBe('');
  expect(r.stdout).toMatch(new RegExp(`^${name}: 64\\.0 MiB → 128\\.0 MiB \\(offline, mounted on this host for the resize only; ext4 now \\d+\\.\\d MiB`));
  const v = await inspect(w, name);
  expect(v.Status.sizeBytes).toBe(128 * MiB);
  expect(hostMountsHolding(w, path.join(w.nv.stateDir, 'mounts', name))).toEqual([]);
  // The next container writes past the old size, up to the new one.
  const fill = await w.d.runContainer(['--rm', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'rm -f /data/w.*; dd if=/dev/zero of=/data/fill bs=1M count=200; sync; ls -l /data/fill; md5sum /data/keep']);
  expect(fill.stderr).toMatch(/No space left on device/);
  const bytes = Number(/^\S+\s+\S+\s+\S+\s+\S+\s+(\d+)/m.exec(fill.stdout)?.[1]);
  expect(bytes).toBeGreaterThan(oldTotal!);
  expect(bytes).toBeLessThanOrEqual(128 * MiB);
  expect(fill.stdout).toContain(firstWord(keep.stdout));
});

describe('after a resize', () => {
  const name = uniqueName('rs-after');

  beforeAll(async () => {
    await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'size=64M', '-o', 'onRemove=delete', name]);
    const r = await netvolctl(w, ['resize', name, '96M', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name, backend: 'local', fs: 'ext4', mode: 'offline', oldSizeBytes: 64 * MiB, newSizeBytes: 96 * MiB });
  });

  test('a Create re-sent with the original options succeeds, through the protocol (as dockerd re-sends it) and through docker volume create; another size is refused naming it', async () => {
    const again = await w.nv.request('VolumeDriver.Create', { Name: name, Opts: { size: '64M', onRemove: 'delete' } });
    expect(again.json).toEqual({ Err: '' });
    const current = await w.nv.request('VolumeDriver.Create', { Name: name, Opts: { size: '96M', onRemove: 'delete' } });
    expect(current.json).toEqual({ Err: '' });
    const other = await w.nv.request('VolumeDriver.Create', { Name: name, Opts: { size: '80M', onRemove: 'delete' } });
    expect(other.json.Err).toMatch(new RegExp(`^volume ${name} already exists with different options \\(size\\)`));
    await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'size=64M', '-o', 'onRemove=delete', name]);
    expect((await status(w, name)).sizeBytes).toBe(96 * MiB);
  });

  test('a shrink, a directory volume and a bad size are refused with a sentence naming the volume, and nothing changes', async () => {
    const shrink = await netvolctl(w, ['resize', name, '64M']);
    expect(shrink.code).toBe(1);
    expect(shrink.stderr).toBe(`netvolctl: volume ${name} is 96.0 MiB, more than the 64.0 MiB asked: resize only grows a volume (an image cannot shrink under its filesystem); give a size above 96.0 MiB, or copy the data into a new, smaller volume\n`);
    const dir = uniqueName('rs-dir');
    await w.d.dockerOk(['volume', 'create', '-d', w.plugin, dir]);
    const d = await netvolctl(w, ['resize', dir, '1G']);
    expect(d.code).toBe(1);
    expect(d.stderr).toMatch(new RegExp(`^netvolctl: volume ${dir} is a directory volume \\(created without size\\)`));
    const bad = await netvolctl(w, ['resize', name, 'lots']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe(`netvolctl: volume ${name}: invalid size "lots": give a size such as 512M, 10G or 1.5T\n`);
    expect(fs.statSync(path.join(w.nv.localPath, name, 'data.img')).size).toBe(96 * MiB);
  });

  test('after a daemon restart, docker volume inspect and netvolctl ls show the new size, and a container sees it', async () => {
    await w.nv.stop();
    await w.nv.restart();
    expect((await status(w, name)).sizeBytes).toBe(96 * MiB);
    const ls = await netvolctl(w, ['ls', '--json', '--fast']);
    expect(ls.code).toBe(0);
    expect((JSON.parse(ls.stdout) as { volumes: Array<{ name: string; sizeBytes: number }> }).volumes.find((v) => v.name === name)?.sizeBytes).toBe(96 * MiB);
    const df = await w.d.runContainer(['--rm', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'df', '-k', '/data']);
    expect(Number(df.stdout.split('\n')[1].trim().split(/\s+/)[1]) * 1024).toBeGreaterThan(85 * MiB);
  });
});

test('a daemon killed with -9 right after the image file grew leaves a usable volume, and resize run again finishes the job', async () => {
  const name = uniqueName('rs-kill');
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'size=64M', name]);
  const keep = await w.d.runContainer(['--rm', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'dd if=/dev/urandom of=/data/keep bs=1M count=4 2>/dev/null && sync && md5sum /data/keep']);
  const keepMd5 = firstWord(keep.stdout);
  const image = path.join(w.nv.localPath, name, 'data.img');
  const ctl = spawn(process.execPath, [path.resolve(__dirname, '..', '..', 'dist', 'cli', 'index.js'), 'resize', name, '128M', '--socket', path.join(w.nv.stateDir, 'admin.sock')], { stdio: 'ignore' });
  const ended = new Promise((r) => ctl.once('exit', r));
  await waitFor('the image file to grow', () => fs.statSync(image).size > 64 * MiB, 60_000, 2);
  await w.nv.kill9();
  await ended;
  await w.nv.restart();
  // Usable: a container reads what was there and writes more.
  const read = await w.d.runContainer(['--rm', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'md5sum /data/keep && echo more > /data/more']);
  expect(read.stderr).toBe('');
  expect(firstWord(read.stdout)).toBe(keepMd5);
  const again = await netvolctl(w, ['resize', name, '128M']);
  expect(again.stderr).toBe('');
  expect(again.stdout).toContain(`${name}: 64.0 MiB → 128.0 MiB`);
  expect((await status(w, name)).sizeBytes).toBe(128 * MiB);
  expect(await md5OnVolume(w, name, 'keep')).toBe(keepMd5);
  const df = await w.d.runContainer(['--rm', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'df', '-k', '/data']);
  expect(Number(df.stdout.split('\n')[1].trim().split(/\s+/)[1]) * 1024).toBeGreaterThan(115 * MiB);
});
