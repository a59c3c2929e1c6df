/**
 * netvolctl resize of nfs image volumes: data.img lives on a real nfs-ganesha export, reached through
 * the userspace NFS mount (FUSE), and grows through it while a container writes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { GaneshaServer } from '../../harness/ganesha';
import { dfTotal, MiB, netvolctl, startWriter, stopWriter, waitWriter } from '../../e2e/support/resize';
import { withNfsWorld } from '../../e2e/support/server-worlds';
import { BUSYBOX_IMAGE, firstWord, md5OnVolume, status, uniqueName, World } from '../../e2e/support/world';

jest.setTimeout(240_000);

let g: GaneshaServer;
let w: World;
const onServer = (...p: string[]) => path.join(g.exportDir, 'docker', ...p);

withNfsWorld((rig) => ({ server: g, world: w } = rig));

test('an nfs xfs volume grows while a container writes into it: the image on the export grows, and the writes stop with ENOSPC at the new size only', async () => {
  const name = uniqueName('nfs-rs-xfs');
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'size=320M', '-o', 'fs=xfs', name]);
  const c = await startWriter(w, name);
  try {
    const oldTotal = await dfTotal(w, c);
    await waitWriter(w, c, 'the writer to have written 32 MiB', (s) => s.ok >= 32);
    const r = await netvolctl(w, ['resize', name, '400M']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(`${name}: 320.0 MiB → 400.0 MiB (online, while mounted on this host`);
    expect(fs.statSync(onServer(name, 'data.img')).size).toBe(400 * MiB);
    const full = await waitWriter(w, c, 'the writer to fill the grown volume', (s) => s.failed > 0, 180_000);
    expect(full.firstFailAt).toBe(full.ok);
    expect(full.firstError).toMatch(/No space left on device/);
    expect(full.ok * MiB).toBeGreaterThan(oldTotal + 32 * MiB);
    expect(full.ok * MiB).toBeLessThanOrEqual(400 * MiB);
    expect((await status(w, name)).sizeBytes).toBe(400 * MiB);
  } finally {
    await stopWriter(w, c);
  }
});

test('an nfs ext4 volume no host has mounted grows offline and keeps its data', async () => {
  const name = uniqueName('nfs-rs-ext4');
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'size=32M', name]);
  const keep = await w.d.runContainer(['--rm', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'sh', '-c', 'dd if=/dev/urandom of=/data/keep bs=1M count=4 2>/dev/null && sync && md5sum /data/keep']);
  expect(keep.code).toBe(0);
  const r = await netvolctl(w, ['resize', name, '64M']);
  expect(r.stderr).toBe('');
  expect(r.stdout).toContain(`${name}: 32.0 MiB → 64.0 MiB (offline`);
  expect(fs.statSync(onServer(name, 'data.img')).size).toBe(64 * MiB);
  expect(await md5OnVolume(w, name, 'keep')).toBe(firstWord(keep.stdout));
  const df = await w.d.runContainer(['--rm', '-v', `${name}:/data`, BUSYBOX_IMAGE, 'df', '-k', '/data']);
  expect(Number(df.stdout.split('\n')[1].trim().split(/\s+/)[1]) * 1024).toBeGreaterThan(56 * MiB);
});
