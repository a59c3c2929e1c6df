import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  BUSYBOX_IMAGE, MiB, World, firstWord, hostMountsHolding, inspect, md5File, md5InContainer, md5OnVolume, startWorld,
  status, stopWorld, uniqueName,
} from './support/world';

jest.setTimeout(180_000);

describe('a netvol volume through a real dockerd', () => {
  let w: World;

  beforeAll(async () => {
    w = await startWorld();
  }, 180_000);

  afterAll(async () => {
    await stopWorld(w);
  }, 300_000);

  describe('an image volume made with -o size=64M', () => {
    const name = uniqueName('img');

    test('docker volume create -d netvol -o size=64M succeeds and inspect shows netvol as its driver', async () => {
      const r = await w.d.docker(['volume', 'create', '-d', w.plugin, '-o', 'size=64M', name]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout.trim()).toBe(name);
      const v = await inspect(w, name);
      expect(v.Name).toBe(name);
      expect(v.Driver).toBe(w.plugin);
      expect(v.Options).toEqual({ size: '64M' });
    });

    test('inspect shows backend, layout, size, usage and no mounts in Status', async () => {
      const s = await status(w, name);
      expect(s.backend).toBe('local');
      expect(s.layout).toBe('image');
      expect(s.sizeBytes).toBe(64 * MiB);
      expect(typeof s.usedBytes).toBe('number');
      expect(typeof s.availableBytes).toBe('number');
      expect(s.availableBytes).toBeGreaterThan(0);
      expect(s.usedBytes + s.availableBytes).toBeLessThanOrEqual(64 * MiB);
      expect(s.usage).toMatch(/^\d+\.\d (B|KiB|MiB) of 64\.0 MiB \(\d+%\)$/);
      expect(s.mounts).toEqual([]);
    });

    test('docker volume ls lists it under the netvol driver', async () => {
      const out = await w.d.dockerOk(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}']);
      expect(out.split('\n')).toContain(`${w.plugin} ${name}`);
      const filtered = await w.d.dockerOk(['volume', 'ls', '-q', '--filter', `driver=${w.plugin}`]);
      expect(filtered.split('\n')).toContain(name);
    });

    test('a file one container writes reads back with the same md5 in the next container', async () => {
      const write = await w.d.runContainer([
        '--rm', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sh', '-c',
        'dd if=/dev/urandom of=/data/f12 bs=1M count=12 2>/dev/null && sync && md5sum /data/f12',
      ]);
      expect(write.stderr).toBe('');
      expect(write.code).toBe(0);
      const written = firstWord(write.stdout);
      expect(await md5OnVolume(w, name, 'f12')).toBe(written);
    });

    test('after 12 MiB are written, usage reads like "12.x MiB of 64.0 MiB (N%)" and agrees with usedBytes', async () => {
      const s = await status(w, name);
      expect(s.usedBytes).toBeGreaterThanOrEqual(12 * MiB);
      expect(s.usedBytes).toBeLessThan(64 * MiB);
      const pct = Math.round((s.usedBytes / (64 * MiB)) * 100);
      expect(s.usage).toBe(`${(s.usedBytes / MiB).toFixed(1)} MiB of 64.0 MiB (${pct}%)`);
      expect(s.mounts).toEqual([]);
    });
  });

  test('uid, gid and mode options set the owner and mode of the volume root', async () => {
    const name = uniqueName('owned');
    await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'uid=1000', '-o', 'gid=1000', '-o', 'mode=0750', name]);
    const st = await w.d.runContainer(['--rm', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'stat', '-c', '%u %g %a', '/data']);
    expect(st.code).toBe(0);
    expect(st.stdout.trim()).toBe('1000 1000 750');
    const owner = await w.d.runContainer(['--rm', '--user', '1000:1000', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'touch', '/data/mine']);
    expect(owner.stderr).toBe('');
    expect(owner.code).toBe(0);
    const stranger = await w.d.runContainer(['--rm', '--user', '2000:2000', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'touch', '/data/theirs']);
    expect(stranger.code).not.toBe(0);
    expect(stranger.stderr).toMatch(/Permission denied/);
    const s = await status(w, name);
    expect(s.layout).toBe('directory');
  });

  test('an image folder at the target overrides uid, gid and mode on an empty volume unless the mount says nocopy', async () => {
    // Docker's own copy-up (moby copyExistingContents): it copies the image folder's owner and mode
    // onto an empty volume. busybox:local has /root as 0:0 0755; /data does not exist in it.
    const nocopy = uniqueName('nocopy');
    await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'uid=1000', '-o', 'gid=1000', '-o', 'mode=0750', nocopy]);
    const kept = await w.d.runContainer(['--rm', '-v', `${nocopy}:/root:nocopy`, BUSYBOX_IMAGE, 'stat', '-c', '%u %g %a', '/root']);
    expect(kept.stdout.trim()).toBe('1000 1000 750');
    const copied = uniqueName('copyup');
    await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'uid=1000', '-o', 'gid=1000', '-o', 'mode=0750', copied]);
    const overridden = await w.d.runContainer(['--rm', '-v', `${copied}:/root`, BUSYBOX_IMAGE, 'stat', '-c', '%u %g %a', '/root']);
    expect(overridden.stdout.trim()).toBe('0 0 755');
  });

  test('two running containers share one volume and see each other\'s writes', async () => {
    const name = uniqueName('shared');
    await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'size=32M', name]);
    const a = await w.d.runContainer(['-d', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sleep', '600']);
    expect(a.code).toBe(0);
    const b = await w.d.runContainer(['-d', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sleep', '600']);
    expect(b.code).toBe(0);
    const [ca, cb] = [a.stdout.trim(), b.stdout.trim()];
    try {
      const s = await status(w, name);
      expect(s.mounts).toHaveLength(2);
      await w.d.dockerOk(['exec', ca, 'sh', '-c', 'dd if=/dev/urandom of=/data/from-a bs=64k count=16 2>/dev/null && sync']);
      expect(await md5InContainer(w, cb, '/data/from-a')).toBe(await md5InContainer(w, ca, '/data/from-a'));
      await w.d.dockerOk(['exec', cb, 'sh', '-c', 'echo hello-from-b > /data/from-b']);
      expect(await w.d.dockerOk(['exec', ca, 'cat', '/data/from-b'])).toBe('hello-from-b');
      // One container leaving must not take the volume away from the other.
      await w.d.dockerOk(['rm', '-f', ca]);
      expect((await status(w, name)).mounts).toHaveLength(1);
      expect(await w.d.dockerOk(['exec', cb, 'cat', '/data/from-b'])).toBe('hello-from-b');
    } finally {
      await w.d.docker(['rm', '-f', ca, cb]);
    }
    expect((await status(w, name)).mounts).toEqual([]);
  });

  test('docker cp out of a running container keeps the volume mounted, and stopping the container unmounts it', async () => {
    const name = uniqueName('cp');
    await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'size=32M', name]);
    const c = (await w.d.dockerOk(['run', '--network', 'none', '--pull', 'never', '-d', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sleep', '600']));
    try {
      await w.d.dockerOk(['exec', c, 'sh', '-c', 'dd if=/dev/urandom of=/data/payload bs=64k count=32 2>/dev/null && sync']);
      const inside = await md5InContainer(w, c, '/data/payload');
      const v = await inspect(w, name);
      expect(v.Status.mounts).toHaveLength(1);
      const idBefore = v.Status.mounts[0] as string;
      expect(hostMountsHolding(w, v.Mountpoint).length).toBeGreaterThan(0);

      const out = fs.mkdtempSync('/tmp/nvcp-');
      try {
        const cp = await w.d.docker(['cp', `${c}:/data/payload`, path.join(out, 'payload')]);
        expect(cp.stderr).toBe('');
        expect(cp.code).toBe(0);
        expect(md5File(path.join(out, 'payload'))).toBe(inside);
      } finally {
        fs.rmSync(out, { recursive: true, force: true });
      }

      // dockerd mounted again with the container's own ID, then unmounted once: one mount remains.
      const calls = w.nv.jsonLogs().filter((l) => l.volume === name && (l.op === 'VolumeDriver.Mount' || l.op === 'VolumeDriver.Unmount') && l.message === 'request');
      expect(calls.map((l) => `${String(l.op)} ${String(l.mountId)}`)).toEqual([
        `VolumeDriver.Mount ${idBefore}`,
        `VolumeDriver.Mount ${idBefore}`,
        `VolumeDriver.Unmount ${idBefore}`,
      ]);
      const after = await inspect(w, name);
      expect(after.Status.mounts).toEqual([idBefore]);
      expect(after.Status.mountCount).toBe(1);
      expect(hostMountsHolding(w, after.Mountpoint).length).toBeGreaterThan(0);
      expect(await md5InContainer(w, c, '/data/payload')).toBe(inside);

      await w.d.dockerOk(['stop', '-t', '1', c]);
      const stopped = await inspect(w, name);
      expect(stopped.Status.mounts).toEqual([]);
      expect(hostMountsHolding(w, v.Mountpoint)).toEqual([]);
    } finally {
      await w.d.docker(['rm', '-f', c]);
    }
  });

  test('docker volume rm is refused while a container uses the volume, and succeeds after docker rm', async () => {
    const name = uniqueName('busy');
    await w.d.dockerOk(['volume', 'create', '-d', w.plugin, name]);
    const c = await w.d.dockerOk(['run', '--network', 'none', '--pull', 'never', '-d', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sleep', '600']);
    try {
      await w.d.dockerOk(['exec', c, 'sh', '-c', 'echo still-here > /data/keep']);
      const refused = await w.d.docker(['volume', 'rm', name]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/volume is in use/);
      expect(await w.d.dockerOk(['exec', c, 'cat', '/data/keep'])).toBe('still-here');
      expect(fs.existsSync(path.join(w.nv.localPath, name))).toBe(true);
    } finally {
      await w.d.docker(['rm', '-f', c]);
    }
    const removed = await w.d.docker(['volume', 'rm', name]);
    expect(removed.stderr).toBe('');
    expect(removed.code).toBe(0);
    expect((await w.d.dockerOk(['volume', 'ls', '-q'])).split('\n')).not.toContain(name);
    expect(fs.existsSync(path.join(w.nv.localPath, name))).toBe(false);
  });

  test('a container creates a netvol volume implicitly with --volume-driver (Opts null) as a directory volume', async () => {
    const name = uniqueName('implicit');
    const r = await w.d.runContainer(['--rm', '--volume-driver', w.plugin, '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'echo made > /data/x && cat /data/x']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('made');
    const v = await inspect(w, name);
    expect(v.Driver).toBe(w.plugin);
    expect(v.Status.layout).toBe('directory');
    expect(v.Status.mounts).toEqual([]);
  });

  test('a container names a volume netvol made without naming the driver, and dockerd finds it through Get', async () => {
    const name = uniqueName('bare');
    // Made behind dockerd's back, so dockerd has no record and must ask every driver.
    const created = await w.nv.request('VolumeDriver.Create', { Name: name, Opts: {} });
    expect(created.status).toBe(200);
    expect(created.json?.Err ?? '').toBe('');
    const seeded = await w.d.runContainer(['--rm', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'echo found-by-get > /data/hello']);
    expect(seeded.stderr).toBe('');
    expect(seeded.code).toBe(0);
    const v = await inspect(w, name);
    expect(v.Driver).toBe(w.plugin);
    // The file went to netvol's backend, not to a new `local` volume of the same name.
    expect(fs.readFileSync(path.join(w.nv.localPath, name, 'data', 'hello'), 'utf8')).toBe('found-by-get\n');
  });

  test('docker volume inspect of a name netvol does not own says "No such volume"', async () => {
    const name = uniqueName('nobody');
    const r = await w.d.docker(['volume', 'inspect', name]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`No such volume: ${name}`);
    const get = await w.nv.request('VolumeDriver.Get', { Name: name });
    expect(typeof get.json?.Err).toBe('string');
    expect(get.json.Err).not.toBe('');
    expect(get.json.Err).toContain(name);
  });

  test('a built-in local volume of another name is not claimed by netvol', async () => {
    const name = uniqueName('theirs');
    await w.d.dockerOk(['volume', 'create', name]);
    const v = await inspect(w, name);
    expect(v.Driver).toBe('local');
    await w.d.dockerOk(['volume', 'rm', name]);
  });
});
