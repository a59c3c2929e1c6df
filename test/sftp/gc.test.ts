/**
 * netvolctl gc end to end: a real dockerd, the daemon with a local and an sftp backend (a real
 * sshd, sshfs helpers), and what crashes leave: the mounts, sshfs helper and loop device of volumes
 * mounted by a daemon killed with kill -9 whose ledger lost their records, trash, an archive from
 * long ago, a retained volume, the heartbeat file of a host long gone and the removal marker it left
 * on a volume (beside the markers of a live host and of this one). A dry run lists exactly
 * those and changes nothing; --apply removes exactly those, while volumes in use by running
 * containers keep working with their data intact.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { GcReport } from '../../src/driver';
import { run } from '../../src/system';
import { mountsUnder } from '../harness/dockerd';
import type { Sshd } from '../harness/sshd';
import { forgetRecords, gcJson, gcNames, gcSummary, leaveTrash, loopsOf } from '../e2e/support/gc';
import { netvolctl } from '../e2e/support/netvolctl';
import { withSftpWorld } from '../e2e/support/server-worlds';
import { sshfsPidsFor } from './support/sshfs';
import { BUSYBOX_IMAGE, md5InContainer, uniqueName, World } from '../e2e/support/world';

jest.setTimeout(300_000);

let sshd: Sshd;
let w: World;
let localDir: string;
let remoteDir: string;
let socket: string;
const { keepDir, keepImg, lostDir: lostSftp, lostImg, retained, freshArchive, oldArchive, trash, ghost, peer, markedLive } = gcNames('gc');
let peerBeat: NodeJS.Timeout | undefined;
const containers: Record<string, string> = {};
const md5s: Record<string, string> = {};

const exists = (p: string) => fs.existsSync(p);
const mountRoot = () => path.join(w.nv.stateDir, 'mounts');
const workDir = (backend: string) => path.join(w.nv.stateDir, 'backends', backend);


/** Everything of this run a dry run must leave as it was. */
async function snapshot(): Promise<string> {
  const mounts = [...mountsUnder(w.nv.root).map((m) => `${m.source} ${m.mountPoint}`)].sort();
  const loops = (await run('losetup', ['-l', '-n', '-O', 'NAME,BACK-FILE'])).stdout.split('\n').filter((l) => l.includes(w.nv.root) || l.includes(localDir)).sort();
  const helpers = sshfsPidsFor(path.join(workDir('remote'), lostSftp));
  const list = (d: string) => (exists(d) ? fs.readdirSync(d).sort() : []);
  const markers = [keepDir, markedLive, lostSftp].filter((v) => exists(path.join(remoteDir, v, 'removing.json')));
  return JSON.stringify({ mounts, loops, helpers, local: list(localDir), remote: list(remoteDir), hosts: list(path.join(remoteDir, '.netvol-hosts')), markers, mountRoot: list(mountRoot()) });
}


const gc = (args: string[]): Promise<GcReport> => gcJson(socket, args);


withSftpWorld(
  (rig) => {
    ({ server: sshd, world: w } = rig);
    localDir = rig.localDir!;
  },
  { hostKey: 'knownHosts', backend: { leaseSeconds: 5 }, localBackend: '/tmp/nv-gc-local-', defaultBackend: 'local' },
);

