/** The daemon over the plugin socket, with an sftp backend on a real sshd. */
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { mountsUnder, waitFor } from '../harness/dockerd';
import type { Netvol } from '../harness/netvol';
import { startSshd, Sshd } from '../harness/sshd';
import { call, ok, startSftpNetvol } from './support/daemon';

jest.setTimeout(120_000);

let sshd: Sshd;
let nv: Netvol;
let remoteRoot: string;
const MiB = 1024 * 1024;

function md5(file: string): string {
  return crypto.createHash('md5').update(fs.readFileSync(file)).digest('hex');
}

function dd(args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync('dd', args, { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stderr: r.stderr };
}

beforeAll(async () => {
  sshd = await startSshd();
  remoteRoot = path.join(sshd.root, 'volumes');
  nv = await startSftpNetvol(sshd, { hostId: 'host-a' });
}, 60_000);

afterAll(async () => {
  await nv?.cleanup();
  await sshd?.cleanup();
}, 60_000);

describe('directory volumes on an sftp backend', () => {
  test('create, mount, write, unmount and remove work, and the data lives on the server', async () => {
    await ok(nv, 'VolumeDriver.Create', { Name: 'dir1', Opts: { backend: 'remote' } });
    expect(JSON.parse(fs.readFileSync(path.join(remoteRoot, 'dir1', 'volume.json'), 'utf8')).spec.layout).toBe('directory');
    const { Mountpoint } = await ok(nv, 'VolumeDriver.Mount', { Name: 'dir1', ID: 'c1' });
    fs.writeFileSync(path.join(Mountpoint, 'hello.txt'), 'from the host');
    expect(fs.readFileSync(path.join(remoteRoot, 'dir1', 'data', 'hello.txt'), 'utf8')).toBe('from the host');
    const got = await ok(nv, 'VolumeDriver.Get', { Name: 'dir1' });
    expect(got.Volume.Status).toMatchObject({ backend: 'remote', layout: 'directory', healthy: true, mounts: ['c1'] });
    await ok(nv, 'VolumeDriver.Unmount', { Name: 'dir1', ID: 'c1' });
    expect(mountsUnder(nv.stateDir).filter((m) => m.mountPoint.endsWith('/dir1'))).toEqual([]);
    await ok(nv, 'VolumeDriver.Remove', { Name: 'dir1' });
    expect(fs.existsSync(path.join(remoteRoot, 'dir1'))).toBe(false);
  });
});

describe('image volumes on an sftp backend', () => {
  test('create makes a sparse image on the server; data written through a mount survives unmount and a new mount', async () => {
    await ok(nv, 'VolumeDriver.Create', { Name: 'img1', Opts: { size: '64M' } });
    const img = path.join(remoteRoot, 'img1', 'data.img');
    expect(fs.statSync(img).size).toBe(64 * MiB);
    expect(fs.statSync(img).blocks * 512).toBeLessThan(32 * MiB);
    const { Mountpoint } = await ok(nv, 'VolumeDriver.Mount', { Name: 'img1', ID: 'c1' });
    expect(mountsUnder(nv.stateDir).find((m) => m.mountPoint === Mountpoint)?.fsType).toBe('ext4');
    fs.writeFileSync(path.join(Mountpoint, 'note'), 'image data');
    await ok(nv, 'VolumeDriver.Unmount', { Name: 'img1', ID: 'c1' });
    expect(mountsUnder(nv.stateDir)).toEqual([]);
    const again = await ok(nv, 'VolumeDriver.Mount', { Name: 'img1', ID: 'c2' });
    expect(fs.readFileSync(path.join(again.Mountpoint, 'note'), 'utf8')).toBe('image data');
    await ok(nv, 'VolumeDriver.Unmount', { Name: 'img1', ID: 'c2' });
    await ok(nv, 'VolumeDriver.Remove', { Name: 'img1' });
    expect(fs.existsSync(path.join(remoteRoot, 'img1'))).toBe(false);
  });

  test('a write past the size fails with ENOSPC and an earlier file keeps its checksum', async () => {
    await ok(nv, 'VolumeDriver.Create', { Name: 'quota1', Opts: { size: '32M' } });
    const { Mountpoint } = await ok(nv, 'VolumeDriver.Mount', { Name: 'quota1', ID: 'q' });
    const keep = path.join(Mountpoint, 'keep');
    expect(dd(['if=/dev/urandom', `of=${keep}`, 'bs=1M', 'count=8', 'conv=fsync']).status).toBe(0);
    const before = md5(keep);
    const big = dd(['if=/dev/zero', `of=${path.join(Mountpoint, 'big')}`, 'bs=1M', 'count=64', 'conv=fsync']);
    expect(big.status).not.toBe(0);
    expect(big.stderr).toMatch(/No space left on device/);
    expect(md5(keep)).toBe(before);
    await ok(nv, 'VolumeDriver.Unmount', { Name: 'quota1', ID: 'q' });
    const again = await ok(nv, 'VolumeDriver.Mount', { Name: 'quota1', ID: 'q2' });
    expect(md5(path.join(again.Mountpoint, 'keep'))).toBe(before);
    expect(fs.statSync(path.join(remoteRoot, 'quota1', 'data.img')).size).toBe(32 * MiB);
    await ok(nv, 'VolumeDriver.Unmount', { Name: 'quota1', ID: 'q2' });
  });

  test('a size larger than the server has free is refused with NO_SPACE wording', async () => {
    const r = await call(nv, 'VolumeDriver.Create', { Name: 'toobig', Opts: { size: '900T' } });
    expect(r.Err).toMatch(/volume toobig: backend remote has .* free, less than the requested size/);
    expect(fs.existsSync(path.join(remoteRoot, 'toobig'))).toBe(false);
  });
});

describe('two daemons sharing one sftp backend', () => {
  let second: Netvol;

  beforeAll(async () => {
    second = await startSftpNetvol(sshd, { hostId: 'host-b' });
  }, 60_000);

  afterAll(async () => {
    await second?.cleanup();
  }, 60_000);

  test('the second daemon lists and gets the volumes the first created', async () => {
    await ok(nv, 'VolumeDriver.Create', { Name: 'shared-img', Opts: { size: '32M' } });
    await ok(nv, 'VolumeDriver.Create', { Name: 'shared-dir', Opts: {} });
    const list = await ok(second, 'VolumeDriver.List', {});
    const names = list.Volumes.map((v: { Name: string }) => v.Name);
    expect(names).toEqual(expect.arrayContaining(['shared-img', 'shared-dir']));
    const got = await ok(second, 'VolumeDriver.Get', { Name: 'shared-img' });
    expect(got.Volume.Status).toMatchObject({ backend: 'remote', layout: 'image', sizeBytes: 32 * MiB });
  });

  test("the second daemon's Mount of an image volume attached by the first is refused with LEASE_HELD naming the first host", async () => {
    const { Mountpoint } = await ok(nv, 'VolumeDriver.Mount', { Name: 'shared-img', ID: 'a1' });
    fs.writeFileSync(path.join(Mountpoint, 'owner'), 'host-a');
    const r = await call(second, 'VolumeDriver.Mount', { Name: 'shared-img', ID: 'b1' });
    expect(r.Err).toMatch(/volume shared-img is attached on host host-a/);
    expect(mountsUnder(second.stateDir)).toEqual([]);
    await ok(nv, 'VolumeDriver.Unmount', { Name: 'shared-img', ID: 'a1' });
    // Once the first host let go, the second may take it, and sees the first host's data.
    const b = await ok(second, 'VolumeDriver.Mount', { Name: 'shared-img', ID: 'b2' });
    expect(fs.readFileSync(path.join(b.Mountpoint, 'owner'), 'utf8')).toBe('host-a');
    await ok(second, 'VolumeDriver.Unmount', { Name: 'shared-img', ID: 'b2' });
  });

  test('a directory volume is mounted by both daemons at once and each sees what the other wrote', async () => {
    const a = await ok(nv, 'VolumeDriver.Mount', { Name: 'shared-dir', ID: 'a' });
    const b = await ok(second, 'VolumeDriver.Mount', { Name: 'shared-dir', ID: 'b' });
    fs.writeFileSync(path.join(a.Mountpoint, 'from-a'), 'A');
    await waitFor('host b to see the file of host a', () => fs.existsSync(path.join(b.Mountpoint, 'from-a')) || undefined, 30_000, 200);
    expect(fs.readFileSync(path.join(b.Mountpoint, 'from-a'), 'utf8')).toBe('A');
    await ok(nv, 'VolumeDriver.Unmount', { Name: 'shared-dir', ID: 'a' });
    await ok(second, 'VolumeDriver.Unmount', { Name: 'shared-dir', ID: 'b' });
  });
});

describe('sshd dies while volumes are attached', () => {
  test('after sshd is killed and restarted, the next Mount of a directory and of an image volume works, with the data intact', async () => {
    await ok(nv, 'VolumeDriver.Create', { Name: 'crash-dir', Opts: {} });
    await ok(nv, 'VolumeDriver.Create', { Name: 'crash-img', Opts: { size: '32M' } });
    const d = await ok(nv, 'VolumeDriver.Mount', { Name: 'crash-dir', ID: 'x1' });
    const i = await ok(nv, 'VolumeDriver.Mount', { Name: 'crash-img', ID: 'y1' });
    fs.writeFileSync(path.join(d.Mountpoint, 'before'), 'dir data');
    fs.writeFileSync(path.join(i.Mountpoint, 'before'), 'img data');
    spawnSync('sync', ['-f', path.join(i.Mountpoint, 'before')]);
    await sshd.kill();
    // The image's sshfs has no reconnect: its attachment dies, and Get says so.
    await waitFor(
      'Get to report the image volume unhealthy',
      async () => (await ok(nv, 'VolumeDriver.Get', { Name: 'crash-img' })).Volume.Status.healthy === false || undefined,
      30_000,
      500,
    );
    await sshd.restart();
    const d2 = await ok(nv, 'VolumeDriver.Mount', { Name: 'crash-dir', ID: 'x2' });
    const i2 = await ok(nv, 'VolumeDriver.Mount', { Name: 'crash-img', ID: 'y2' });
    expect(fs.readFileSync(path.join(d2.Mountpoint, 'before'), 'utf8')).toBe('dir data');
    expect(fs.readFileSync(path.join(i2.Mountpoint, 'before'), 'utf8')).toBe('img data');
    fs.writeFileSync(path.join(i2.Mountpoint, 'after'), 'written after the restart');
    expect((await ok(nv, 'VolumeDriver.Get', { Name: 'crash-img' })).Volume.Status.healthy).toBe(true);
    expect((await ok(nv, 'VolumeDriver.Get', { Name: 'crash-dir' })).Volume.Status.healthy).toBe(true);
    for (const [name, ids] of [['crash-dir', ['x1', 'x2']], ['crash-img', ['y1', 'y2']]] as const) {
      for (const id of ids) await ok(nv, 'VolumeDriver.Unmount', { Name: name, ID: id });
    }
    expect(mountsUnder(nv.stateDir)).toEqual([]);
  });

  test('a Mount while sshd is down fails with an Err naming the backend within the timeout, and the daemon keeps serving', async () => {
    await ok(nv, 'VolumeDriver.Create', { Name: 'down', Opts: {} });
    await sshd.stop();
    try {
      const started = Date.now();
      const r = await call(nv, 'VolumeDriver.Mount', { Name: 'down', ID: 'z' });
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(r.Err).toMatch(/backend remote/);
      expect(r.Err).toMatch(/connection refused|cannot reach|did not answer/);
    } finally {
      await sshd.restart();
    }
    const m = await ok(nv, 'VolumeDriver.Mount', { Name: 'down', ID: 'z' });
    expect(fs.existsSync(m.Mountpoint)).toBe(true);
    await ok(nv, 'VolumeDriver.Unmount', { Name: 'down', ID: 'z' });
  });
});
