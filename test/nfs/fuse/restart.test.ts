/**
 * A server restart while an application writes through the userspace data path: the application
 * sees a delay, not an error, and every byte arrives. After a crash (SIGKILL) the server answers
 * with a new write verifier, and the FUSE server sends its uncommitted data again.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GaneshaServer, startGanesha } from '../../harness/ganesha';
import { FuseMount, mountFolder, sh, sleep } from './support/fuse-mount';

let g: GaneshaServer;
let m: FuseMount;
let source: string;
let sourceSum: string;
const SIZE_MB = 192;

beforeAll(async () => {
  g = await startGanesha();
  // Short call deadlines, so an outage of a few seconds outlasts single calls and is retried across them.
  m = await mountFolder(g, 'restart', ['--call-timeout-ms', '1000']);
  source = path.join(g.workDir, 'source.bin');
  await sh('dd', ['if=/dev/urandom', `of=${source}`, 'bs=1M', `count=${SIZE_MB}`, 'status=none']);
  sourceSum = (await sh('sha256sum', [source])).stdout.split(' ')[0];
}, 120_000);

afterAll(async () => {
  await m?.unmount();
  await g?.stop();
});

async function whenServerHas(file: string, bytes: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  while ((fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0) < bytes) {
    if (Date.now() > deadline) throw new Error(`${file} did not reach ${bytes} bytes`);
    await sleep(20);
  }
}

async function writeThrough(outage: () => Promise<void>, name: string): Promise<number> {
  const target = path.join(m.mountpoint, name);
  const started = Date.now();
  const writer = sh('dd', [`if=${source}`, `of=${target}`, 'bs=1M', 'conv=fsync', 'status=none'], { timeoutMs: 300_000 });
  await whenServerHas(path.join(m.serverDir, name), 24 * 1024 * 1024);
  await outage();
  await writer;
  return Date.now() - started;
}

test('ganesha restarted while a writer runs: the writer finishes without an error and the file is intact', async () => {
  await writeThrough(() => g.restart(), 'during-restart.bin');
  expect((await sh('sha256sum', [path.join(m.mountpoint, 'during-restart.bin')])).stdout.split(' ')[0]).toBe(sourceSum);
  expect((await sh('sha256sum', [path.join(m.serverDir, 'during-restart.bin')])).stdout.split(' ')[0]).toBe(sourceSum);
}, 300_000);

test('ganesha killed and started again 2 s later: the writer waits, uncommitted data is sent again, and the file is intact', async () => {
  const took = await writeThrough(async () => {
    await g.crash();
    await sleep(2000);
    await g.startServer();
  }, 'during-crash.bin');
  expect(took).toBeGreaterThan(2000);
  expect((await sh('sha256sum', [path.join(m.serverDir, 'during-crash.bin')])).stdout.split(' ')[0]).toBe(sourceSum);
  const log = m.output.join('\n');
  expect(log).toMatch(/the NFS server does not answer; retrying until it does/);
  expect(log).toMatch(/the NFS server answers again/);
  expect(log).toMatch(/write verifier changed/);
  expect(m.output.filter((l) => /failed/.test(l))).toEqual([]);
}, 300_000);

test('a reader started after the restart reads the whole file', async () => {
  await sh('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches']);
  expect((await sh('sha256sum', [path.join(m.mountpoint, 'during-crash.bin')])).stdout.split(' ')[0]).toBe(sourceSum);
}, 120_000);
