/**
 * netvolctl backup and restore through a real dockerd and the real daemon on local volumes: the
 * round trip (backup → docker volume rm → restore --create) keeps every owner, mode, link, hole
 * and xattr; a backup taken while a container writes; --consistent thaws the volume afterwards; a
 * cut stream fails; restore refuses a volume that is not empty.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BUSYBOX_IMAGE, World, startWorld, stopWorld, uniqueName } from './support/world';
import { FILL_TREE, FINGERPRINT, ctl, ctlSpawn, hostMountpoint, runIn } from './support/backup';

jest.setTimeout(180_000);

let w: World;
let work: string;

beforeAll(async () => {
  w = await startWorld();
  work = fs.mkdtempSync('/tmp/nvb-');
}, 180_000);

afterAll(async () => {
  await stopWorld(w);
  if (work) fs.rmSync(work, { recursive: true, force: true });
}, 300_000);

/** Runs `fn` with the volume mounted by a sleeping container (so its host mountpoint is there), then removes the container. */
async function whileHeld<T>(volume: string, fn: (mountpoint: string, container: string) => Promise<T>): Promise<T> {
  const c = await w.d.dockerOk(['run', '--network', 'none', '--pull', 'never', '-d', '-v', `${volume}:/data`, BUSYBOX_IMAGE, 'sleep', '600']);
  try {
    return await fn(await hostMountpoint(w, volume), c);
  } finally {
    await w.d.docker(['rm', '-f', c]);
  }
}

const py = (code: string, ...args: string[]) => execFileSync('python3', ['-c', code, ...args], { encoding: 'utf8' }).trim();
const setXattr = (file: string) => py('import os,sys; os.setxattr(sys.argv[1], "user.netvol", b"kept-by-backup")', file);
const getXattr = (file: string) => py('import os,sys; print(os.getxattr(sys.argv[1], "user.netvol").decode())', file);

describe.each([
  ['directory', [] as string[]],
  ['image', ['-o', 'size=96M']],
])('%s volume', (layout, createOpts) => {
  test('backup → docker volume rm → restore --create --verify gives back every owner, mode, link, hole, xattr and byte', async () => {
    const name = uniqueName(`bk-${layout.slice(0, 3)}`);
    await w.d.dockerOk(['volume', 'create', '-d', w.plugin, ...createOpts, name]);
    await runIn(w, name, FILL_TREE);
    await whileHeld(name, async (mp) => setXattr(path.join(mp, 'a.txt')));
    const before = await runIn(w, name, FINGERPRINT);
    expect(before).toContain('hardlinked=yes');
    expect(before).toMatch(/\.\/a\.txt 1234:5678 640 2 6 regular file 1577934245/);

    const file = path.join(work, `${name}.tar.zst`);
    const b = await ctl(w, ['backup', name, '-o', file]);
    expect(b.stderr).toContain('not point in time'); // ext4 under /tmp: no reflinks, so a live read
    expect(b.code).toBe(0);
    // Plain tar reads the archive (after zstd).
    const listing = execFileSync('sh', ['-c', 'zstd -dc "$1" | tar -tv --numeric-owner -f -', 'sh', file], { encoding: 'utf8' });
    expect(listing).toMatch(/-rw-r----- 1234\/5678 .* \.\/(a|sub\/hard)\.txt/);
    expect(listing).toMatch(/\.\/(a|sub\/hard)\.txt link to \.\/(a|sub\/hard)\.txt/);

    await w.d.dockerOk(['volume', 'rm', name]);
    const r = await ctl(w, ['restore', file, name, '--create', ...createOpts, '--verify']);
    expect(r.stderr).toContain('verified');
    expect(r.code).toBe(0);
    expect(await runIn(w, name, FINGERPRINT)).toBe(before);
    expect(Number(/sparseKiB=(\d+)/.exec(before)![1])).toBeLessThan(1024);
    await whileHeld(name, async (mp) => expect(getXattr(path.join(mp, 'a.txt'))).toBe('kept-by-backup'));
    // What the daemon held for the backup and the restore is given back: the volume can go.
    await w.d.dockerOk(['volume', 'rm', name]);
  });
});

