/**
 * The nfs backend's data paths: the userspace mounter (a detached FUSE server per volume) against a
 * real nfs-ganesha, found again after a daemon restart and declared dead when its process is gone;
 * and the kernel mounter's exact command, which these machines cannot run (no NFS in the kernel).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { kernelMountArgs, resolveMounter } from '../../../src/backends/nfs';
import { nfsOptionsSchema } from '../../../src/backends/nfs/options';
import { USERSPACE_MALLOC_TUNABLES, userspaceEnv, userspacePids } from '../../../src/backends/nfs/mounters';
import { GaneshaServer, startGanesha } from '../../harness/ganesha';
import { BackendUnderTest, cleanupWorkDir, makeBackend, nfsOptions, rejection } from './support/backend';

let g: GaneshaServer;
let b: BackendUnderTest;
const onServer = (...p: string[]) => path.join(g.exportDir, 'volumes', ...p);

function mountOf(mp: string): { fsType: string; source: string } | undefined {
  const line = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .reverse()
    .find((l) => l.split(' ')[4] === mp);
  if (!line) return undefined;
  const right = line.split(' - ')[1].split(' ');
  return { fsType: right[0], source: right[1] };
}

beforeAll(async () => {
  g = await startGanesha();
  b = makeBackend(g);
  await b.backend.open();
});

afterAll(async () => {
  await b?.cleanup();
  await g?.stop();
});

describe('the kernel mounter', () => {
  test('builds mount -t nfs with the version, ports and extra options, for the volume folder inside the export', () => {
    const o = nfsOptionsSchema.parse({ server: 'nas.example', export: '/srv/nfs', path: '/netvol/vols', port: 2049, mountPort: 20048, mounter: 'kernel', version: 3, mountOptions: ['hard', 'timeo=600', 'nolock'] });
    expect(kernelMountArgs(o, 'netvol/vols', 'db1', '/var/lib/netvol/mnt/db1')).toEqual([
      '-t',
      'nfs',
      '-o',
      'vers=3,port=2049,mountport=20048,hard,timeo=600,nolock',
      'nas.example:/srv/nfs/netvol/vols/db1',
      '/var/lib/netvol/mnt/db1',
    ]);
  });

  test('builds a version 4 mount without a MOUNT port, and brackets an IPv6 server address', () => {
    const o = nfsOptionsSchema.parse({ server: 'fd00::5', export: '/exports/', mountPort: 20048, mounter: 'kernel', version: 4 });
    expect(kernelMountArgs(o, '', 'v', '/mnt/v')).toEqual(['-t', 'nfs', '-o', 'vers=4', '[fd00::5]:/exports/v', '/mnt/v']);
  });

  test('the options refuse version 4 with the userspace mounter, and mountOptions without the kernel mounter', () => {
    const v4 = nfsOptionsSchema.safeParse({ server: 'h', export: '/e', mounter: 'userspace', version: 4 });
    expect(v4.success).toBe(false);
    expect(JSON.stringify(v4.error?.issues)).toMatch(/userspace mounter speaks NFS version 3 only/);
    const opts = nfsOptionsSchema.safeParse({ server: 'h', export: '/e', mounter: 'userspace', mountOptions: ['hard'] });
    expect(opts.success).toBe(false);
    expect(nfsOptionsSchema.safeParse({ server: 'h', export: '/e', bogus: 1 }).success).toBe(false);
  });
});

describe('mounter: auto', () => {
  test('picks the kernel when /proc/filesystems lists nfs, and userspace when it does not', async () => {
    expect((await resolveMounter('auto', 'nodev\tsysfs\nnodev\tnfs\nnodev\tnfs4\n\text4\n')).mounter).toBe('kernel');
    expect((await resolveMounter('auto', 'nodev\tsysfs\nnodev\tfuse\n\text4\n')).mounter).toBe('userspace');
    expect((await resolveMounter('kernel', '')).mounter).toBe('kernel');
  });

  test('on this host (no NFS in the kernel) attaches through userspace and says so in the log', async () => {
    const auto = makeBackend(g, { mounter: 'auto' });
    try {
      await auto.backend.open();
      await auto.backend.makeFolder('auto-vol', true);
      const mp = await auto.backend.attach('auto-vol');
      expect(mountOf(mp)?.fsType).toBe('fuse.netvol-nfs');
      const line = auto.logs.map((l) => JSON.parse(l)).find((l) => l.mounter && l.why);
      expect(line).toMatchObject({ mounter: 'userspace', backend: 'nas' });
      expect(line.why).toMatch(/no NFS client/);
      await auto.backend.detach('auto-vol');
    } finally {
      await auto.cleanup();
    }
  });
});

describe('the userspace mounter', () => {
  test('its environment adds the malloc settings to netvol\'s own, and keeps a GLIBC_TUNABLES the operator set', () => {
    expect(userspaceEnv({ PATH: '/usr/bin' })).toEqual({ PATH: '/usr/bin', GLIBC_TUNABLES: USERSPACE_MALLOC_TUNABLES });
    expect(userspaceEnv({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }).GLIBC_TUNABLES).toBe('glibc.malloc.arena_max=2');
  });

  test('attach() mounts the volume folder with FUSE; files written there are in the export', async () => {
    await b.backend.makeFolder('v1', true);
    const mp = await b.backend.attach('v1');
    expect(mp).toBe(path.join(b.workDir, 'v1'));
    expect(mountOf(mp)?.fsType).toBe('fuse.netvol-nfs');
    fs.writeFileSync(path.join(mp, 'data', 'hello'), 'through fuse');
    expect(fs.readFileSync(onServer('v1', 'data', 'hello'), 'utf8')).toBe('through fuse');
    expect(await b.backend.health('v1')).toBe('attached');
    expect(await b.backend.attach('v1')).toBe(mp);
    const pids = await userspacePids(mp);
    expect(pids).toHaveLength(1);
    // It runs with the malloc settings that keep WRITE buffers from being faulted in again. (glibc
    // 2.36 cuts the variable after the first tunable in the process's own copy once it has read it.)
    const environ = fs.readFileSync(`/proc/${pids[0]}/environ`, 'utf8').split('\0');
    const first = USERSPACE_MALLOC_TUNABLES.split(':')[0];
    expect(environ.some((e) => e.startsWith(`GLIBC_TUNABLES=${first}`))).toBe(true);
  });

  test('after a daemon restart a new backend finds the running FUSE server and reuses it', async () => {
    const mp = path.join(b.workDir, 'v1');
    const before = await userspacePids(mp);
    const restarted = makeBackend(g, {}, { workDir: b.workDir });
    await restarted.backend.open();
    expect(await restarted.backend.health('v1')).toBe('attached');
    expect(await restarted.backend.attach('v1')).toBe(mp);
    expect(await userspacePids(mp)).toEqual(before);
    expect(fs.readFileSync(path.join(mp, 'data', 'hello'), 'utf8')).toBe('through fuse');
    expect(restarted.logs.join('\n')).toMatch(/found the volume still attached; reusing it/);
    await restarted.backend.close();
  });

  test('health() is dead once the FUSE process is gone, and attach() mounts it again', async () => {
    const mp = path.join(b.workDir, 'v1');
    const [pid] = await userspacePids(mp);
    process.kill(pid, 'SIGKILL');
    while ((await userspacePids(mp)).includes(pid)) await new Promise((r) => setTimeout(r, 20));
    expect(await b.backend.health('v1')).toBe('dead');
    expect(await b.backend.attach('v1')).toBe(mp);
    expect(await b.backend.health('v1')).toBe('attached');
    expect(fs.readFileSync(path.join(mp, 'data', 'hello'), 'utf8')).toBe('through fuse');
    const pids = await userspacePids(mp);
    expect(pids).toHaveLength(1);
    expect(pids[0]).not.toBe(pid);
  });

  test('detach() unmounts, ends the FUSE server after it committed, and succeeds when nothing is attached', async () => {
    const mp = path.join(b.workDir, 'v1');
    const fd = fs.openSync(path.join(mp, 'data', 'last'), 'w');
    fs.writeSync(fd, Buffer.alloc(1024 * 1024, 9));
    fs.closeSync(fd);
    await b.backend.detach('v1');
    expect(mountOf(mp)).toBeUndefined();
    expect(await userspacePids(mp)).toEqual([]);
    expect(fs.statSync(onServer('v1', 'data', 'last')).size).toBe(1024 * 1024);
    expect(await b.backend.health('v1')).toBe('detached');
    await b.backend.detach('v1');
  });

  test('attach() of a volume whose folder is missing fails with NOT_FOUND', async () => {
    const err = await rejection(b.backend.attach('never-created'));
    expect(err.code).toBe('NOT_FOUND');
    expect(err.message).toMatch(/^backend nas: cannot attach volume never-created: its folder volumes\/never-created is missing/);
  });

  test('attach() against a server that is down fails with BACKEND_UNAVAILABLE within the timeout', async () => {
    const down = makeBackend(g, { port: 9, mountPort: 9 }, { timeoutMs: 3000 });
    try {
      const started = Date.now();
      const err = await rejection(down.backend.attach('v1'));
      expect(err.code).toBe('BACKEND_UNAVAILABLE');
      expect(Date.now() - started).toBeLessThan(4500);
    } finally {
      await down.cleanup();
    }
  });

  test('the FUSE server refuses to start on a missing folder with a clear message', async () => {
    // Bypass the backend's own check to see the server's error reach the caller.
    const { startUserspace } = await import('../../../src/backends/nfs/mounters');
    const o = nfsOptions(g);
    const mp = path.join(b.workDir, 'ghost');
    fs.mkdirSync(mp, { recursive: true });
    const log = path.join(b.workDir, 'ghost.log');
    const err = await rejection(
      startUserspace({ backend: 'nas', host: g.host, exportPath: g.exportPath, port: o.port as number, mountPort: o.mountPort as number, uid: 0, gid: 0, timeoutMs: 8000 }, 'volumes/ghost', mp, log, 'ghost'),
    );
    expect(err.code).toBe('NOT_FOUND');
    expect(err.message).toMatch(/cannot open folder volumes\/ghost/);
  });
});

afterAll(() => {
  if (b) cleanupWorkDir(b.workDir);
});