beforeAll(async () => {
  remoteDir = path.join(sshd.root, 'volumes');
  socket = path.join(w.nv.stateDir, 'admin.sock');

  // In use by running containers: they must survive gc with their data.
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'backend=remote', keepDir]);
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'size=32M', keepImg]);
  for (const v of [keepDir, keepImg]) {
    containers[v] = await w.d.dockerOk(['run', '-d', '--network', 'none', '--pull', 'never', '-v', `${v}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'dd if=/dev/urandom of=/data/payload bs=64k count=16 2>/dev/null; sync; touch /data/ready; sleep 900']);
  }
  for (const v of [keepDir, keepImg]) {
    for (let i = 0; i < 150 && (await w.d.docker(['exec', containers[v], 'ls', '/data/ready'])).code !== 0; i += 1) await new Promise((r) => setTimeout(r, 200));
    md5s[v] = await md5InContainer(w, containers[v], '/data/payload');
  }

  // Mounted through the plugin socket as dockerd would, then the daemon is killed with kill -9.
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'backend=remote', lostSftp]);
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'size=32M', lostImg]);
  for (const v of [lostSftp, lostImg]) expect((await w.nv.request('VolumeDriver.Mount', { Name: v, ID: 'crashed-container' })).json.Err).toBe('');

  // Retained and archived volumes, made as users make them.
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'onRemove=retain', retained]);
  await w.d.dockerOk(['volume', 'rm', retained]);
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'onRemove=archive', freshArchive]);
  await w.d.dockerOk(['volume', 'rm', freshArchive]);
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'backend=remote', markedLive]);
}, 300_000);

afterAll(() => clearInterval(peerBeat));

test('after a plain kill -9 and restart the restore keeps what containers hold: gc finds nothing on this host', async () => {
  await w.nv.kill9();
  await w.nv.restart();
  const r = await gc(['--host-age', '0s']);
  expect(r.items.filter((i) => ['mountpoint', 'attachment', 'loop'].includes(i.kind))).toEqual([]);
});

describe('what crashes left', () => {
  beforeAll(async () => {
    // kill -9 again, and the ledger loses the records of the two crashed mounts: their mounts, sshfs and loop device stay.
    await w.nv.kill9();
    forgetRecords(w.nv.stateDir, [lostSftp, lostImg]);
    await w.nv.restart();
    expect((await netvolctl(['ls', '--socket', socket, '--fast'])).code).toBe(0); // opens both backends (and sweeps their trash)
    // Trash whose deletion a crash cut short, an archive from 2020, the heartbeat of a host gone long ago.
    await leaveTrash(
      () => {
        fs.mkdirSync(path.join(localDir, trash, 'data'), { recursive: true });
        fs.writeFileSync(path.join(localDir, trash, 'data', 'f'), 'x');
      },
      () => exists(path.join(localDir, trash, 'data', 'f')),
    );
    fs.mkdirSync(path.join(localDir, oldArchive, 'data'), { recursive: true });
    fs.writeFileSync(path.join(localDir, oldArchive, 'volume.json'), JSON.stringify({ version: 1, name: oldArchive.split('.')[0], createdAt: '2019-12-01T00:00:00.000Z', createdBy: 'old-host', spec: { layout: 'directory', onRemove: 'archive' } }));
    fs.writeFileSync(
      path.join(remoteDir, '.netvol-hosts', `${ghost}.json`),
      `${JSON.stringify({ version: 1, host: ghost, incarnation: 'a1b2c3d4e5f6', beat: 41, leaseSeconds: 5, volumes: { [lostSftp]: 'shared' }, writtenAt: '2026-10-01T00:00:00.000Z' })}\n`,
      { mode: 0o600 },
    );
    // Removal markers as Remove writes them (removal.ts): the ghost's, on a volume a container uses; a
    // live host's (its heartbeat beats twice a second) and this host's own, which gc must keep.
    const mark = (volume: string, host: string) => fs.writeFileSync(path.join(remoteDir, volume, 'removing.json'), `${JSON.stringify({ host, at: '2026-10-01T00:00:00.000Z' })}\n`, { mode: 0o600 });
    mark(keepDir, ghost);
    mark(markedLive, peer);
    mark(lostSftp, String(w.nv.config.hostId));
    let beat = 0;
    const beatOnce = () => {
      beat += 1;
      const file = path.join(remoteDir, '.netvol-hosts', `${peer}.json`);
      const tmp = path.join(sshd.root, `.${peer}.tmp`); // outside the folders the snapshot lists
      fs.writeFileSync(tmp, `${JSON.stringify({ version: 1, host: peer, incarnation: 'f00dfeedbeef', beat, leaseSeconds: 5, volumes: {}, writtenAt: new Date().toISOString() })}\n`, { mode: 0o600 });
      fs.renameSync(tmp, file);
    };
    beatOnce();
    peerBeat = setInterval(beatOnce, 500);
    expect(sshfsPidsFor(path.join(workDir('remote'), lostSftp)).length).toBeGreaterThan(0);
    expect(await loopsOf(path.join(localDir, lostImg, 'data.img'))).toHaveLength(1);
  });

  const expected = () =>
    [
      `trash local - ${trash}`,
      `archive local ${oldArchive.split('.')[0]} ${oldArchive}`,
      `retained local ${retained} ${retained}`,
      `host remote - .netvol-hosts/${ghost}.json`,
      `removal remote ${keepDir} ${keepDir}/removing.json`,
      `mountpoint - ${lostSftp} ${path.join(mountRoot(), lostSftp)}`,
      `mountpoint - ${lostImg} ${path.join(mountRoot(), lostImg)}`,
      `attachment remote ${lostSftp} ${path.join(workDir('remote'), lostSftp)}`,
      `loop local ${lostImg} LOOP`,
    ].sort();

  test('a dry run lists exactly the leftovers and changes nothing', async () => {
    const before = await snapshot();
    const r = await gc(['--older-than', '30d', '--retained', '--host-age', '0s']);
    expect(r.applied).toBe(false);
    expect(r.items.every((i) => i.state === 'found')).toBe(true);
    expect(gcSummary(r.items)).toEqual(expected());
    expect(r.items.find((i) => i.kind === 'attachment')?.reason).toMatch(/sshfs process \d+/);
    expect(await snapshot()).toBe(before);

    const table = await netvolctl(['gc', '--socket', socket, '--older-than', '30d', '--retained', '--host-age', '0s']);
    expect(table.code).toBe(0);
    expect(table.stdout.split('\n')[0].split(/\s{2,}/)).toEqual(['KIND', 'BACKEND', 'VOLUME', 'WHAT', 'STATE', 'WHY']);
    expect(table.stdout).toContain('dry run: nothing was changed');
    expect(await snapshot()).toBe(before);
  });

  test('without --older-than and --retained, archives and retained volumes are not listed; with a long --host-age the ghost host is not either', async () => {
    const r = await gc(['--host-age', '1h']);
    expect(r.items.filter((i) => ['archive', 'retained', 'host', 'removal'].includes(i.kind))).toEqual([]);
  });

  test('--apply removes exactly those; the volumes in use keep working with their data, and the lost volumes can be mounted again', async () => {
    const r = await gc(['--apply', '--older-than', '30d', '--retained', '--host-age', '0s']);
    expect(r.applied).toBe(true);
    expect(r.items.filter((i) => i.state !== 'removed')).toEqual([]);
    expect(gcSummary(r.items)).toEqual(expected());

    expect(exists(path.join(localDir, trash))).toBe(false);
    expect(exists(path.join(localDir, oldArchive))).toBe(false);
    expect(exists(path.join(localDir, retained))).toBe(false);
    expect(exists(path.join(remoteDir, '.netvol-hosts', `${ghost}.json`))).toBe(false);
    expect(exists(path.join(remoteDir, '.netvol-hosts', `${w.nv.config.hostId}.json`))).toBe(true);
    expect(exists(path.join(remoteDir, keepDir, 'removing.json'))).toBe(false);
    expect(exists(path.join(remoteDir, markedLive, 'removing.json'))).toBe(true);
    expect(exists(path.join(remoteDir, lostSftp, 'removing.json'))).toBe(true);
    expect(exists(path.join(remoteDir, '.netvol-hosts', `${peer}.json`))).toBe(true);
    expect(fs.readdirSync(localDir).some((f) => f.startsWith(`${freshArchive}.archive-`))).toBe(true);
    expect(sshfsPidsFor(path.join(workDir('remote'), lostSftp))).toEqual([]);
    expect(await loopsOf(path.join(localDir, lostImg, 'data.img'))).toEqual([]);
    expect(mountsUnder(mountRoot()).map((m) => m.mountPoint).filter((m) => m.includes('gc-lost'))).toEqual([]);

    for (const v of [keepDir, keepImg]) {
      expect(await md5InContainer(w, containers[v], '/data/payload')).toBe(md5s[v]);
      const write = await w.d.docker(['exec', containers[v], 'sh', '-c', 'echo after-gc > /data/after && cat /data/after']);
      expect(write.stdout.trim()).toBe('after-gc');
    }
    // Nothing left to collect; the lost volumes are still volumes and mount again.
    expect((await gc(['--older-than', '30d', '--retained', '--host-age', '0s'])).items).toEqual([]);
    for (const v of [lostSftp, lostImg]) {
      const r2 = await w.d.runContainer(['--rm', '-v', `${v}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'echo again > /data/x && cat /data/x']);
      expect(r2.stdout.trim()).toBe('again');
    }
  });
});
