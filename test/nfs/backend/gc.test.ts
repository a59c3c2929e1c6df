/**
 * netvolctl gc end to end on an nfs backend: a real dockerd, the daemon over a real nfs-ganesha with
 * the userspace mounter (one FUSE server per attached volume), and what crashes leave: the mounts,
 * userspace NFS servers and loop device of a directory and an image volume mounted by a daemon
 * killed with kill -9 whose ledger lost their records, trash, an archive from long ago, a retained
 * volume, the heartbeat file of a host long gone and the removal marker it left (beside a live
 * host's marker and this host's own). A dry run lists exactly those and changes nothing; --apply
 * removes exactly those, while volumes in use by running containers keep working with their data.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { GcReport } from '../../../src/driver';
import { run } from '../../../src/system';
import { mountsUnder } from '../../harness/dockerd';
import { GaneshaServer, startGanesha } from '../../harness/ganesha';
import { forgetRecords, gcJson, gcNames, gcSummary, leaveTrash, loopsOf } from '../../e2e/support/gc';
import { netvolctl } from '../../e2e/support/netvolctl';
import { BUSYBOX_IMAGE, md5InContainer, startWorld, stopWorld, uniqueName, World } from '../../e2e/support/world';
import { BackendUnderTest, makeBackend } from './support/backend';

jest.setTimeout(300_000);

const LEASE = 5;
let g: GaneshaServer;
let w: World;
let socket: string;
let volumes: string;
/** The same folder of the server, reached over NFS: what the test leaves there goes through ganesha, which does not see changes made behind its back on its disk at once. */
let server: BackendUnderTest;
const { keepDir, keepImg, lostDir, lostImg, retained, freshArchive, markedLive, oldArchive, trash, ghost, peer } = gcNames('nfsgc');
let peerBeat: NodeJS.Timeout | undefined;
const containers: Record<string, string> = {};
const md5s: Record<string, string> = {};

const exists = (p: string) => fs.existsSync(p);
const mountRoot = () => path.join(w.nv.stateDir, 'mounts');
const workDir = () => path.join(w.nv.stateDir, 'backends', 'nas');
const hostFile = (host: string) => path.join(volumes, '.netvol-hosts', `${host}.json`);
const markerOf = (volume: string) => path.join(volumes, volume, 'removing.json');

/** Pids of userspace NFS servers (netvol's FUSE helper) serving `mountpoint`. */
function fuseServersOf(mountpoint: string): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
      const i = argv.indexOf('--mountpoint');
      if (i > 0 && argv[i + 1] === mountpoint && argv.some((a) => a.endsWith(path.join('fuse-nfs', 'main.js')))) out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}


/** Everything of this run a dry run must leave as it was. */
async function snapshot(): Promise<string> {
  const mounts = mountsUnder(w.nv.root).map((m) => `${m.source} ${m.mountPoint}`).sort();
  const loops = (await run('losetup', ['-l', '-n', '-O', 'NAME,BACK-FILE'])).stdout.split('\n').filter((l) => l.includes(w.nv.root)).sort();
  const helpers = [lostDir, lostImg].map((v) => fuseServersOf(path.join(workDir(), v)).length);
  const list = (d: string) => (exists(d) ? fs.readdirSync(d).sort() : []);
  const markers = [keepDir, markedLive, lostDir].filter((v) => exists(markerOf(v)));
  return JSON.stringify({ mounts, loops, helpers, volumes: list(volumes), hosts: list(path.join(volumes, '.netvol-hosts')).filter((n) => !n.endsWith('.tmp')) /* the live host's beat passes through a temporary name */, markers, mountRoot: list(mountRoot()) });
}


const gc = (args: string[]): Promise<GcReport> => gcJson(socket, args);


