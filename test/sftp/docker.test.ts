/** sftp volumes used by containers of a real dockerd (Debian docker.io 20.10). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { waitFor } from '../harness/dockerd';
import type { Sshd } from '../harness/sshd';
import { withSftpWorld } from '../e2e/support/server-worlds';
import { BUSYBOX_IMAGE, firstWord, md5OnVolume, uniqueName, World } from '../e2e/support/world';

jest.setTimeout(180_000);

let sshd: Sshd;
let w: World;

withSftpWorld((rig) => ({ server: sshd, world: w } = rig));

test('a container writes to an sftp directory volume and a second container reads it back', async () => {
  const name = uniqueName('sftp-dir');
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, name]);
  const write = await w.d.runContainer(['--rm', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'echo "hello from a container" > /data/msg']);
  expect(write.code).toBe(0);
  expect(fs.readFileSync(path.join(sshd.root, 'volumes', name, 'data', 'msg'), 'utf8')).toBe('hello from a container\n');
  const read = await w.d.runContainer(['--rm', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'cat', '/data/msg']);
  expect(read.code).toBe(0);
  expect(read.stdout).toBe('hello from a container\n');
  const inspect = JSON.parse(await w.d.dockerOk(['volume', 'inspect', name]))[0];
  expect(inspect.Status).toMatchObject({ backend: 'remote', layout: 'directory' });
  await w.d.dockerOk(['volume', 'rm', name]);
  expect(fs.existsSync(path.join(sshd.root, 'volumes', name))).toBe(false);
});

test('symlinks in an sftp directory volume read back as on a local disk: relative with "..", absolute, dangling', async () => {
  // sshfs 3.7.3 as Debian ships it refuses (EPERM) to read links that are absolute or contain "..",
  // unless told otherwise: a container could not read back links it made (npm's .bin, /etc-style links).
  const name = uniqueName('sftp-links');
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, name]);
  const make = await w.d.runContainer(['--rm', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'set -e; cd /data; mkdir sub; echo target > a.txt; ln -s ../a.txt sub/up; ln -s /data/a.txt abs; ln -s /nowhere dangling']);
  expect(make.code).toBe(0);
  const read = await w.d.runContainer(['--rm', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'set -e; cd /data; for l in sub/up abs dangling; do readlink $l; done; cat sub/up abs']);
  expect({ code: read.code, stderr: read.stderr }).toEqual({ code: 0, stderr: '' });
  expect(read.stdout).toBe('../a.txt\n/data/a.txt\n/nowhere\ntarget\ntarget\n');
  await w.d.dockerOk(['volume', 'rm', name]);
});

test('inside a container, a write past an sftp image volume\'s size fails with "No space left on device" while an earlier file keeps its checksum', async () => {
  const name = uniqueName('sftp-quota');
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'size=48M', name]);
  const first = await w.d.runContainer(['--rm', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'dd if=/dev/urandom of=/data/keep bs=1M count=8 2>/dev/null && sync && md5sum /data/keep']);
  expect(first.code).toBe(0);
  const keepMd5 = firstWord(first.stdout);
  const big = await w.d.runContainer(['--rm', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'dd if=/dev/zero of=/data/big bs=1M count=100 && sync']);
  expect(big.code).not.toBe(0);
  expect(big.stderr).toMatch(/No space left on device/);
  expect(await md5OnVolume(w, name, 'keep')).toBe(keepMd5);
  expect(fs.statSync(path.join(sshd.root, 'volumes', name, 'data.img')).size).toBe(48 * 1024 * 1024);
  await w.d.dockerOk(['volume', 'rm', name]);
});

test('after sshd is killed and restarted under a running container, the next container on the same volumes works', async () => {
  const dir = uniqueName('sftp-crash-dir');
  const img = uniqueName('sftp-crash-img');
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, dir]);
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'size=32M', img]);
  const holder = await w.d.dockerOk(['run', '--network', 'none', '--pull', 'never', '-d', '-v', `${dir}:/d`, '-v', `${img}:/i`, BUSYBOX_IMAGE, 'sh', '-c', 'echo dir-data > /d/f && echo img-data > /i/f && sync && sleep 600']);
  try {
    await waitFor(
      'the running container to have written and synced both files',
      async () => (await w.d.docker(['exec', holder, 'sh', '-c', 'cat /d/f /i/f'])).stdout === 'dir-data\nimg-data\n' || undefined,
      30_000,
      200,
    );
    await w.d.dockerOk(['exec', holder, 'sync']);
    await sshd.kill();
    await sshd.restart();
    const next = await w.d.runContainer(['--rm', '-v', `${dir}:/d`, '-v', `${img}:/i`, BUSYBOX_IMAGE, 'sh', '-c', 'cat /d/f /i/f && echo more > /d/g']);
    expect(next.stderr).toBe('');
    expect(next.code).toBe(0);
    expect(next.stdout).toBe('dir-data\nimg-data\n');
    // The directory volume's sshfs reconnected: the container that ran through the restart still works.
    const old = await w.d.docker(['exec', holder, 'cat', '/d/g']);
    expect(old.stdout).toBe('more\n');
  } finally {
    await w.d.docker(['rm', '-f', holder]);
  }
  await w.d.dockerOk(['volume', 'rm', dir, img]);
});
