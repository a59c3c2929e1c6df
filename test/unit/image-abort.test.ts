/**
 * The request's deadline reaches the image steps (quota/): mkfs is killed and its half-made image
 * removed; a mount cut off after its loop device was attached frees that device again. Needs root
 * (loop devices, mount); works in a private temporary folder.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NetvolError } from '../../src/errors';
import { createImage, mountImage } from '../../src/quota';
import { findMount, isAlive, onCommand } from '../../src/system';
import { loopsOf, refusal } from './support/driver-world';

const asRoot = process.getuid?.() === 0;
if (!asRoot) console.log('image-abort tests skipped: they need root for loop devices and mount');
const maybe = asRoot ? it : it.skip;

let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'netvol-image-abort-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** Aborts `controller` when a helper command `matches` starts or ends; returns the pid seen and the unsubscribe. */
function abortOn(controller: AbortController, phase: 'start' | 'end', matches: (command: string, args: string[]) => boolean) {
  const seen: { pid?: number } = {};
  const off = onCommand((e) => {
    if (e.phase !== phase || !matches(e.command, e.args) || controller.signal.aborted) return;
    seen.pid = e.pid;
    controller.abort(new NetvolError('TIMEOUT', 'volume img: create did not finish within 1 s'));
  });
  return { seen, off };
}

maybe('createImage: mkfs is killed at the abort, the call fails with TIMEOUT and no image file is left', async () => {
  const file = path.join(dir, 'mkfs.img');
  const controller = new AbortController();
  const { seen, off } = abortOn(controller, 'start', (c) => c === 'mkfs.ext4');
  let failed: { code: string; message: string };
  try {
    failed = await refusal(createImage(file, 512 * 1024 * 1024, 'ext4', {}, controller.signal));
  } finally {
    off();
  }
  expect(failed.code).toBe('TIMEOUT');
  expect(failed.message).toMatch(/mkfs\.ext4 \(pid \d+\) was stopped because the request ran out of time/);
  expect(seen.pid).toBeGreaterThan(0);
  expect(isAlive(seen.pid as number)).toBe(false);
  await expect(fs.stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
});

maybe('mountImage: cut off right after losetup attached the image, it frees that loop device and mounts nothing', async () => {
  const file = path.join(dir, 'mount.img');
  const target = path.join(dir, 'mnt');
  await createImage(file, 32 * 1024 * 1024, 'ext4');
  const controller = new AbortController();
  const { off } = abortOn(controller, 'end', (c, args) => c === 'losetup' && args.includes('--find'));
  let failed: { code: string; message: string };
  try {
    failed = await refusal(mountImage(file, target, 'ext4', controller.signal));
  } finally {
    off();
  }
  expect(failed.code).toBe('TIMEOUT');
  expect(await findMount(target)).toBeUndefined();
  expect(await loopsOf(file)).toEqual([]);
  // Nothing is left in the way: the image mounts normally afterwards.
  await mountImage(file, target, 'ext4');
  expect((await findMount(target))?.fsType).toBe('ext4');
  const { unmountImage } = await import('../../src/quota');
  await unmountImage(target);
  expect(await loopsOf(file)).toEqual([]);
});
