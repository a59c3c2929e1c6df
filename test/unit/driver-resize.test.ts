import { promises as fs } from 'node:fs';
import path from 'node:path';
import { optionDifferences } from '../../src/driver/create';
import { parseVolumeOptions } from '../../src/driver/options';
import { parseNewSize } from '../../src/driver/resize';
import { canGrowMountedExt4 } from '../../src/quota';
import { fsUsage, readMountTable, run } from '../../src/system';
import { makeWorld, MiB, mountsAt, loopsOf, refusal, World } from './support/driver-world';
import { removeRigs, rig } from './support/fake-world';
import { HostsWorld, makeHosts } from './support/hosts-world';

/**
 * netvolctl resize through the driver (VolumeOperations.resize) over the real local backend: loop
 * devices, ext4 and the kernel's online resize (root needed), and over a fake mount seam for the
 * free-space rule. End to end through dockerd, with a container writing, in test/e2e/resize.test.ts.
 */
const isRoot = process.getuid?.() === 0;
const maybe = isRoot ? describe : describe.skip;

afterAll(removeRigs);

const metaOf = async (w: World, name: string): Promise<Record<string, any>> => JSON.parse(await fs.readFile(path.join(w.volumesDir, name, 'volume.json'), 'utf8'));
const imageOf = (w: World, name: string): string => path.join(w.volumesDir, name, 'data.img');

describe('the resize rules that need no mount', () => {
  it('parseNewSize() takes sizes as -o size= does, rounded down to 4 KiB, and refuses others naming the volume', () => {
    expect(parseNewSize('v', '2G')).toBe(2048 * MiB);
    expect(parseNewSize('v', '512M')).toBe(512 * MiB);
    expect(parseNewSize('v', '100MiB')).toBe(100 * MiB);
    expect(parseNewSize('v', 10000)).toBe(8192);
    for (const bad of ['', 'big', '-1G', '0', undefined, null, 1.5]) {
      expect(() => parseNewSize('v', bad)).toThrow(/^volume v: invalid size .*: give a size such as 512M/);
    }
  });

  it('a Create of a resized image volume matches its current size and the size it was created with, and no other', () => {
    const spec = (size: string) => parseVolumeOptions('v', { size }, 'local');
    const resized = { spec: spec('128M'), createdSizeBytes: 64 * MiB };
    expect(optionDifferences(resized, spec('64M'))).toEqual([]);
    expect(optionDifferences(resized, spec('128M'))).toEqual([]);
    expect(optionDifferences(resized, spec('96M'))).toEqual(['size']);
    expect(optionDifferences(resized, spec('256M'))).toEqual(['size']);
    expect(optionDifferences(resized, parseVolumeOptions('v', { size: '64M', fs: 'xfs' }, 'local'))).toEqual(['fs']);
    // Never resized: only its size.
    expect(optionDifferences({ spec: spec('64M') }, spec('128M'))).toEqual(['size']);
  });
});

describe('resize checks free space as Create does (fake mount seam)', () => {
  it('refuses a growth the backend\'s free space cannot hold, naming the volume and the growth, and allows one that fits', async () => {
    const r = await rig('resize-space');
    await r.driver.create('tight', { size: '64M' });
    r.backend.freeBytes = async () => 100 * MiB;
    const refused = await refusal(r.driver.operations.resize('tight', '256M'));
    expect(refused.code).toBe('NO_SPACE');
    expect(refused.message).toMatch(/^volume tight: backend local has 100\.0 MiB free, less than growing it to 256\.0 MiB needs 256\.0 MiB more/);
    expect(JSON.parse(await fs.readFile(path.join(r.root, 'volumes', 'tight', 'volume.json'), 'utf8')).spec.sizeBytes).toBe(64 * MiB);
    expect(await r.mounts.isMounted(r.mountpoint('tight'))).toBe(false);
    const ok = await r.driver.operations.resize('tight', '96M');
    expect(ok).toMatchObject({ mode: 'offline', oldSizeBytes: 64 * MiB, newSizeBytes: 96 * MiB });
    expect((await fs.stat(path.join(r.root, 'volumes', 'tight', 'data.img'))).size).toBe(96 * MiB);
  });

  it('with allowOvercommit the growth is not checked', async () => {
    const r = await rig('resize-overcommit', { allowOvercommit: true });
    await r.driver.create('loose', { size: '64M' });
    r.backend.freeBytes = async () => 1 * MiB;
    expect(await r.driver.operations.resize('loose', '1G')).toMatchObject({ newSizeBytes: 1024 * MiB });
  });
});

