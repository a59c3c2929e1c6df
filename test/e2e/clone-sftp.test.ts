/**
 * Clones on an sftp backend (a real OpenSSH sshd, whose sftp-server has the copy-data extension)
 * and from it to a local backend, through a real dockerd.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Sshd } from '../harness/sshd';
import { cloneJson, isNumberedPrefix, logLines, netvolctl, startWriter } from './support/clone';
import { withSftpWorld } from './support/server-worlds';
import { BUSYBOX_IMAGE, MiB, World, firstWord, md5OnVolume, uniqueName } from './support/world';

jest.setTimeout(180_000);

let sshd: Sshd | undefined;
let w: World | undefined;

withSftpWorld((rig) => ({ server: sshd, world: w } = rig), { localBackend: '/tmp/nv-clone-sftp-' });

async function writeMarker(volume: string): Promise<string> {
  const r = await w!.d.runContainer(['--rm', '-v', `${volume}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'dd if=/dev/urandom of=/data/marker bs=1M count=4 2>/dev/null && sync && md5sum /data/marker']);
  expect(r.code).toBe(0);
  return firstWord(r.stdout);
}

test('an image volume nobody uses is copied on the server (copy-data), point-in-time, and is independent', async () => {
  const src = uniqueName('sftp-src');
  const dst = uniqueName('sftp-dst');
  await w!.d.dockerOk(['volume', 'create', '-d', w!.plugin, '-o', 'size=48M', src]);
  const md5 = await writeMarker(src);
  const result = await cloneJson(w!, [src, dst]);
  expect(result).toMatchObject({ backend: 'remote', layout: 'image', sizeBytes: 48 * MiB, method: 'server copy', pointInTime: true });
  expect(fs.statSync(path.join(sshd!.root, 'volumes', dst, 'data.img')).size).toBe(48 * MiB);
  expect(await md5OnVolume(w!, dst, 'marker')).toBe(md5);
  await w!.d.runContainer(['--rm', '-v', `${dst}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'echo changed > /data/marker']);
  expect(await md5OnVolume(w!, src, 'marker')).toBe(md5);
});

test('an image volume a container writes to: its live files without --consistent (said to be not point-in-time), a frozen server copy with it', async () => {
  const src = uniqueName('sftp-busy');
  await w!.d.dockerOk(['volume', 'create', '-d', w!.plugin, '-o', 'size=48M', src]);
  const md5 = await writeMarker(src);
  const writer = await startWriter(w!, src);
  try {
    await new Promise((r) => setTimeout(r, 1000));
    const live = uniqueName('sftp-live');
    const r = await netvolctl(w!, ['clone', src, live]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/copy\s+files streamed through this host/);
    expect(r.stdout).toMatch(/point in time\s+no/);
    expect(r.stderr).toContain(`note: volume ${src} was in use and backend remote has no constant-time copy`);
    expect(await md5OnVolume(w!, live, 'marker')).toBe(md5);

    const frozen = uniqueName('sftp-frozen');
    const result = await cloneJson(w!, [src, frozen, '--consistent']);
    expect(result).toMatchObject({ method: 'server copy', pointInTime: true });
    expect(await md5OnVolume(w!, frozen, 'marker')).toBe(md5);
    expect(isNumberedPrefix(await logLines(w!, frozen))).toBe(true);
  } finally {
    await w!.d.docker(['rm', '-f', writer]);
  }
});

test('a directory volume on sftp is cloned to the local backend with -o backend (streamed), and a clone too big for its backend is refused before anything is made', async () => {
  const src = uniqueName('sftp-dir');
  const dst = uniqueName('sftp-to-local');
  await w!.d.dockerOk(['volume', 'create', '-d', w!.plugin, src]);
  const made = await w!.d.runContainer(['--rm', '-v', `${src}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'mkdir /data/d && echo hi > /data/d/f && chmod 0640 /data/d/f && ln -s d/f /data/l']);
  expect(made.code).toBe(0);
  await w!.d.dockerOk(['volume', 'create', '-d', w!.plugin, '-o', `from=${src}`, '-o', 'backend=local', dst]);
  const seen = await w!.d.runContainer(['--rm', '-v', `${dst}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'stat -c "%a" /data/d/f; readlink /data/l; cat /data/l']);
  expect(seen.stdout).toBe('640\nd/f\nhi\n');
  expect((await w!.d.dockerOk(['volume', 'inspect', '-f', '{{.Status.backend}}', dst])).trim()).toBe('local');

  // A size the backend has no room for: refused by the space check, before any folder exists.
  const img = uniqueName('sftp-img');
  await w!.d.dockerOk(['volume', 'create', '-d', w!.plugin, '-o', 'size=48M', img]);
  const tooBig = await w!.d.docker(['volume', 'create', '-d', w!.plugin, '-o', `from=${img}`, '-o', 'size=100T', 'sftp-huge']);
  expect(tooBig.code).not.toBe(0);
  expect(tooBig.stderr).toContain('sftp-huge');
  expect(fs.existsSync(path.join(sshd!.root, 'volumes', 'sftp-huge'))).toBe(false);
});
