/** The sftp backend's control operations against a real OpenSSH sshd. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backend } from '../../src/backends';
import { startSshd, Sshd } from '../harness/sshd';
import { BackendUnderTest, makeBackend } from './support/backend';

let sshd: Sshd;
let under: BackendUnderTest;
let backend: Backend;
let root: string;

beforeAll(async () => {
  sshd = await startSshd();
  under = makeBackend(sshd);
  backend = under.backend;
  root = path.join(sshd.root, 'volumes');
  await backend.open();
});

afterAll(async () => {
  await under?.cleanup();
  await sshd?.cleanup();
});

describe('sftp backend control operations', () => {
  test('open() creates the configured path on the server when it is missing', () => {
    expect(fs.statSync(root).isDirectory()).toBe(true);
  });

  test('makeFolder() creates the volume folder and data/, and returns false for an existing folder', async () => {
    expect(await backend.makeFolder('dirvol', true)).toBe(true);
    expect(fs.statSync(path.join(root, 'dirvol', 'data')).isDirectory()).toBe(true);
    expect(await backend.makeFolder('imgvol', false)).toBe(true);
    expect(fs.existsSync(path.join(root, 'imgvol', 'data'))).toBe(false);
    expect(await backend.makeFolder('dirvol', true)).toBe(false);
  });

  test('listFolders() lists the volume folders and no files or hidden entries', async () => {
    fs.writeFileSync(path.join(root, 'stray-file'), 'x');
    fs.mkdirSync(path.join(root, '.hidden'));
    const names = await backend.listFolders();
    expect(names.sort()).toEqual(expect.arrayContaining(['dirvol', 'imgvol']));
    expect(names).not.toContain('stray-file');
    expect(names).not.toContain('.hidden');
  });

  test('writeFile() then readFile() returns the bytes, and a second write replaces them atomically', async () => {
    await backend.writeFile('dirvol', 'volume.json', Buffer.from('{"v":1}\n'));
    expect((await backend.readFile('dirvol', 'volume.json'))?.toString()).toBe('{"v":1}\n');
    const big = Buffer.alloc(300 * 1024, 7);
    await backend.writeFile('dirvol', 'volume.json', big);
    expect((await backend.readFile('dirvol', 'volume.json'))?.equals(big)).toBe(true);
    expect(fs.readdirSync(path.join(root, 'dirvol')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(fs.statSync(path.join(root, 'dirvol', 'volume.json')).mode & 0o777).toBe(0o600);
  });

  test('readFile() returns undefined for a missing file and for a missing folder', async () => {
    expect(await backend.readFile('dirvol', 'nope.json')).toBeUndefined();
    expect(await backend.readFile('no-such-volume', 'volume.json')).toBeUndefined();
  });

  test('removeFile() removes a file and succeeds when it is already gone', async () => {
    await backend.writeFile('dirvol', 'owner.json', Buffer.from('{}'));
    await backend.removeFile('dirvol', 'owner.json');
    expect(fs.existsSync(path.join(root, 'dirvol', 'owner.json'))).toBe(false);
    await expect(backend.removeFile('dirvol', 'owner.json')).resolves.toBeUndefined();
  });

  test('setDataAttributes() applies owner and mode to data/', async () => {
    await backend.setDataAttributes('dirvol', { uid: 1234, gid: 2345, mode: 0o750 });
    const st = fs.statSync(path.join(root, 'dirvol', 'data'));
    expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([1234, 2345, 0o750]);
    await backend.setDataAttributes('dirvol', { mode: 0o711 });
    const again = fs.statSync(path.join(root, 'dirvol', 'data'));
    expect([again.uid, again.gid, again.mode & 0o7777]).toEqual([1234, 2345, 0o711]);
  });

  test('usage() counts the bytes below the volume folder, and reports the free space of the server disk', async () => {
    fs.mkdirSync(path.join(root, 'dirvol', 'data', 'sub', 'deeper'), { recursive: true });
    fs.writeFileSync(path.join(root, 'dirvol', 'data', 'a'), Buffer.alloc(100_000));
    fs.writeFileSync(path.join(root, 'dirvol', 'data', 'sub', 'deeper', 'b'), Buffer.alloc(50_000));
    const u = await backend.usage('dirvol');
    const metaSize = fs.statSync(path.join(root, 'dirvol', 'volume.json')).size;
    expect(u.usedBytes).toBe(150_000 + metaSize);
    const s = fs.statfsSync(root);
    expect(Math.abs(u.availableBytes - s.bavail * s.bsize)).toBeLessThan(64 * 1024 * 1024);
  });

  test('freeBytes() matches statvfs of the server folder', async () => {
    const free = await backend.freeBytes();
    const s = fs.statfsSync(root);
    expect(free).toBeGreaterThan(0);
    expect(Math.abs(free - s.bavail * s.bsize)).toBeLessThan(64 * 1024 * 1024);
  });

  test('renameFolder() moves a volume folder with its content', async () => {
    await backend.makeFolder('to-archive', true);
    await backend.writeFile('to-archive', 'volume.json', Buffer.from('meta'));
    await backend.renameFolder('to-archive', 'to-archive.archived-1');
    expect(fs.existsSync(path.join(root, 'to-archive'))).toBe(false);
    expect(fs.readFileSync(path.join(root, 'to-archive.archived-1', 'volume.json'), 'utf8')).toBe('meta');
  });

  test('removeFolder() removes a folder with nested content at once, and succeeds when it is already gone', async () => {
    await backend.makeFolder('doomed', true);
    for (let i = 0; i < 50; i++) fs.writeFileSync(path.join(root, 'doomed', 'data', `f${i}`), `${i}`);
    fs.mkdirSync(path.join(root, 'doomed', 'data', 'x', 'y'), { recursive: true });
    fs.writeFileSync(path.join(root, 'doomed', 'data', 'x', 'y', 'z'), 'z');
    await backend.removeFolder('doomed');
    expect(fs.existsSync(path.join(root, 'doomed'))).toBe(false);
    expect(await backend.listFolders()).not.toContain('doomed');
    await expect(backend.removeFolder('doomed')).resolves.toBeUndefined();
    // The deletion behind the rename finishes: nothing of the volume is left on the server.
    const deadline = Date.now() + 10_000;
    while (fs.readdirSync(root).some((f) => f.startsWith('.netvol-trash-')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(fs.readdirSync(root).filter((f) => f.startsWith('.netvol-trash-'))).toEqual([]);
  });

  test('createFile() creates a file with its data once, and returns false without changing it the second time', async () => {
    expect(await backend.createFile('dirvol', 'claim.json', Buffer.from('first'))).toBe(true);
    expect(fs.readFileSync(path.join(root, 'dirvol', 'claim.json'), 'utf8')).toBe('first');
    expect(fs.statSync(path.join(root, 'dirvol', 'claim.json')).mode & 0o777).toBe(0o600);
    expect(await backend.createFile('dirvol', 'claim.json', Buffer.from('second'))).toBe(false);
    expect(fs.readFileSync(path.join(root, 'dirvol', 'claim.json'), 'utf8')).toBe('first');
  });

  test('createFile() called by ten backends on separate connections at once returns true to exactly one, whose data the file holds', async () => {
    await backend.makeFolder('race', false);
    const others = Array.from({ length: 10 }, () => makeBackend(sshd));
    try {
      await Promise.all(others.map((o) => o.backend.open()));
      const results = await Promise.all(others.map((o, i) => o.backend.createFile('race', 'lease.json', Buffer.from(`host-${i}`))));
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(fs.readFileSync(path.join(root, 'race', 'lease.json'), 'utf8')).toBe(`host-${results.indexOf(true)}`);
    } finally {
      for (const o of others) await o.cleanup();
    }
  });

  test('listFiles() lists the regular files of a folder, without folders or files being written, and [] for a missing folder', async () => {
    await backend.makeFolder('listed', true);
    await backend.writeFile('listed', 'volume.json', Buffer.from('{}'));
    await backend.createFile('listed', 'owner.json', Buffer.from('{}'));
    fs.writeFileSync(path.join(root, 'listed', 'volume.json.0123456789ab.tmp'), 'half');
    expect((await backend.listFiles('listed')).sort()).toEqual(['owner.json', 'volume.json']);
    expect(await backend.listFiles('no-such-folder')).toEqual([]);
  });

  test('a folder named .netvol-hosts takes files like any other, and listFolders() does not show it', async () => {
    expect(await backend.makeFolder('.netvol-hosts', false)).toBe(true);
    await backend.writeFile('.netvol-hosts', 'host-a.json', Buffer.from('{"seq":1}'));
    expect(await backend.createFile('.netvol-hosts', 'host-b.json', Buffer.from('{"seq":0}'))).toBe(true);
    expect((await backend.readFile('.netvol-hosts', 'host-a.json'))?.toString()).toBe('{"seq":1}');
    expect((await backend.listFiles('.netvol-hosts')).sort()).toEqual(['host-a.json', 'host-b.json']);
    expect(await backend.listFolders()).not.toContain('.netvol-hosts');
  });

  test('a call after sshd restarted reconnects and succeeds', async () => {
    await sshd.restart();
    await backend.writeFile('dirvol', 'after-restart', Buffer.from('ok'));
    expect((await backend.readFile('dirvol', 'after-restart'))?.toString()).toBe('ok');
  });

  test('a call after sshd was killed and restarted reconnects and succeeds', async () => {
    await sshd.kill();
    await sshd.restart();
    expect(await backend.listFolders()).toContain('dirvol');
  });
});
