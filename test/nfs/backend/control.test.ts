/**
 * The nfs backend's control operations against a real nfs-ganesha, through netvol's own NFSv3
 * client and without mounting anything; and its errors for a server that is down, an export that
 * does not exist, a stale handle and a full disk.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NfsClient, mkdirp, rmrf } from '../../../src/nfs';
import { GaneshaServer, startGanesha } from '../../harness/ganesha';
import { BackendUnderTest, makeBackend, rejection } from './support/backend';

let g: GaneshaServer;
let b: BackendUnderTest;
const onServer = (...p: string[]) => path.join(g.exportDir, 'volumes', ...p);

beforeAll(async () => {
  g = await startGanesha();
  b = makeBackend(g);
  await b.backend.open();
});

afterAll(async () => {
  await b?.cleanup();
  await g?.stop();
});

function mountsNow(): string {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8');
}

test('open() creates the volumes folder inside the export and mounts nothing', async () => {
  const before = mountsNow().split('\n').length;
  const fresh = makeBackend(g, { path: 'deep/er/volumes' });
  try {
    await fresh.backend.open();
    expect(fs.statSync(path.join(g.exportDir, 'deep/er/volumes')).isDirectory()).toBe(true);
    expect(mountsNow().split('\n').length).toBe(before);
  } finally {
    await fresh.cleanup();
  }
});

test('makeFolder() creates the folder and its data folder once, and reports an existing one', async () => {
  expect(await b.backend.makeFolder('v1', true)).toBe(true);
  expect(fs.statSync(onServer('v1', 'data')).isDirectory()).toBe(true);
  expect(fs.statSync(onServer('v1')).mode & 0o777).toBe(0o700);
  expect(await b.backend.makeFolder('v1', true)).toBe(false);
  expect(await b.backend.makeFolder('img', false)).toBe(true);
  expect(fs.existsSync(onServer('img', 'data'))).toBe(false);
});

test('listFolders() lists volume folders and hides dot-folders and files', async () => {
  fs.mkdirSync(onServer('.hidden'), { recursive: true });
  fs.writeFileSync(onServer('stray-file'), 'x');
  const names = await b.backend.listFolders();
  expect(names).toEqual(expect.arrayContaining(['v1', 'img']));
  expect(names).not.toContain('.hidden');
  expect(names).not.toContain('stray-file');
});

test('writeFile() replaces a file atomically, readFile() reads it back, and a missing file reads as undefined', async () => {
  await b.backend.writeFile('v1', 'volume.json', Buffer.from('{"a":1}'));
  await b.backend.writeFile('v1', 'volume.json', Buffer.from('{"a":2,"longer":true}'));
  expect((await b.backend.readFile('v1', 'volume.json'))?.toString()).toBe('{"a":2,"longer":true}');
  expect(fs.readFileSync(onServer('v1', 'volume.json'), 'utf8')).toBe('{"a":2,"longer":true}');
  expect(fs.readdirSync(onServer('v1')).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  expect(await b.backend.readFile('v1', 'absent.json')).toBeUndefined();
  expect(await b.backend.readFile('no-such-volume', 'volume.json')).toBeUndefined();
  const big = Buffer.alloc(3 * 1024 * 1024 + 17, 0xab);
  await b.backend.writeFile('v1', 'big.bin', big);
  expect((await b.backend.readFile('v1', 'big.bin'))?.equals(big)).toBe(true);
});

test('removeFile() removes a file and succeeds when it is already gone', async () => {
  await b.backend.writeFile('v1', 'owner.json', Buffer.from('{}'));
  await b.backend.removeFile('v1', 'owner.json');
  expect(fs.existsSync(onServer('v1', 'owner.json'))).toBe(false);
  await b.backend.removeFile('v1', 'owner.json');
});

test('createFile() creates a file with its data once, and returns false without changing it the second time', async () => {
  expect(await b.backend.createFile('v1', 'claim.json', Buffer.from('first'))).toBe(true);
  expect(fs.readFileSync(onServer('v1', 'claim.json'), 'utf8')).toBe('first');
  expect(fs.statSync(onServer('v1', 'claim.json')).mode & 0o777).toBe(0o600);
  expect(await b.backend.createFile('v1', 'claim.json', Buffer.from('second'))).toBe(false);
  expect(fs.readFileSync(onServer('v1', 'claim.json'), 'utf8')).toBe('first');
});

test('createFile() called by ten backends on separate connections at once returns true to exactly one, whose data the file holds', async () => {
  await b.backend.makeFolder('race', false);
  const others = Array.from({ length: 10 }, () => makeBackend(g));
  try {
    await Promise.all(others.map((o) => o.backend.open()));
    const results = await Promise.all(others.map((o, i) => o.backend.createFile('race', 'lease.json', Buffer.from(`host-${i}`))));
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(fs.readFileSync(onServer('race', 'lease.json'), 'utf8')).toBe(`host-${results.indexOf(true)}`);
  } finally {
    for (const o of others) await o.cleanup();
  }
});

test('listFiles() lists the regular files of a folder, without folders or files being written, and [] for a missing folder', async () => {
  await b.backend.makeFolder('listed', true);
  await b.backend.writeFile('listed', 'volume.json', Buffer.from('{}'));
  await b.backend.createFile('listed', 'owner.json', Buffer.from('{}'));
  fs.writeFileSync(onServer('listed', 'volume.json.0123456789ab.tmp'), 'half');
  expect((await b.backend.listFiles('listed')).sort()).toEqual(['owner.json', 'volume.json']);
  expect(await b.backend.listFiles('no-such-folder')).toEqual([]);
});

test('a folder named .netvol-hosts takes files like any other, and listFolders() does not show it', async () => {
  expect(await b.backend.makeFolder('.netvol-hosts', false)).toBe(true);
  await b.backend.writeFile('.netvol-hosts', 'host-a.json', Buffer.from('{"seq":1}'));
  expect(await b.backend.createFile('.netvol-hosts', 'host-b.json', Buffer.from('{"seq":0}'))).toBe(true);
  expect((await b.backend.readFile('.netvol-hosts', 'host-a.json'))?.toString()).toBe('{"seq":1}');
  expect((await b.backend.listFiles('.netvol-hosts')).sort()).toEqual(['host-a.json', 'host-b.json']);
  expect(await b.backend.listFolders()).not.toContain('.netvol-hosts');
});

test('setDataAttributes() sets owner and mode of the data folder', async () => {
  await b.backend.setDataAttributes('v1', { uid: 1000, gid: 1001, mode: 0o750 });
  const st = fs.statSync(onServer('v1', 'data'));
  expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([1000, 1001, 0o750]);
});

test('usage() counts the bytes below a volume and freeBytes() reports the free space of the export', async () => {
  fs.writeFileSync(onServer('v1', 'data', 'f'), Buffer.alloc(2 * 1024 * 1024, 1));
  const u = await b.backend.usage('v1');
  expect(u.usedBytes).toBeGreaterThanOrEqual(2 * 1024 * 1024);
  expect(u.usedBytes).toBeLessThan(8 * 1024 * 1024);
  const free = await b.backend.freeBytes();
  const local = fs.statfsSync(g.exportDir);
  expect(Math.abs(free - local.bavail * local.bsize)).toBeLessThan(256 * 1024 * 1024);
  expect(u.availableBytes).toBeGreaterThan(0);
});

test('renameFolder() renames a volume folder and refuses to replace an existing one', async () => {
  await b.backend.makeFolder('old-name', true);
  await b.backend.renameFolder('old-name', 'new-name');
  expect(fs.existsSync(onServer('new-name', 'data'))).toBe(true);
  expect(fs.existsSync(onServer('old-name'))).toBe(false);
  const err = await rejection(b.backend.renameFolder('new-name', 'v1'));
  expect(err.message).toMatch(/backend nas: cannot rename volume new-name to v1: v1 already exists/);
});

test('removeFolder() removes a volume with its files at once and deletes the rest in the background', async () => {
  await b.backend.makeFolder('doomed', true);
  for (let i = 0; i < 50; i++) fs.writeFileSync(onServer('doomed', 'data', `f${i}`), 'x');
  fs.mkdirSync(onServer('doomed', 'data', 'sub', 'deeper'), { recursive: true });
  await b.backend.removeFolder('doomed');
  expect(await b.backend.listFolders()).not.toContain('doomed');
  const deadline = Date.now() + 20_000;
  while (fs.readdirSync(onServer()).some((n) => n.startsWith('.netvol-trash-')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  expect(fs.readdirSync(onServer()).filter((n) => n.startsWith('.netvol-trash-'))).toEqual([]);
  await b.backend.removeFolder('doomed');
});

test('a stale handle of the volumes folder (folder re-created on the server) is resolved again', async () => {
  const other = makeBackend(g, { path: 'recreated' });
  try {
    await other.backend.open();
    await other.backend.makeFolder('a', true);
    // Re-created through another NFS client, so the server itself drops the old handle.
    const client = await NfsClient.connect({ host: g.host, port: g.nfsPort, mountPort: g.mountPort, exportPath: g.exportPath, uid: 0, gid: 0 });
    try {
      await rmrf(client, 'recreated');
      await mkdirp(client, 'recreated/b');
    } finally {
      await client.close();
    }
    expect(await other.backend.listFolders()).toEqual(['b']);
    expect(other.logs.join('\n')).toMatch(/stale NFS file handle/);
  } finally {
    await other.cleanup();
  }
});

test('an export the server does not have fails with NOT_FOUND naming the backend and the export', async () => {
  const wrong = makeBackend(g, { export: '/no/such/export' });
  try {
    const err = await rejection(wrong.backend.open());
    expect(err.code).toBe('NOT_FOUND');
    expect(err.message).toMatch(/^backend nas: .*the server does not export \/no\/such\/export/);
  } finally {
    await wrong.cleanup();
  }
});

test('a server that is not running fails with BACKEND_UNAVAILABLE within the timeout', async () => {
  const down = makeBackend(g, { port: 9, mountPort: 9 }, { timeoutMs: 3000 });
  try {
    const started = Date.now();
    const err = await rejection(down.backend.listFolders());
    expect(err.code).toBe('BACKEND_UNAVAILABLE');
    expect(err.message).toMatch(/^backend nas: /);
    expect(Date.now() - started).toBeLessThan(4500);
  } finally {
    await down.cleanup();
  }
});

test('a server that stops answering mid-way fails the call within the timeout, and the backend works again once it is back', async () => {
  const paused = makeBackend(g, {}, { timeoutMs: 2500 });
  try {
    await paused.backend.open();
    await g.pause();
    const started = Date.now();
    const err = await rejection(paused.backend.listFolders()).finally(() => g.resume());
    expect(err.code).toBe('BACKEND_UNAVAILABLE');
    expect(err.message).toMatch(/did not answer/);
    expect(Date.now() - started).toBeLessThan(6000);
    expect(await paused.backend.listFolders()).toContain('v1');
  } finally {
    g.resume();
    await paused.cleanup();
  }
});

describe('on a full disk', () => {
  let small: GaneshaServer;
  let img: string;
  let dir: string;

  beforeAll(async () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'nvnfs-full-'));
    img = path.join(base, 'disk.img');
    dir = path.join(base, 'mnt');
    fs.mkdirSync(dir);
    execFileSync('truncate', ['-s', '24M', img]);
    execFileSync('mkfs.ext4', ['-q', '-F', '-m', '0', img]);
    execFileSync('mount', ['-o', 'loop', img, dir]);
    small = await startGanesha({ exportDir: dir });
  });

  afterAll(async () => {
    await small?.stop();
    if (dir) execFileSync('umount', ['-l', dir]);
    if (img) fs.rmSync(path.dirname(img), { recursive: true, force: true });
  });

  test('writeFile() fails with NO_SPACE and leaves no temporary file behind', async () => {
    const full = makeBackend(small);
    try {
      await full.backend.open();
      await full.backend.makeFolder('v', true);
      fs.writeFileSync(path.join(dir, 'filler'), Buffer.alloc(0));
      // Fill the disk from the server side, leaving less than the file needs.
      try {
        execFileSync('dd', ['if=/dev/zero', `of=${path.join(dir, 'filler')}`, 'bs=1M', 'count=64'], { stdio: 'ignore' });
      } catch {
        /* ENOSPC: full, as intended */
      }
      const err = await rejection(full.backend.writeFile('v', 'volume.json', Buffer.alloc(2 * 1024 * 1024, 1)));
      expect(err.code).toBe('NO_SPACE');
      expect(err.message).toMatch(/^backend nas: writing volume.json of volume v: the server's disk is full/);
      expect(fs.readdirSync(path.join(dir, 'volumes', 'v')).filter((n) => n.endsWith('.tmp'))).toEqual([]);
      expect(await full.backend.freeBytes()).toBeLessThan(1024 * 1024);
    } finally {
      await full.cleanup();
    }
  });
});