test('a backup taken while a container writes reads the live volume, says so, and the writer goes on', async () => {
  const name = uniqueName('bk-busy');
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'size=96M', name]);
  const writer = await w.d.dockerOk(['run', '--network', 'none', '--pull', 'never', '-d', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'i=0; while true; do i=$((i+1)); dd if=/dev/urandom of=/data/f$((i % 20)) bs=64k count=16 2>/dev/null; echo $i > /data/count.new; mv /data/count.new /data/count; done']);
  try {
    await new Promise((r) => setTimeout(r, 1000));
    const file = path.join(work, `${name}.tar`);
    const live = await ctl(w, ['backup', name, '-o', file]);
    expect(live.code).toBe(0);
    expect(live.stderr).toMatch(/not point in time .*--consistent/);
    expect(spawnSync('tar', ['-tf', file]).status).toBe(0);

    const frozen = await ctl(w, ['backup', name, '--consistent', '-o', file]);
    expect(frozen.code).toBe(0);
    expect(frozen.stderr).not.toContain('not point in time');
    expect(spawnSync('tar', ['-tf', file], { encoding: 'utf8' }).stdout).toContain('./count');
    // Thawed: the writer moves on, and a write from another process finishes at once.
    // The writer replaces its counter with a rename, so a read never sees a file it is rewriting.
    const count = async () => Number(await w.d.dockerOk(['exec', writer, 'cat', '/data/count']));
    const c1 = await count();
    await new Promise((r) => setTimeout(r, 1500));
    expect(await count()).toBeGreaterThan(c1);
    const write = await w.d.docker(['exec', writer, 'sh', '-c', 'echo after > /data/after && sync'], { timeoutMs: 20_000 });
    expect(write.code).toBe(0);
  } finally {
    await w.d.docker(['rm', '-f', writer]);
  }
  await w.d.dockerOk(['volume', 'rm', name]);
});

test('restore refuses a volume that is not empty unless --force, and a truncated archive fails it', async () => {
  const name = uniqueName('bk-full');
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, name]);
  await runIn(w, name, 'dd if=/dev/urandom of=/data/big bs=1M count=4 2>/dev/null && echo old > /data/old');
  const file = path.join(work, `${name}.tar`);
  expect((await ctl(w, ['backup', name, '-o', file, '-q'])).code).toBe(0);
  const refused = await ctl(w, ['restore', file, name]);
  expect(refused.code).toBe(1);
  expect(refused.stderr).toMatch(new RegExp(`volume ${name} is not empty .*--force`));
  expect((await ctl(w, ['restore', file, name, '--force', '-q'])).code).toBe(0);

  const cut = path.join(work, `${name}-cut.tar`);
  fs.writeFileSync(cut, fs.readFileSync(file).subarray(0, 1024 * 1024));
  const other = uniqueName('bk-cut');
  const bad = await ctl(w, ['restore', cut, other, '--create', '-q']);
  expect(bad.code).toBe(1);
  expect(bad.stderr).toMatch(/restore failed: tar: .*Unexpected EOF/i);
  expect(bad.stderr).toContain(`docker volume rm ${other}`);
  await w.d.dockerOk(['volume', 'rm', other]);
  await w.d.dockerOk(['volume', 'rm', name]);
});

test('a backup whose tar dies mid-stream fails in netvolctl, and the volume is released', async () => {
  const name = uniqueName('bk-kill');
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, name]);
  await runIn(w, name, 'dd if=/dev/urandom of=/data/big bs=1M count=24 2>/dev/null');
  // netvolctl writes to a pipe nobody reads yet: tar blocks once the buffers fill.
  const child = ctlSpawn(w, ['backup', name]);
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const tarPid = await waitForTarOf(w.nv.pid!);
  process.kill(tarPid, 'SIGKILL');
  child.stdout!.resume();
  expect(await exited).toBe(1);
  expect(stderr).toMatch(/the backup of .* failed: .*the archive written to stdout is incomplete/);
  // The hold is gone: the volume can be removed.
  await w.d.dockerOk(['volume', 'rm', name]);
});

/** The pid of a tar the daemon `daemonPid` runs (its own child: nothing else is touched). */
async function waitForTarOf(daemonPid: number): Promise<number> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    for (const task of fs.readdirSync(`/proc/${daemonPid}/task`)) {
      const children = fs.readFileSync(`/proc/${daemonPid}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
      for (const pid of children) {
        const comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
        if (comm === 'tar') return Number(pid);
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('the daemon started no tar');
}
