/** netvolctl resize of sftp image volumes: data.img lives on the sshd, reached through sshfs. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Sshd } from '../harness/sshd';
import { dfTotal, MiB, netvolctl, startWriter, stopWriter, waitWriter } from '../e2e/support/resize';
import { withSftpWorld } from '../e2e/support/server-worlds';
import { BUSYBOX_IMAGE, firstWord, md5OnVolume, status, uniqueName, World } from '../e2e/support/world';

jest.setTimeout(180_000);

let sshd: Sshd;
let w: World;

withSftpWorld((rig) => ({ server: sshd, world: w } = rig));

const imageOnServer = (name: string): string => path.join(sshd.root, 'volumes', name, 'data.img');

test('an sftp xfs volume grows while a container writes into it: the image on the server grows, and the writes stop with ENOSPC at the new size only', async () => {
  const name = uniqueName('sftp-rs-xfs');
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'size=320M', '-o', 'fs=xfs', name]);
  const c = await startWriter(w, name);
  try {
    const oldTotal = await dfTotal(w, c);
    await waitWriter(w, c, 'the writer to have written 32 MiB', (s) => s.ok >= 32);
    const r = await netvolctl(w, ['resize', name, '400M']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(`${name}: 320.0 MiB → 400.0 MiB (online, while mounted on this host`);
    expect(fs.statSync(imageOnServer(name)).size).toBe(400 * MiB);
    const full = await waitWriter(w, c, 'the writer to fill the grown volume', (s) => s.failed > 0, 120_000);
    expect(full.firstFailAt).toBe(full.ok);
    expect(full.firstError).toMatch(/No space left on device/);
    expect(full.ok * MiB).toBeGreaterThan(oldTotal + 32 * MiB);
    expect(full.ok * MiB).toBeLessThanOrEqual(400 * MiB);
    expect((await status(w, name)).sizeBytes).toBe(400 * MiB);
  } finally {
    await stopWriter(w, c);
  }
});

test('an sftp ext4 volume no host has mounted grows offline, keeps its data, and its new size is recorded on the server', async () => {
  const name = uniqueName('sftp-rs-ext4');
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'size=48M', name]);
  const keep = await w.d.runContainer(['--rm', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'dd if=/dev/urandom of=/data/keep bs=1M count=4 2>/dev/null && sync && md5sum /data/keep']);
  expect(keep.code).toBe(0);
  const r = await netvolctl(w, ['resize', name, '96M']);
  expect(r.stderr).toBe('');
  expect(r.stdout).toContain(`${name}: 48.0 MiB → 96.0 MiB (offline`);
  expect(fs.statSync(imageOnServer(name)).size).toBe(96 * MiB);
  const meta = JSON.parse(fs.readFileSync(path.join(sshd.root, 'volumes', name, 'volume.json'), 'utf8'));
  expect(meta).toMatchObject({ spec: { sizeBytes: 96 * MiB }, createdSizeBytes: 48 * MiB });
  expect(await md5OnVolume(w, name, 'keep')).toBe(firstWord(keep.stdout));
  const df = await w.d.runContainer(['--rm', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'df', '-k', '/data']);
  expect(Number(df.stdout.split('\n')[1].trim().split(/\s+/)[1]) * 1024).toBeGreaterThan(85 * MiB);
});
