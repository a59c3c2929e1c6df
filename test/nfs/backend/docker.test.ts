/**
 * nfs volumes through a real dockerd and the real daemon over a real nfs-ganesha: containers write
 * and read back, the image quota holds, and a ganesha restart while a container writes costs a
 * delay, not data.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { withNfsWorld } from '../../e2e/support/server-worlds';
import { BUSYBOX_IMAGE, World, firstWord, status, uniqueName } from '../../e2e/support/world';
import type { GaneshaServer } from '../../harness/ganesha';

jest.setTimeout(240_000);

let g: GaneshaServer;
let w: World;
const onServer = (...p: string[]) => path.join(g.exportDir, 'docker', ...p);

withNfsWorld((rig) => ({ server: g, world: w } = rig));

async function run(volume: string, script: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return w.d.runContainer(['--rm', '-v', `${volume}:/data`, BUSYBOX_IMAGE, 'sh', '-c', script], { timeoutMs: 200_000 });
}

test('a file one container writes on an nfs directory volume reads back with the same md5 in the next container, and lies on the export', async () => {
  const name = uniqueName('nfsdir');
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, name]);
  const write = await run(name, 'dd if=/dev/urandom of=/data/f bs=1M count=12 2>/dev/null && md5sum /data/f');
  expect(write.code).toBe(0);
  const read = await run(name, 'md5sum /data/f');
  expect(read.code).toBe(0);
  expect(firstWord(read.stdout)).toBe(firstWord(write.stdout));
  expect(fs.statSync(onServer(name, 'data', 'f')).size).toBe(12 * 1024 * 1024);
  const s = await status(w, name);
  expect(s).toMatchObject({ backend: 'nas', layout: 'directory', mounts: [] });
  await w.d.dockerOk(['volume', 'rm', name]);
  expect(fs.existsSync(onServer(name))).toBe(false);
});

test('a write past -o size=32M fails inside the container with No space left on device, and the earlier file keeps its md5', async () => {
  const name = uniqueName('nfsimg');
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', 'size=32M', name]);
  const first = await run(name, 'dd if=/dev/urandom of=/data/early bs=1M count=6 2>/dev/null && sync && md5sum /data/early');
  expect(first.code).toBe(0);
  const over = await run(name, 'dd if=/dev/zero of=/data/filler bs=1M count=64 conv=fsync');
  expect(over.code).not.toBe(0);
  expect(over.stderr).toMatch(/No space left on device|Disk quota exceeded/);
  const again = await run(name, 'md5sum /data/early');
  expect(firstWord(again.stdout)).toBe(firstWord(first.stdout));
  expect(fs.statSync(onServer(name, 'data.img')).size).toBe(32 * 1024 * 1024);
  await w.d.dockerOk(['volume', 'rm', name]);
});

test('ganesha restarted while a container writes: the container finishes without an error and the next one reads the same md5', async () => {
  const name = uniqueName('nfsrestart');
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, name]);
  const writer = run(name, 'dd if=/dev/urandom of=/data/big bs=1M count=128 conv=fsync 2>/dev/null && md5sum /data/big');
  const target = onServer(name, 'data', 'big');
  const deadline = Date.now() + 120_000;
  while ((fs.statSync(target, { throwIfNoEntry: false })?.size ?? 0) < 16 * 1024 * 1024) {
    if (Date.now() > deadline) throw new Error('the container did not start writing');
    await new Promise((r) => setTimeout(r, 50));
  }
  await g.restart();
  const wrote = await writer;
  expect(wrote.stderr).toBe('');
  expect(wrote.code).toBe(0);
  const read = await run(name, 'md5sum /data/big');
  expect(firstWord(read.stdout)).toBe(firstWord(wrote.stdout));
  await w.d.dockerOk(['volume', 'rm', name]);
});
