/**
 * A point-in-time backup on a local backend whose filesystem has reflinks (an XFS the test makes):
 * the image is frozen only while it is reflinked, the snapshot is archived from a read-only mount
 * and removed afterwards, and the restored volume equals the source.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BUSYBOX_IMAGE, World, startWorld, stopWorld, uniqueName } from './support/world';
import { FILL_TREE, FINGERPRINT, ctl, runIn } from './support/backup';

jest.setTimeout(180_000);

let w: World | undefined;
let work: string;
let backendDir: string;

beforeAll(async () => {
  work = fs.mkdtempSync('/tmp/nvbs-');
  const image = path.join(work, 'xfs.img');
  backendDir = path.join(work, 'backend');
  fs.mkdirSync(backendDir);
  fs.closeSync(fs.openSync(image, 'w'));
  fs.truncateSync(image, 1024 * 1024 * 1024);
  execFileSync('mkfs.xfs', ['-q', '-m', 'reflink=1', image]);
  execFileSync('mount', ['-o', 'loop', image, backendDir]);
  w = await startWorld({ backends: { reflinked: { type: 'local', path: backendDir } } });
}, 180_000);

afterAll(async () => {
  await stopWorld(w);
  if (backendDir && spawnSync('mountpoint', ['-q', backendDir]).status === 0) execFileSync('umount', [backendDir]); // the loop device goes with it (mount -o loop)
  if (work) fs.rmSync(work, { recursive: true, force: true });
}, 300_000);

/** Mounts of snapshots still there (they live in folders named netvol-snapshot-*). */
function snapshotMounts(): string[] {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes('/netvol-snapshot-'));
}

test.each(['ext4', 'xfs'])('an %s image volume written to meanwhile is backed up from a reflinked snapshot, point in time, and leaves nothing behind', async (fsType) => {
  const name = uniqueName(`snap-${fsType}`);
  await w!.d.dockerOk(['volume', 'create', '-d', w!.plugin, '-o', `size=${fsType === 'xfs' ? 320 : 128}M`, '-o', `fs=${fsType}`, name]);
  await runIn(w!, name, FILL_TREE);
  const before = await runIn(w!, name, FINGERPRINT);
  const writer = await w!.d.dockerOk(['run', '--network', 'none', '--pull', 'never', '-d', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'mkdir -p /data/busy; i=0; while true; do i=$((i+1)); echo $i > /data/busy/n; done']);
  const file = path.join(work, `${name}.tar`);
  try {
    const b = await ctl(w!, ['backup', name, '-o', file]);
    expect(b.stderr).not.toContain('not point in time');
    expect(b.code).toBe(0);
    const logs = w!.nv.jsonLogs().filter((l) => l.volume === name && l.message === 'backup started');
    expect(logs.at(-1)).toMatchObject({ method: 'snapshot' });
  } finally {
    await w!.d.docker(['rm', '-f', writer]);
  }
  expect(fs.readdirSync(path.join(backendDir, name)).filter((f) => f.startsWith('data.img.'))).toEqual([]);
  expect(snapshotMounts()).toEqual([]);
  await w!.d.dockerOk(['volume', 'rm', name]);
  const r = await ctl(w!, ['restore', file, name, '--create', '-o', `size=${fsType === 'xfs' ? 320 : 128}M`, '-o', `fs=${fsType}`, '--verify']);
  expect(r.code).toBe(0);
  // The writer's folder came along at one instant; everything else is as it was.
  const after = (await runIn(w!, name, FINGERPRINT)).split('\n').filter((l) => !l.includes('./busy')).join('\n');
  expect(after).toBe(before);
  await w!.d.dockerOk(['volume', 'rm', name]);
});