beforeAll(async () => {
  g = await startGanesha();
  volumes = path.join(g.exportDir, 'docker');
  w = await startWorld({
    backends: { nas: { type: 'nfs', server: g.host, export: g.exportPath, port: g.nfsPort, mountPort: g.mountPort, path: 'docker', mounter: 'userspace', leaseSeconds: LEASE } },
  });
  socket = path.join(w.nv.stateDir, 'admin.sock');

  // In use by running containers: they must survive gc with their data.
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, keepDir]);
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'size=32M', keepImg]);
  for (const v of [keepDir, keepImg]) {
    containers[v] = await w.d.dockerOk(['run', '-d', '--network', 'none', '--pull', 'never', '-v', `${v}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'dd if=/dev/urandom of=/data/payload bs=64k count=16 2>/dev/null; sync; touch /data/ready; sleep 900']);
  }
  for (const v of [keepDir, keepImg]) {
    for (let i = 0; i < 150 && (await w.d.docker(['exec', containers[v], 'ls', '/data/ready'])).code !== 0; i += 1) await new Promise((r) => setTimeout(r, 200));
    md5s[v] = await md5InContainer(w, containers[v], '/data/payload');
  }

  // Mounted through the plugin socket as dockerd would; the daemon is killed with kill -9 below.
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, lostDir]);
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'size=32M', lostImg]);
  for (const v of [lostDir, lostImg]) expect((await w.nv.request('VolumeDriver.Mount', { Name: v, ID: 'crashed-container' })).json.Err).toBe('');

  // Retained and archived volumes, made as users make them; a volume for a live host's marker.
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'onRemove=retain', retained]);
  await w.d.dockerOk(['volume', 'rm', retained]);
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'onRemove=archive', freshArchive]);
  await w.d.dockerOk(['volume', 'rm', freshArchive]);
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, markedLive]);
}, 300_000);

afterAll(async () => {
  clearInterval(peerBeat);
  await server?.cleanup();
  await stopWorld(w);
  await g?.stop();
}, 300_000);

test('after a plain kill -9 and restart the restore keeps what containers hold: gc finds nothing on this host', async () => {
  await w.nv.kill9();
  await w.nv.restart();
  const r = await gc(['--host-age', '0s']);
  expect(r.items.filter((i) => ['mountpoint', 'attachment', 'loop'].includes(i.kind))).toEqual([]);
});

describe('what crashes left', () => {
  beforeAll(async () => {
    // kill -9 again, and the ledger loses the records of the two crashed mounts: their mounts, FUSE servers and loop device stay.
    await w.nv.kill9();
    forgetRecords(w.nv.stateDir, [lostDir, lostImg]);
    await w.nv.restart();
    expect((await netvolctl(['ls', '--socket', socket, '--fast'])).code).toBe(0); // opens the backend (and sweeps its trash)
    // On the server, over NFS: trash whose deletion a crash cut short, an archive from 2020, the
    // heartbeat of a host gone long ago and the removal marker it left on a volume in use; a live
    // host's marker (its heartbeat beats twice a second) and this host's own, which gc must keep.
    server = makeBackend(g, { path: 'docker' });
    const nfs = server.backend;
    await nfs.open();
    const json = (v: unknown) => Buffer.from(`${JSON.stringify(v)}\n`);
    await leaveTrash(
      async () => {
        await nfs.makeFolder(trash, true);
        await nfs.writeFile(trash, 'f', Buffer.from('x'));
      },
      async () => ((await nfs.listTrash?.()) ?? []).includes(trash),
    );
    await nfs.makeFolder(oldArchive, true);
    await nfs.writeFile(oldArchive, 'volume.json', json({ version: 1, name: oldArchive.split('.')[0], createdAt: '2019-12-01T00:00:00.000Z', createdBy: 'old-host', spec: { layout: 'directory', onRemove: 'archive' } }));
    await nfs.writeFile('.netvol-hosts', `${ghost}.json`, json({ version: 1, host: ghost, incarnation: 'a1b2c3d4e5f6', beat: 41, leaseSeconds: LEASE, volumes: { [lostDir]: 'shared' }, writtenAt: '2026-10-01T00:00:00.000Z' }));
    const mark = (volume: string, host: string) => nfs.writeFile(volume, 'removing.json', json({ host, at: '2026-10-01T00:00:00.000Z' }));
    await mark(keepDir, ghost);
    await mark(markedLive, peer);
    await mark(lostDir, String(w.nv.config.hostId));
    let beat = 0;
    const beatOnce = () => {
      beat += 1;
      return nfs.writeFile('.netvol-hosts', `${peer}.json`, json({ version: 1, host: peer, incarnation: 'f00dfeedbeef', beat, leaseSeconds: LEASE, volumes: {}, writtenAt: new Date().toISOString() }));
    };
    await beatOnce();
    peerBeat = setInterval(() => void beatOnce().catch(() => undefined), 500);
    for (const v of [lostDir, lostImg]) expect(fuseServersOf(path.join(workDir(), v)).length).toBeGreaterThan(0);
    expect(await loopsOf(path.join(workDir(), lostImg, 'data.img'))).toHaveLength(1);
  });

  const expected = () =>
    [
      `trash nas - ${trash}`,
      `archive nas ${oldArchive.split('.')[0]} ${oldArchive}`,
      `retained nas ${retained} ${retained}`,
      `host nas - .netvol-hosts/${ghost}.json`,
      `removal nas ${keepDir} ${keepDir}/removing.json`,
      `mountpoint - ${lostDir} ${path.join(mountRoot(), lostDir)}`,
      `mountpoint - ${lostImg} ${path.join(mountRoot(), lostImg)}`,
      `attachment nas ${lostDir} ${path.join(workDir(), lostDir)}`,
      `attachment nas ${lostImg} ${path.join(workDir(), lostImg)}`,
      `loop nas ${lostImg} LOOP`,
    ].sort();

  test('a dry run lists exactly the leftovers and changes nothing', async () => {
    const before = await snapshot();
    const r = await gc(['--older-than', '30d', '--retained', '--host-age', '0s']);
    expect(r.applied).toBe(false);
    expect(r.items.filter((i) => i.state !== 'found')).toEqual([]);
    expect(gcSummary(r.items)).toEqual(expected());
    for (const v of [lostDir, lostImg]) expect(r.items.find((i) => i.kind === 'attachment' && i.volume === v)?.reason).toMatch(/userspace NFS server process \d+/);
    expect(r.items.find((i) => i.kind === 'removal')?.reason).toContain(`host ${ghost}`);
    expect(await snapshot()).toBe(before);
  });

  test('with a long --host-age neither the ghost host nor its marker is listed', async () => {
    const r = await gc(['--host-age', '1h']);
    expect(r.items.filter((i) => ['archive', 'retained', 'host', 'removal'].includes(i.kind))).toEqual([]);
  });

  test('--apply removes exactly those; the volumes in use keep working with their data, the live markers stay, and the lost volumes can be mounted again', async () => {
    const r = await gc(['--apply', '--older-than', '30d', '--retained', '--host-age', '0s']);
    expect(r.applied).toBe(true);
    expect(r.items.filter((i) => i.state !== 'removed')).toEqual([]);
    expect(gcSummary(r.items)).toEqual(expected());

    for (const p of [trash, oldArchive, retained]) expect(exists(path.join(volumes, p))).toBe(false);
    expect(exists(hostFile(ghost))).toBe(false);
    expect(exists(markerOf(keepDir))).toBe(false);
    expect(exists(hostFile(String(w.nv.config.hostId)))).toBe(true);
    expect(exists(hostFile(peer))).toBe(true);
    expect(exists(markerOf(markedLive))).toBe(true);
    expect(exists(markerOf(lostDir))).toBe(true);
    expect(fs.readdirSync(volumes).some((f) => f.startsWith(`${freshArchive}.archive-`))).toBe(true);
    for (const v of [lostDir, lostImg]) expect(fuseServersOf(path.join(workDir(), v))).toEqual([]);
    expect(await loopsOf(path.join(workDir(), lostImg, 'data.img'))).toEqual([]);
    expect(mountsUnder(w.nv.root).map((m) => m.mountPoint).filter((m) => m.includes('nfsgc-lost'))).toEqual([]);

    for (const v of [keepDir, keepImg]) {
      expect(await md5InContainer(w, containers[v], '/data/payload')).toBe(md5s[v]);
      const write = await w.d.docker(['exec', containers[v], 'sh', '-c', 'echo after-gc > /data/after && cat /data/after']);
      expect(write.stdout.trim()).toBe('after-gc');
    }
    // Nothing left to collect; the lost volumes are still volumes and mount again.
    expect((await gc(['--older-than', '30d', '--retained', '--host-age', '0s'])).items).toEqual([]);
    for (const v of [lostDir, lostImg]) {
      const again = await w.d.runContainer(['--rm', '-v', `${v}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'echo again > /data/x && cat /data/x']);
      expect(again.stdout.trim()).toBe('again');
    }
  });
});
