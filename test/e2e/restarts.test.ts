import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { BUSYBOX_IMAGE, World, hostMountsHolding, inspect, md5InContainer, md5OnVolume, startWorld, status, stopWorld, uniqueName } from './support/world';

jest.setTimeout(180_000);

function loopDevicesBackedBy(file: string): string[] {
  const r = spawnSync('losetup', ['-j', file], { encoding: 'utf8' });
  return (r.stdout ?? '').split('\n').filter(Boolean);
}

describe('volumes and their data survive a kill -9 of netvol and a dockerd restart', () => {
  let w: World;

  beforeAll(async () => {
    w = await startWorld();
  }, 180_000);

  afterAll(async () => {
    await stopWorld(w);
  }, 300_000);

  describe('kill -9 of netvol while a container holds an image volume', () => {
    const name = uniqueName('crash');
    let c = '';
    let md5 = '';
    let mountpoint = '';

    beforeAll(async () => {
      await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'size=64M', name]);
      c = await w.d.dockerOk(['run', '--network', 'none', '--pull', 'never', '-d', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sleep', '600']);
      await w.d.dockerOk(['exec', c, 'sh', '-c', 'dd if=/dev/urandom of=/data/before bs=1M count=4 2>/dev/null && sync']);
      md5 = await md5InContainer(w, c, '/data/before');
      const v = await inspect(w, name);
      mountpoint = v.Mountpoint;
      expect(v.Status.mounts).toHaveLength(1);
    }, 120_000);

    test('the container keeps reading and writing its volume while netvol is dead', async () => {
      await w.nv.kill9();
      expect(w.nv.pid).toBeUndefined();
      expect(await md5InContainer(w, c, '/data/before')).toBe(md5);
      await w.d.dockerOk(['exec', c, 'sh', '-c', 'echo written-while-dead > /data/during && sync']);
    });

    test('after a restart netvol still counts the container\'s mount and the data is intact', async () => {
      await w.nv.restart();
      const v = await inspect(w, name);
      expect(v.Status.mounts).toHaveLength(1);
      expect(v.Mountpoint).toBe(mountpoint);
      expect(hostMountsHolding(w, mountpoint).length).toBeGreaterThan(0);
      expect(await md5InContainer(w, c, '/data/before')).toBe(md5);
      expect(await w.d.dockerOk(['exec', c, 'cat', '/data/during'])).toBe('written-while-dead');
    });

    test('docker stop, docker rm and docker volume rm then work and leave no mount or loop device', async () => {
      const stop = await w.d.docker(['stop', '-t', '1', c]);
      expect(stop.code).toBe(0);
      expect((await status(w, name)).mounts).toEqual([]);
      expect(hostMountsHolding(w, mountpoint)).toEqual([]);
      expect(await md5OnVolume(w, name, 'before')).toBe(md5);
      expect((await w.d.docker(['rm', c])).code).toBe(0);
      const rm = await w.d.docker(['volume', 'rm', name]);
      expect(rm.stderr).toBe('');
      expect(rm.code).toBe(0);
      expect(fs.existsSync(path.join(w.nv.localPath, name))).toBe(false);
      expect(loopDevicesBackedBy(path.join(w.nv.localPath, name, 'data.img'))).toEqual([]);
    });
  });

  test('kill -9 with no container running loses no volume', async () => {
    const name = uniqueName('idle');
    await w.d.dockerOk(['volume', 'create', '-d', w.plugin, name]);
    await w.d.dockerOk(['run', '--network', 'none', '--pull', 'never', '--rm', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'echo idle > /data/f']);
    await w.nv.kill9();
    await w.nv.restart();
    const r = await w.d.runContainer(['--rm', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'cat', '/data/f']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('idle');
    expect((await status(w, name)).mounts).toEqual([]);
  });

  test('a dockerd restart keeps netvol volumes and their data', async () => {
    const dir = uniqueName('dr-dir');
    const img = uniqueName('dr-img');
    await w.d.dockerOk(['volume', 'create', '-d', w.plugin, dir]);
    await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'size=32M', img]);
    for (const v of [dir, img]) {
      await w.d.dockerOk(['run', '--network', 'none', '--pull', 'never', '--rm', '-v', `${v}:/data`, BUSYBOX_IMAGE, 'sh', '-c', `echo ${v} > /data/name`]);
    }
    await w.d.restart();
    const ls = (await w.d.dockerOk(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}'])).split('\n');
    expect(ls).toContain(`${w.plugin} ${dir}`);
    expect(ls).toContain(`${w.plugin} ${img}`);
    for (const v of [dir, img]) {
      const r = await w.d.runContainer(['--rm', '-v', `${v}:/data`, BUSYBOX_IMAGE, 'cat', '/data/name']);
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toBe(v);
    }
    expect((await status(w, img)).layout).toBe('image');
  });

  test('a container running through a dockerd restart leaves the volume unmounted once dockerd stops it', async () => {
    const name = uniqueName('dr-run');
    await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'size=32M', name]);
    await w.d.dockerOk(['run', '--network', 'none', '--pull', 'never', '-d', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sleep', '600']);
    const mp = (await inspect(w, name)).Mountpoint;
    expect(hostMountsHolding(w, mp).length).toBeGreaterThan(0);
    await w.d.restart();
    expect((await status(w, name)).mounts).toEqual([]);
    expect(hostMountsHolding(w, mp)).toEqual([]);
  });
});
