import { promises as fs } from 'node:fs';
import path from 'node:path';
import { run } from '../../src/system';
import { loopsOf, makeWorld, refusal, World } from './support/driver-world';

/**
 * One image, one loop device (issue 13, item 2): after the mountpoint of an image volume that a
 * process still uses is lazily unmounted (an admin, a crashed helper), the next Mount must reuse the
 * loop device that still serves that process, never attach a second one to the same image — two
 * ext4 instances over one image corrupt it.
 */
let w: World;
beforeAll(async () => {
  w = await makeWorld('image-once');
});
afterAll(async () => {
  await w.cleanup();
});

it('a Mount after a lazy unmount of a still-used image reuses its loop device: one filesystem, the same files', async () => {
  await w.driver.create('q64', { size: '32M' });
  const mp = await w.driver.mount('q64', 'ctr1');
  const image = path.join(w.volumesDir, 'q64', 'data.img');
  // A "container" keeps a file open in the volume.
  const held = await fs.open(path.join(mp, 'held.txt'), 'w');
  await held.write('from the first mount\n');
  await run('umount', ['-l', mp]);
  expect(await loopsOf(image)).toHaveLength(1);

  const again = await w.driver.mount('q64', 'ctr2');
  expect(await loopsOf(image)).toHaveLength(1);
  await held.write('still the same filesystem\n');
  await held.sync();
  expect(await fs.readFile(path.join(again, 'held.txt'), 'utf8')).toBe('from the first mount\nstill the same filesystem\n');
  await held.close();
  await w.driver.unmount('q64', 'ctr2');
  await w.driver.unmount('q64', 'ctr1');
  expect(await loopsOf(image)).toHaveLength(0);
});

it('a loop device left on an older copy of the image (another inode at that path) is refused, naming the device, instead of attaching a second one', async () => {
  await w.driver.create('q65', { size: '32M' });
  const image = path.join(w.volumesDir, 'q65', 'data.img');
  const { stdout } = await run('losetup', ['--find', '--show', image]);
  const stale = stdout.trim();
  try {
    // The image is replaced by a copy: the stale loop device now serves an inode that is no longer at that path.
    await fs.copyFile(image, `${image}.copy`);
    await fs.rename(`${image}.copy`, image);
    const r = await refusal(w.driver.mount('q65', 'ctr'));
    expect(r.message).toContain('volume q65');
    expect(r.message).toContain(stale);
    expect(await loopsOf(image)).toEqual([]); // no device was attached to the image now at that path
  } finally {
    await run('losetup', ['-d', stale]);
  }
  await w.driver.mount('q65', 'ctr');
  expect(await loopsOf(image)).toHaveLength(1);
  await w.driver.unmount('q65', 'ctr');
});
