/**
 * Clones on an nfs backend (a real nfs-ganesha, the userspace mounter), which has no server-side
 * copy: the data is streamed through this host. Through a real dockerd.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { GaneshaServer } from '../harness/ganesha';
import { cloneJson } from './support/clone';
import { withNfsWorld } from './support/server-worlds';
import { BUSYBOX_IMAGE, MiB, World, firstWord, md5OnVolume, uniqueName } from './support/world';

jest.setTimeout(240_000);

let g: GaneshaServer | undefined;
let w: World | undefined;

withNfsWorld((rig) => ({ server: g, world: w } = rig));

test('an image volume nobody uses is streamed as one sparse file (point-in-time), and a directory volume file by file', async () => {
  const img = uniqueName('nfs-img');
  const imgClone = uniqueName('nfs-img-clone');
  await w!.d.dockerOk(['volume', 'create', '-d', w!.plugin, '-o', 'size=32M', img]);
  const r = await w!.d.runContainer(['--rm', '-v', `${img}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'dd if=/dev/urandom of=/data/marker bs=1M count=2 2>/dev/null && sync && md5sum /data/marker'], { timeoutMs: 200_000 });
  expect(r.code).toBe(0);
  const md5 = firstWord(r.stdout);
  expect(await cloneJson(w!, [img, imgClone])).toMatchObject({ backend: 'nas', layout: 'image', sizeBytes: 32 * MiB, method: 'streamed image', pointInTime: true });
  expect(await md5OnVolume(w!, imgClone, 'marker')).toBe(md5);
  expect(fs.statSync(path.join(g!.exportDir, 'docker', imgClone, 'data.img')).size).toBe(32 * MiB);

  const dir = uniqueName('nfs-dir');
  const dirClone = uniqueName('nfs-dir-clone');
  await w!.d.dockerOk(['volume', 'create', '-d', w!.plugin, dir]);
  const made = await w!.d.runContainer(['--rm', '-v', `${dir}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'mkdir /data/d && echo hi > /data/d/f && chmod 0640 /data/d/f && ln -s d/f /data/l'], { timeoutMs: 200_000 });
  expect(made.code).toBe(0);
  await w!.d.dockerOk(['volume', 'create', '-d', w!.plugin, '-o', `from=${dir}`, dirClone]);
  const seen = await w!.d.runContainer(['--rm', '-v', `${dirClone}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'stat -c "%a" /data/d/f; readlink /data/l; cat /data/l'], { timeoutMs: 200_000 });
  expect(seen.stdout).toBe('640\nd/f\nhi\n');
});