maybe('resize over real loop devices and ext4', () => {
  let w: World;
  beforeAll(async () => {
    w = await makeWorld('resize');
  });
  afterAll(async () => {
    await w?.cleanup();
  });

  it('grows a mounted ext4 volume online where netvol may (CAP_SYS_RESOURCE), else refuses naming what to do and changes nothing; either way its files stay', async () => {
    await w.driver.create('online', { size: '64M' });
    let mp = await w.driver.mount('online', 'C1');
    await fs.writeFile(path.join(mp, 'keep'), 'kept across the resize');
    const before = await fsUsage(mp);
    expect(before.sizeBytes).toBeLessThan(64 * MiB);

    if (await canGrowMountedExt4()) {
      const done = await w.driver.operations.resize('online', '128M');
      expect(done).toMatchObject({ name: 'online', backend: 'local', fs: 'ext4', mode: 'online', oldSizeBytes: 64 * MiB, newSizeBytes: 128 * MiB });
    } else {
      const refused = await refusal(w.driver.operations.resize('online', '128M'));
      expect(refused.code).toBe('PERMISSION');
      expect(refused.message).toBe(
        'cannot resize volume online: the kernel grows a mounted ext4 filesystem only for a process with CAP_SYS_RESOURCE, which this netvol process lacks; nothing was changed: stop the containers using it and run netvolctl resize again (with no host using it, it grows offline, which needs no capability), or run netvol with CAP_SYS_RESOURCE',
      );
      expect((await fs.stat(imageOf(w, 'online'))).size).toBe(64 * MiB);
      expect((await metaOf(w, 'online')).spec.sizeBytes).toBe(64 * MiB);
      expect(await fs.readFile(path.join(mp, 'keep'), 'utf8')).toBe('kept across the resize');
      // As the error says: with no container using it, it grows offline.
      await w.driver.unmount('online', 'C1');
      expect(await w.driver.operations.resize('online', '128M')).toMatchObject({ mode: 'offline', oldSizeBytes: 64 * MiB, newSizeBytes: 128 * MiB });
      mp = await w.driver.mount('online', 'C1');
    }
    const after = await fsUsage(mp);
    expect(after.sizeBytes).toBeGreaterThan(before.sizeBytes + 60 * MiB);
    expect(await fs.readFile(path.join(mp, 'keep'), 'utf8')).toBe('kept across the resize');
    expect((await fs.stat(imageOf(w, 'online'))).size).toBe(128 * MiB);
    expect(await metaOf(w, 'online')).toMatchObject({ spec: { sizeBytes: 128 * MiB }, createdSizeBytes: 64 * MiB, resizedBy: 'unit-host' });
    expect((await w.driver.get('online')).status).toMatchObject({ sizeBytes: 128 * MiB, mountCount: 1 });
    expect(await mountsAt(mp)).toBe(1);
    expect(await loopsOf(imageOf(w, 'online'))).toHaveLength(1);
    expect(w.store.data.volumes.online.mounts).toEqual({ C1: 1 });
  });

  it('grows a mounted xfs volume online (xfs_growfs needs no more than mounting does): the filesystem takes the new size at once', async () => {
    await w.driver.create('xfsvol', { size: '320M', fs: 'xfs' });
    const mp = await w.driver.mount('xfsvol', 'X1');
    await fs.writeFile(path.join(mp, 'keep'), 'xfs data');
    const before = await fsUsage(mp);
    const done = await w.driver.operations.resize('xfsvol', '400M');
    expect(done).toMatchObject({ fs: 'xfs', mode: 'online', oldSizeBytes: 320 * MiB, newSizeBytes: 400 * MiB });
    const after = await fsUsage(mp);
    expect(after.sizeBytes - before.sizeBytes).toBeGreaterThan(75 * MiB);
    expect(done.filesystemBytes).toBe(after.sizeBytes);
    expect(await fs.readFile(path.join(mp, 'keep'), 'utf8')).toBe('xfs data');
    expect(await mountsAt(mp)).toBe(1);
    await w.driver.unmount('xfsvol', 'X1');
  });

  it('a re-sent Create with the original options succeeds; one with another size is refused naming the option', async () => {
    await expect(w.driver.create('online', { size: '64M' })).resolves.toBeUndefined();
    await expect(w.driver.create('online', { size: '128M' })).resolves.toBeUndefined();
    const other = await refusal(w.driver.create('online', { size: '96M' }));
    expect(other.code).toBe('OPTIONS_CONFLICT');
    expect(other.message).toBe('volume online already exists with different options (size): use the same options, or remove the volume first; it was resized from 64.0 MiB to 128.0 MiB, and a Create with either size matches (netvolctl resize grows it)');
  });

  it('refuses to shrink, and refuses directory volumes, naming the volume and changing nothing', async () => {
    const shrink = await refusal(w.driver.operations.resize('online', '64M'));
    expect(shrink.code).toBe('INVALID_OPTION');
    expect(shrink.message).toBe('volume online is 128.0 MiB, more than the 64.0 MiB asked: resize only grows a volume (an image cannot shrink under its filesystem); give a size above 128.0 MiB, or copy the data into a new, smaller volume');
    await w.driver.create('folder', {});
    const dir = await refusal(w.driver.operations.resize('folder', '1G'));
    expect(dir.code).toBe('INVALID_OPTION');
    expect(dir.message).toMatch(/^volume folder is a directory volume \(created without size\): it has no quota to grow/);
    const missing = await refusal(w.driver.operations.resize('nosuch', '1G'));
    expect(missing.code).toBe('NOT_FOUND');
    expect(missing.message).toContain('volume nosuch not found');
    expect((await fs.stat(imageOf(w, 'online'))).size).toBe(128 * MiB);
  });

  it('the same size again is answered "unchanged" and touches nothing', async () => {
    expect(await w.driver.operations.resize('online', '128M')).toMatchObject({ mode: 'unchanged', oldSizeBytes: 128 * MiB, newSizeBytes: 128 * MiB });
  });

  it('resizes a volume no host has mounted offline, and leaves nothing mounted or counted', async () => {
    await w.driver.create('offline', { size: '64M' });
    const done = await w.driver.operations.resize('offline', '96M');
    expect(done).toMatchObject({ mode: 'offline', oldSizeBytes: 64 * MiB, newSizeBytes: 96 * MiB });
    expect(await mountsAt(w.mountpoint('offline'))).toBe(0);
    expect(await loopsOf(imageOf(w, 'offline'))).toEqual([]);
    expect(w.store.data.volumes.offline?.mounts ?? {}).toEqual({});
    const mp = await w.driver.mount('offline', 'C2');
    expect((await fsUsage(mp)).sizeBytes).toBeGreaterThan(85 * MiB);
    await w.driver.unmount('offline', 'C2');
  });

  it('a grow cut short after the image file grew (a kill -9) leaves the volume usable; a re-run finishes it, and a smaller size is refused naming the one that does', async () => {
    await w.driver.create('cut', { size: '64M' });
    let mp = await w.driver.mount('cut', 'C3');
    await fs.writeFile(path.join(mp, 'before'), 'written before');
    await w.driver.unmount('cut', 'C3');
    // The state a kill -9 right after the first step leaves: the file is larger, nothing else changed.
    await run('truncate', ['-s', String(160 * MiB), imageOf(w, 'cut')]);
    mp = await w.driver.mount('cut', 'C3');
    await fs.writeFile(path.join(mp, 'still'), 'writable');
    expect((await w.driver.get('cut')).status.sizeBytes).toBe(64 * MiB);
    await w.driver.unmount('cut', 'C3');

    const smaller = await refusal(w.driver.operations.resize('cut', '128M'));
    expect(smaller.code).toBe('INVALID_OPTION');
    expect(smaller.message).toBe('volume cut: its image is already 160.0 MiB (an earlier resize to that size was cut short before it was recorded): run netvolctl resize cut 160M to finish it');

    const done = await w.driver.operations.resize('cut', '160M');
    expect(done).toMatchObject({ mode: 'offline', oldSizeBytes: 64 * MiB, newSizeBytes: 160 * MiB });
    mp = await w.driver.mount('cut', 'C3');
    expect((await fsUsage(mp)).sizeBytes).toBeGreaterThan(145 * MiB);
    expect(await fs.readFile(path.join(mp, 'before'), 'utf8')).toBe('written before');
    expect(await fs.readFile(path.join(mp, 'still'), 'utf8')).toBe('writable');
    await w.driver.unmount('cut', 'C3');
  });

  it('an offline ext4 grow leaves the root as it was: no lost+found appears', async () => {
    const mp = await w.driver.mount('cut', 'C5');
    expect((await fs.readdir(mp)).sort()).toEqual(['before', 'still']);
    await w.driver.unmount('cut', 'C5');
  });

  it('a daemon restarted afterwards shows the new size in Status, and mounts the grown filesystem', async () => {
    await w.driver.unmount('online', 'C1');
    const { driver } = await w.restart();
    await driver.restore();
    expect((await driver.get('online')).status).toMatchObject({ sizeBytes: 128 * MiB });
    const mp = await driver.mount('online', 'C4');
    expect((await fsUsage(mp)).sizeBytes).toBeGreaterThan(120 * MiB);
    expect(await fs.readFile(path.join(mp, 'keep'), 'utf8')).toBe('kept across the resize');
    await driver.unmount('online', 'C4');
    expect((await readMountTable()).filter((m) => m.mountPoint.startsWith(`${w.root}/`))).toEqual([]);
  });
});

