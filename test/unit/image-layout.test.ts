import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isNetvolError } from '../../src/errors';
import { createImage, mkfsExt4Args, mountImage, unmountImage } from '../../src/quota';
import { readMountTable, run } from '../../src/system';

/**
 * What a new image volume looks like from inside (issue 13, item 5): an empty root (databases
 * refuse a data directory holding lost+found) and as much of `size` usable as the filesystem
 * allows. Needs root (loop devices); every mount and loop device is this file's own, found by
 * its folder and backing files.
 */
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('image-layout tests skipped: loop devices and mounts need root');
const maybe = isRoot ? describe : describe.skip;

describe('mkfsExt4Args()', () => {
  const flags = (size: number) => mkfsExt4Args('/x.img', size).join(' ');
  it('reserves nothing for root, and picks block size, inode ratio and journal by size', () => {
    expect(flags(16 * MiB)).toBe('-q -F -m 0 -b 1024 -i 16384 -J size=1 -E lazy_itable_init=1,lazy_journal_init=1,nodiscard /x.img');
    expect(flags(64 * MiB)).toContain('-m 0 -b 4096 -i 16384 -J size=4 ');
    expect(flags(GiB)).toContain('-m 0 -b 4096 -J size=16 ');
    expect(flags(10 * GiB)).toBe('-q -F -m 0 -b 4096 -E lazy_itable_init=1,lazy_journal_init=1,nodiscard /x.img');
  });
  it('gives the root its owner at mkfs time', () => {
    expect(mkfsExt4Args('/x.img', GiB, { uid: 7, gid: 8 }).join(' ')).toContain('nodiscard,root_owner=7:8 /x.img');
  });
});

maybe('a new image volume', () => {
  let dir: string;
  let n = 0;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'netvol-unit-image-layout-'));
  });
  afterAll(async () => {
    const mine = (await readMountTable()).filter((m) => m.mountPoint.startsWith(`${dir}/`)).reverse();
    for (const m of mine) await run('umount', ['-l', m.mountPoint]).catch(() => undefined);
    for (const entry of await fs.readdir(dir)) {
      if (!entry.endsWith('.img')) continue;
      const { stdout } = await run('losetup', ['-j', path.join(dir, entry)]);
      for (const line of stdout.split('\n').filter(Boolean)) await run('losetup', ['-d', line.split(':')[0]]).catch(() => undefined);
    }
    await fs.rm(dir, { recursive: true, force: true });
  });

  /** Makes an image, mounts it, and returns what a container would see at its root. */
  async function look(sizeBytes: number, fsType: 'ext4' | 'xfs', attrs = {}) {
    n += 1;
    const file = path.join(dir, `v${n}.img`);
    const mp = path.join(dir, `mp${n}`);
    await createImage(file, sizeBytes, fsType, attrs);
    await mountImage(file, mp, fsType);
    try {
      const st = await fs.statfs(mp);
      const root = await fs.stat(mp);
      return { entries: await fs.readdir(mp), availBytes: st.bavail * st.bsize, mode: root.mode & 0o7777, uid: root.uid, gid: root.gid };
    } finally {
      await unmountImage(mp);
    }
  }

  it('ext4: the root is empty (no lost+found), and 64M gives at least 57M usable (it gave 53.4M)', async () => {
    const seen = await look(64 * MiB, 'ext4');
    expect(seen.entries).toEqual([]);
    expect(seen.availBytes).toBeGreaterThanOrEqual(57 * MiB);
  });

  it('ext4: the 16M minimum has an empty root and at least 14M usable (it gave 13.4M)', async () => {
    const seen = await look(16 * MiB, 'ext4');
    expect(seen.entries).toEqual([]);
    expect(seen.availBytes).toBeGreaterThanOrEqual(14 * MiB);
  });

  it('ext4: owner and mode still reach the empty root', async () => {
    const seen = await look(32 * MiB, 'ext4', { uid: 999, gid: 998, mode: 0o750 });
    expect(seen).toMatchObject({ entries: [], uid: 999, gid: 998, mode: 0o750 });
  });

  it('ext4: 1G has an empty root and at least 970M usable (it gave 957.4M)', async () => {
    const seen = await look(GiB, 'ext4');
    expect(seen.entries).toEqual([]);
    expect(seen.availBytes).toBeGreaterThanOrEqual(970 * MiB);
  });

  it('xfs: 300M (its minimum) has an empty root', async () => {
    const seen = await look(300 * MiB, 'xfs', { uid: 5, gid: 6 });
    expect(seen).toMatchObject({ entries: [], uid: 5, gid: 6 });
    expect(seen.availBytes).toBeGreaterThanOrEqual(200 * MiB);
  });

  it('an image that holds no filesystem fails to mount with mount\'s own first line, and its loop device is released', async () => {
    const file = path.join(dir, 'garbage.img');
    await fs.writeFile(file, Buffer.alloc(0));
    await fs.truncate(file, 32 * MiB);
    const err = await mountImage(file, path.join(dir, 'mp-garbage'), 'ext4').then(() => undefined, (e: unknown) => e);
    expect(isNetvolError(err, 'COMMAND_FAILED')).toBe(true);
    expect((err as Error).message).toMatch(/^cannot mount image garbage\.img: mount failed: mount: .*(wrong fs type|bad superblock)[^;\n]*$/);
    const { stdout } = await run('losetup', ['-j', file]);
    expect(stdout.trim()).toBe('');
  });

  it('xfs under its minimum fails with mkfs.xfs\'s own first line, not its usage text, and leaves no file behind', async () => {
    const file = path.join(dir, 'small.img');
    const err = await createImage(file, 64 * MiB, 'xfs').then(() => undefined, (e: unknown) => e);
    expect(isNetvolError(err, 'COMMAND_FAILED')).toBe(true);
    expect((err as Error).message).toBe('cannot format image small.img as xfs: mkfs.xfs failed: Filesystem must be larger than 300MB.');
    await expect(fs.stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
