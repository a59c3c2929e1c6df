/**
 * The real daemon (`node dist/main.js --config FILE`) with an nfs backend over a real nfs-ganesha,
 * driven through its plugin socket the way dockerd drives it: directory and image volumes through
 * their whole life, the image quota, and a daemon restart that finds the FUSE server still running.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GaneshaServer, nfsOptions, startGanesha } from '../../harness/ganesha';
import { Netvol, startNetvol } from '../../harness/netvol';
import { userspacePids } from '../../../src/backends/nfs/mounters';

let g: GaneshaServer;
let nv: Netvol;
const MiB = 1024 * 1024;
const onServer = (...p: string[]) => path.join(g.exportDir, 'netvol', ...p);
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

beforeAll(async () => {
  g = await startGanesha();
  nv = await startNetvol({
    backends: { nas: { type: 'nfs', ...nfsOptions(g, { path: 'netvol', mounter: 'auto' }) } },
  });
}, 120_000);

afterAll(async () => {
  await nv?.cleanup();
  await g?.stop();
});

async function ok(method: string, body: unknown): Promise<Record<string, unknown>> {
  const r = await nv.request(method, body, { timeoutMs: 90_000 });
  if (r.json?.Err) throw new Error(`${method}: ${r.json.Err}`);
  return r.json;
}

function fsTypeAt(mp: string): string | undefined {
  const line = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .reverse()
    .find((l) => l.split(' ')[4] === mp);
  return line?.split(' - ')[1]?.split(' ')[0];
}

test('a directory volume is created on the export, mounted, written, unmounted and removed', async () => {
  await ok('VolumeDriver.Create', { Name: 'dirvol', Opts: { backend: 'nas' } });
  expect(fs.statSync(onServer('dirvol', 'data')).isDirectory()).toBe(true);
  expect(fs.existsSync(onServer('dirvol', 'volume.json'))).toBe(true);
  const { Mountpoint } = (await ok('VolumeDriver.Mount', { Name: 'dirvol', ID: 'c1' })) as { Mountpoint: string };
  fs.writeFileSync(path.join(Mountpoint, 'hello.txt'), 'from a container');
  expect(fs.readFileSync(onServer('dirvol', 'data', 'hello.txt'), 'utf8')).toBe('from a container');
  const { Volume } = (await ok('VolumeDriver.Get', { Name: 'dirvol' })) as { Volume: { Status: Record<string, unknown> } };
  expect(Volume.Status).toMatchObject({ backend: 'nas', layout: 'directory', mounts: ['c1'], mounter: 'userspace' });
  expect(Volume.Status.usedBytes).toBeGreaterThanOrEqual(16);
  await ok('VolumeDriver.Unmount', { Name: 'dirvol', ID: 'c1' });
  expect(fs.existsSync(Mountpoint) && fsTypeAt(Mountpoint)).toBeFalsy();
  await ok('VolumeDriver.Remove', { Name: 'dirvol' });
  expect(fs.existsSync(onServer('dirvol'))).toBe(false);
  const line = nv.jsonLogs().find((l) => l.mounter === 'userspace' && typeof l.why === 'string');
  expect(line?.why).toMatch(/no NFS client/);
}, 120_000);

test('an image volume keeps its image on the export, loop-mounted over the userspace mount; a write past its size fails with ENOSPC and earlier data stays intact', async () => {
  await ok('VolumeDriver.Create', { Name: 'imgvol', Opts: { backend: 'nas', size: '48M' } });
  expect(fs.statSync(onServer('imgvol', 'data.img')).size).toBe(48 * MiB);
  const { Mountpoint } = (await ok('VolumeDriver.Mount', { Name: 'imgvol', ID: 'c1' })) as { Mountpoint: string };
  expect(fsTypeAt(Mountpoint)).toBe('ext4');
  const early = Buffer.alloc(8 * MiB);
  for (let i = 0; i < early.length; i += 4) early.writeUInt32LE((i * 2654435761) >>> 0, i);
  fs.writeFileSync(path.join(Mountpoint, 'early.bin'), early);
  let failure: NodeJS.ErrnoException | undefined;
  const fd = fs.openSync(path.join(Mountpoint, 'filler.bin'), 'w');
  try {
    const chunk = Buffer.alloc(MiB, 0x77);
    for (let i = 0; i < 100; i++) fs.writeSync(fd, chunk);
    fs.fsyncSync(fd);
  } catch (err) {
    failure = err as NodeJS.ErrnoException;
  } finally {
    fs.closeSync(fd);
  }
  expect(['ENOSPC', 'EDQUOT']).toContain(failure?.code);
  expect(md5(fs.readFileSync(path.join(Mountpoint, 'early.bin')))).toBe(md5(early));
  await ok('VolumeDriver.Unmount', { Name: 'imgvol', ID: 'c1' });
  // Mounted again from the server's copy of the image: the early file survived the round trip.
  const again = (await ok('VolumeDriver.Mount', { Name: 'imgvol', ID: 'c2' })) as { Mountpoint: string };
  expect(md5(fs.readFileSync(path.join(again.Mountpoint, 'early.bin')))).toBe(md5(early));
  await ok('VolumeDriver.Unmount', { Name: 'imgvol', ID: 'c2' });
  await ok('VolumeDriver.Remove', { Name: 'imgvol' });
  expect(fs.existsSync(onServer('imgvol'))).toBe(false);
}, 180_000);

test('after kill -9 of the daemon the restarted one keeps serving the volume through the same FUSE server', async () => {
  await ok('VolumeDriver.Create', { Name: 'survivor', Opts: { backend: 'nas' } });
  const { Mountpoint } = (await ok('VolumeDriver.Mount', { Name: 'survivor', ID: 'c1' })) as { Mountpoint: string };
  fs.writeFileSync(path.join(Mountpoint, 'before'), 'written before the crash');
  const attachments = path.join(nv.stateDir, 'backends', 'nas', 'survivor');
  const pids = await userspacePids(attachments);
  expect(pids).toHaveLength(1);
  await nv.kill9();
  fs.writeFileSync(path.join(Mountpoint, 'while-down'), 'written while netvol was down');
  await nv.restart();
  expect(await userspacePids(attachments)).toEqual(pids);
  const { Volume } = (await ok('VolumeDriver.Get', { Name: 'survivor' })) as { Volume: { Status: Record<string, unknown> } };
  expect(Volume.Status.healthy).toBe(true);
  await ok('VolumeDriver.Unmount', { Name: 'survivor', ID: 'c1' });
  expect(await userspacePids(attachments)).toEqual([]);
  expect(fs.readFileSync(onServer('survivor', 'data', 'while-down'), 'utf8')).toBe('written while netvol was down');
  await ok('VolumeDriver.Remove', { Name: 'survivor' });
}, 180_000);

test('Create on an nfs backend whose server is down fails with an Err naming the backend, in bounded time', async () => {
  const down = await startNetvol({ backends: { far: { type: 'nfs', server: '127.0.0.1', export: '/nowhere', port: 9, mountPort: 9, mounter: 'userspace' } } });
  try {
    const started = Date.now();
    const r = await down.request('VolumeDriver.Create', { Name: 'unreachable', Opts: {} }, { timeoutMs: 90_000 });
    expect(String(r.json?.Err)).toMatch(/backend far/);
    expect(Date.now() - started).toBeLessThan(60_000);
  } finally {
    await down.cleanup();
  }
}, 120_000);