maybe('resize on a backend shared by several hosts (real loop devices)', () => {
  let hw: HostsWorld;
  afterAll(async () => {
    await hw?.cleanup();
  });

  it('refuses on a host that does not have the volume while another host holds its lease, naming that host and saying to run it there; that host resizes it', async () => {
    hw = await makeHosts('resize', ['host-a', 'host-b'], 5);
    const [a, b] = hw.hosts;
    await a.driver.create('sharedimg', { size: '64M', fs: 'ext4' });
    await a.driver.mount('sharedimg', 'CA');
    const refused = await refusal(b.driver.operations.resize('sharedimg', '128M'));
    expect(refused.code).toBe('LEASE_HELD');
    expect(refused.message).toBe('volume sharedimg is attached on host host-a: only the host that has an image volume mounted can grow it; run netvolctl resize there (or stop its containers there, then run it here)');
    expect((await fs.stat(path.join(hw.shared, 'sharedimg', 'data.img'))).size).toBe(64 * MiB);
    expect(await mountsAt(b.mountpoint('sharedimg'))).toBe(0);
    // Offline on host-b once host-a let go; host-a then sees the new size.
    await a.driver.unmount('sharedimg', 'CA');
    expect(await b.driver.operations.resize('sharedimg', '96M')).toMatchObject({ mode: 'offline', newSizeBytes: 96 * MiB });
    expect((await a.driver.get('sharedimg')).status.sizeBytes).toBe(96 * MiB);
  });
});
