import * as fs from 'node:fs';
import { BUSYBOX_IMAGE, MiB, World, firstWord, hostMountsHolding, inspect, md5OnVolume, startWorld, status, stopWorld, uniqueName } from './support/world';

jest.setTimeout(180_000);

describe('an image volume\'s size is a hard limit that keeps earlier data', () => {
  let w: World;
  const name = uniqueName('quota');
  let keepMd5 = '';

  beforeAll(async () => {
    w = await startWorld();
    await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'size=64M', name]);
  }, 180_000);

  afterAll(async () => {
    await stopWorld(w);
  }, 300_000);

  test('a file written before the volume fills keeps its md5', async () => {
    const r = await w.d.runContainer([
      '--rm', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sh', '-c',
      'dd if=/dev/urandom of=/data/keep bs=1M count=8 2>/dev/null && sync && md5sum /data/keep',
    ]);
    expect(r.code).toBe(0);
    keepMd5 = firstWord(r.stdout);
  });

  test('a write past -o size fails inside the container with "No space left on device"', async () => {
    const r = await w.d.runContainer([
      '--rm', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sh', '-c',
      'dd if=/dev/zero of=/data/big bs=1M count=100 && sync',
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/No space left on device/);
  });

  test('the earlier file still has its md5 in a new container', async () => {
    expect(keepMd5).toMatch(/^[0-9a-f]{32}$/);
    expect(await md5OnVolume(w, name, 'keep')).toBe(keepMd5);
  });

  test('while the full volume is mounted, inspect shows it full', async () => {
    const c = await w.d.dockerOk(['run', '--network', 'none', '--pull', 'never', '-d', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sleep', '600']);
    try {
      const s = await status(w, name);
      expect(s.mounts).toHaveLength(1);
      expect(s.usedBytes).toBeGreaterThan(48 * MiB);
      expect(s.usedBytes).toBeLessThanOrEqual(64 * MiB);
      expect(s.availableBytes).toBeLessThan(4 * MiB);
      expect(s.usage).toMatch(/^\d+\.\d MiB of 64\.0 MiB \((7[5-9]|[89]\d|100)%\)$/);
    } finally {
      await w.d.docker(['rm', '-f', c]);
    }
  });

  test('the backend holds no more than the volume size, whatever was attempted', async () => {
    const img = fs.readdirSync(`${w.nv.localPath}/${name}`).find((f) => f.endsWith('.img'));
    expect(img).toBeDefined();
    const st = fs.statSync(`${w.nv.localPath}/${name}/${img!}`);
    expect(st.size).toBe(64 * MiB);
    expect(st.blocks * 512).toBeLessThanOrEqual(64 * MiB);
  });

  test('removing the big file gives the space back', async () => {
    const r = await w.d.runContainer([
      '--rm', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sh', '-c',
      'rm /data/big && dd if=/dev/zero of=/data/after bs=1M count=16 2>/dev/null && sync && echo ok',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('ok');
  });

  test('inspect of the unmounted volume reports the space inside its filesystem, not the image file\'s allocation', async () => {
    // What a mounted volume reports (statfs inside the image) is the truth the stopped volume must match.
    const c = await w.d.dockerOk(['run', '--network', 'none', '--pull', 'never', '-d', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sleep', '600']);
    const mounted = await status(w, name);
    await w.d.dockerOk(['rm', '-f', c]);
    // 8 MiB keep + 16 MiB after: far more than 16 MiB of the 64 MiB is free inside.
    expect(mounted.availableBytes).toBeGreaterThan(16 * MiB);
    await new Promise((r) => setTimeout(r, 2100)); // past the daemon's usage cache
    const unmounted = await status(w, name);
    expect(unmounted.mounts).toEqual([]);
    expect(Math.abs(unmounted.availableBytes - mounted.availableBytes)).toBeLessThan(4 * MiB);
    expect(Math.abs(unmounted.usedBytes - mounted.usedBytes)).toBeLessThan(4 * MiB);
  });

  test('a daemon stopped with SIGTERM removes its socket, and after a restart the image volume still has its file', async () => {
    const ended = await w.nv.stop();
    expect(ended.signal === 'SIGTERM' || ended.code === 0).toBe(true);
    expect(fs.existsSync(w.nv.socket)).toBe(false);
    await w.nv.restart();
    const v = await inspect(w, name);
    expect(v.Driver).toBe(w.plugin);
    expect(v.Status.layout).toBe('image');
    expect(v.Status.sizeBytes).toBe(64 * MiB);
    expect(await md5OnVolume(w, name, 'keep')).toBe(keepMd5);
    expect(hostMountsHolding(w, v.Mountpoint)).toEqual([]);
  });

  test('an xfs image volume enforces its size too', async () => {
    const xfs = uniqueName('quota-xfs');
    const c = await w.d.docker(['volume', 'create', '-d', w.plugin, '-o', 'size=320M', '-o', 'fs=xfs', xfs]);
    expect(c.stderr).toBe('');
    expect(c.code).toBe(0);
    const r = await w.d.runContainer([
      '--rm', '-v', `${xfs}:/data`, BUSYBOX_IMAGE, 'sh', '-c',
      'dd if=/dev/urandom of=/data/keep bs=1M count=4 2>/dev/null && sync && md5sum /data/keep && dd if=/dev/zero of=/data/big bs=1M count=400',
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/No space left on device/);
    const before = firstWord(r.stdout);
    expect(await md5OnVolume(w, xfs, 'keep')).toBe(before);
    expect((await status(w, xfs)).fs).toBe('xfs');
  });
});
