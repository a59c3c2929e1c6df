/**
 * The Backend contract: the same cases against every backend type, each against its real server.
 * The cases build on one another in order (a folder made by one is used by the next), as a
 * driver's calls would.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { backendType } from '../../../src/backends';
import { Made, mountsUnder, rejection, Subject } from './subject';

/** Sizes (or allocated bytes) of everything below `dir` on this host. */
function measure(dir: string): { sizes: number; allocated: number } {
  let sizes = 0;
  let allocated = 0;
  const pending = [dir];
  while (pending.length > 0) {
    const current = pending.pop() as string;
    for (const e of fs.readdirSync(current, { withFileTypes: true })) {
      const full = path.join(current, e.name);
      const st = fs.lstatSync(full);
      allocated += st.blocks * 512;
      if (e.isDirectory()) pending.push(full);
      else sizes += st.size;
    }
  }
  return { sizes, allocated };
}

async function waitUntil(done: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
}

/** A case that needs a networked server: skipped, with the reason in its title, for a backend that has none. */
function serverTest(s: Subject, title: string, fn: (server: NonNullable<Subject['server']>) => Promise<void>, why = 'has no server to lose'): void {
  if (s.server) {
    const server = s.server;
    test(title, () => fn(server));
  } else test.skip(`${title} (skipped: a ${s.type} backend ${why})`, () => undefined);
}

export function backendContract(s: Subject): void {
  describe(`${s.type} backend`, () => {
    let b: Made;
    const made: Made[] = [];
    const make = (o?: Parameters<Subject['make']>[0]): Made => {
      const m = s.make(o);
      made.push(m);
      return m;
    };
    const onRoot = (...p: string[]) => s.onServer('volumes', ...p);

    beforeAll(async () => {
      await s.start();
      b = make();
      await b.backend.open();
    });

    afterAll(async () => {
      for (const m of made) await m.cleanup();
      await s.stop();
    });

    test('a backend carries the capabilities its registry entry declares, and fence() only when it has a networked data path', () => {
      expect(b.backend.type).toBe(s.type);
      expect(b.backend.capabilities).toEqual(backendType(s.type)?.capabilities);
      expect(b.backend.capabilities.networked).toBe(s.server !== undefined);
      expect(typeof b.backend.fence).toBe(s.server ? 'function' : 'undefined');
    });

    test('open() creates the configured root folder when it is missing, and mounts nothing', async () => {
      const fresh = make({ folder: 'deep/er/volumes' });
      await fresh.backend.open();
      expect(fs.statSync(s.onServer('deep/er/volumes')).isDirectory()).toBe(true);
      expect(mountsUnder(fresh.workDir, s.onServer('deep'))).toEqual([]);
      // The probe file written to prove the root writable is gone again.
      expect(fs.readdirSync(s.onServer('deep/er/volumes'))).toEqual([]);
    });

    test('makeFolder() creates the folder (mode 0700) and its data folder once, and returns false for an existing folder', async () => {
      expect(await b.backend.makeFolder('v1', true)).toBe(true);
      expect(fs.statSync(onRoot('v1', 'data')).isDirectory()).toBe(true);
      expect(fs.statSync(onRoot('v1')).mode & 0o777).toBe(0o700);
      expect(await b.backend.makeFolder('v1', true)).toBe(false);
      expect(await b.backend.makeFolder('img', false)).toBe(true);
      expect(fs.existsSync(onRoot('img', 'data'))).toBe(false);
    });

    test('listFolders() lists the volume folders and hides dot-folders and files', async () => {
      fs.mkdirSync(onRoot('.hidden'), { recursive: true });
      fs.writeFileSync(onRoot('stray-file'), 'x');
      const names = await b.backend.listFolders();
      expect(names).toEqual(expect.arrayContaining(['v1', 'img']));
      expect(names).not.toContain('.hidden');
      expect(names).not.toContain('stray-file');
    });

    test('writeFile() replaces a file atomically (mode 0600, no temporary file left), and readFile() reads it back', async () => {
      await b.backend.writeFile('v1', 'volume.json', Buffer.from('{"a":1}'));
      await b.backend.writeFile('v1', 'volume.json', Buffer.from('{"a":2,"longer":true}'));
      expect((await b.backend.readFile('v1', 'volume.json'))?.toString()).toBe('{"a":2,"longer":true}');
      expect(fs.readFileSync(onRoot('v1', 'volume.json'), 'utf8')).toBe('{"a":2,"longer":true}');
      expect(fs.statSync(onRoot('v1', 'volume.json')).mode & 0o777).toBe(0o600);
      const big = Buffer.alloc(3 * 1024 * 1024 + 17, 0xab);
      await b.backend.writeFile('v1', 'big.bin', big);
      expect((await b.backend.readFile('v1', 'big.bin'))?.equals(big)).toBe(true);
      expect(fs.readdirSync(onRoot('v1')).filter((n) => n.endsWith('.tmp'))).toEqual([]);
      await b.backend.removeFile('v1', 'big.bin');
    });

    test('readFile() returns undefined for a missing file and for a missing folder', async () => {
      expect(await b.backend.readFile('v1', 'absent.json')).toBeUndefined();
      expect(await b.backend.readFile('no-such-volume', 'volume.json')).toBeUndefined();
    });

    test('removeFile() removes a file and succeeds when it is already gone', async () => {
      await b.backend.writeFile('v1', 'owner.json', Buffer.from('{}'));
      await b.backend.removeFile('v1', 'owner.json');
      expect(fs.existsSync(onRoot('v1', 'owner.json'))).toBe(false);
      await expect(b.backend.removeFile('v1', 'owner.json')).resolves.toBeUndefined();
      await expect(b.backend.removeFile('no-such-volume', 'owner.json')).resolves.toBeUndefined();
    });

    test('createFile() creates a file (mode 0600) with its data once, and returns false without changing it the second time', async () => {
      expect(await b.backend.createFile('v1', 'claim.json', Buffer.from('first'))).toBe(true);
      expect(fs.readFileSync(onRoot('v1', 'claim.json'), 'utf8')).toBe('first');
      expect(fs.statSync(onRoot('v1', 'claim.json')).mode & 0o777).toBe(0o600);
      expect(await b.backend.createFile('v1', 'claim.json', Buffer.from('second'))).toBe(false);
      expect(fs.readFileSync(onRoot('v1', 'claim.json'), 'utf8')).toBe('first');
    });

    test('createFile() called by ten backends on separate connections at once returns true to exactly one, whose data the file holds', async () => {
      await b.backend.makeFolder('race', false);
      const others = Array.from({ length: 10 }, () => make());
      await Promise.all(others.map((o) => o.backend.open()));
      const results = await Promise.all(others.map((o, i) => o.backend.createFile('race', 'lease.json', Buffer.from(`host-${i}`))));
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(fs.readFileSync(onRoot('race', 'lease.json'), 'utf8')).toBe(`host-${results.indexOf(true)}`);
      for (const o of others) await o.backend.close();
    });

    test('listFiles() lists the regular files of a folder, without folders or files being written, and [] for a missing folder', async () => {
      await b.backend.makeFolder('listed', true);
      await b.backend.writeFile('listed', 'volume.json', Buffer.from('{}'));
      await b.backend.createFile('listed', 'owner.json', Buffer.from('{}'));
      fs.writeFileSync(onRoot('listed', 'volume.json.0123456789ab.tmp'), 'half');
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

    test('setDataAttributes() applies owner and mode to data/, and a mode alone keeps the owner', async () => {
      await b.backend.setDataAttributes('v1', { uid: 1234, gid: 2345, mode: 0o750 });
      const st = fs.statSync(onRoot('v1', 'data'));
      expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([1234, 2345, 0o750]);
      await b.backend.setDataAttributes('v1', { mode: 0o711 });
      const again = fs.statSync(onRoot('v1', 'data'));
      expect([again.uid, again.gid, again.mode & 0o7777]).toEqual([1234, 2345, 0o711]);
    });

    test('usage() counts the bytes below the volume folder and the free space of the server disk; freeBytes() matches statvfs', async () => {
      fs.mkdirSync(onRoot('v1', 'data', 'sub', 'deeper'), { recursive: true });
      fs.writeFileSync(onRoot('v1', 'data', 'a'), Buffer.alloc(100_000, 1));
      fs.writeFileSync(onRoot('v1', 'data', 'sub', 'deeper', 'b'), Buffer.alloc(50_000, 1));
      fs.writeFileSync(onRoot('v1', 'data', 'f'), Buffer.alloc(2 * 1024 * 1024, 1));
      const u = await b.backend.usage('v1');
      const onHost = measure(onRoot('v1'));
      if (s.usageCounts === 'apparent') expect(u.usedBytes).toBe(onHost.sizes);
      else {
        expect(u.usedBytes).toBeGreaterThanOrEqual(onHost.sizes);
        expect(u.usedBytes).toBeLessThan(onHost.sizes + 4 * 1024 * 1024);
      }
      const disk = fs.statfsSync(onRoot());
      expect(Math.abs(u.availableBytes - disk.bavail * disk.bsize)).toBeLessThan(s.freeSlackBytes);
      const free = await b.backend.freeBytes();
      expect(free).toBeGreaterThan(0);
      expect(Math.abs(free - disk.bavail * disk.bsize)).toBeLessThan(s.freeSlackBytes);
    });

    test('renameFolder() moves a volume folder with its content', async () => {
      await b.backend.makeFolder('old-name', true);
      await b.backend.writeFile('old-name', 'volume.json', Buffer.from('meta'));
      await b.backend.renameFolder('old-name', 'old-name.archive-1');
      expect(fs.existsSync(onRoot('old-name'))).toBe(false);
      expect(fs.readFileSync(onRoot('old-name.archive-1', 'volume.json'), 'utf8')).toBe('meta');
      expect(fs.existsSync(onRoot('old-name.archive-1', 'data'))).toBe(true);
    });

    test('renameFolder() refuses to replace an existing folder, empty or not, and changes nothing', async () => {
      await b.backend.makeFolder('keep-a', true);
      await b.backend.makeFolder('keep-b', false);
      await b.backend.writeFile('keep-a', 'volume.json', Buffer.from('a'));
      for (const target of ['keep-b', 'v1']) {
        const err = await rejection(b.backend.renameFolder('keep-a', target));
        expect(err.code).toBe('OPTIONS_CONFLICT');
        expect(err.message).toBe(`backend ${s.name}: cannot rename volume keep-a to ${target}: ${target} already exists`);
      }
      expect(fs.readFileSync(onRoot('keep-a', 'volume.json'), 'utf8')).toBe('a');
      expect(fs.readdirSync(onRoot('keep-b'))).toEqual([]);
    });

    test('removeFolder() removes a folder with nested content at once, finishes deleting it, and succeeds when it is already gone', async () => {
      await b.backend.makeFolder('doomed', true);
      for (let i = 0; i < 50; i++) fs.writeFileSync(onRoot('doomed', 'data', `f${i}`), `${i}`);
      fs.mkdirSync(onRoot('doomed', 'data', 'x', 'y'), { recursive: true });
      fs.writeFileSync(onRoot('doomed', 'data', 'x', 'y', 'z'), 'z');
      await b.backend.removeFolder('doomed');
      expect(fs.existsSync(onRoot('doomed'))).toBe(false);
      expect(await b.backend.listFolders()).not.toContain('doomed');
      await expect(b.backend.removeFolder('doomed')).resolves.toBeUndefined();
      const trash = () => fs.readdirSync(onRoot()).filter((n) => n.startsWith('.netvol-trash-'));
      await waitUntil(() => trash().length === 0, 20_000);
      expect(trash()).toEqual([]);
    });

    test('open() finishes deleting folders that removals cut short left in the trash', async () => {
      fs.mkdirSync(onRoot('.netvol-trash-left-over-0a0b0c0d', 'data', 'deep'), { recursive: true });
      fs.writeFileSync(onRoot('.netvol-trash-left-over-0a0b0c0d', 'data', 'deep', 'f'), 'x');
      const again = make();
      await again.backend.open();
      const trash = () => fs.readdirSync(onRoot()).filter((n) => n.startsWith('.netvol-trash-'));
      await waitUntil(() => trash().length === 0, 20_000);
      expect(trash()).toEqual([]);
      await again.backend.close();
    });

    test('a root folder re-created on the server behind the backend is found again', async () => {
      const other = make({ folder: 'recreated' });
      await other.backend.open();
      await other.backend.makeFolder('a', true);
      await s.recreate('recreated', 'b');
      expect(await other.backend.listFolders()).toEqual(['b']);
      if (s.recreatedRootLog) expect(other.logs.join('\n')).toMatch(s.recreatedRootLog);
    });

    serverTest(s, 'attach() of a volume whose folder is missing fails with NOT_FOUND naming the folder, and health() says detached', async () => {
      const err = await rejection(b.backend.attach('never-created'));
      expect(err.code).toBe('NOT_FOUND');
      expect(err.message).toMatch(new RegExp(`^backend ${s.name}: cannot attach volume never-created: its folder \\S*volumes/never-created is missing`));
      expect(await b.backend.health('never-created')).toBe('detached');
      expect(fs.existsSync(path.join(b.workDir, 'never-created'))).toBe(false);
    }, "attaches nothing: a volume's folder is its data path");

    serverTest(s, 'a call after the server restarted reconnects and succeeds', async (server) => {
      await server.restart();
      await b.backend.writeFile('v1', 'after-restart', Buffer.from('ok'));
      expect((await b.backend.readFile('v1', 'after-restart'))?.toString()).toBe('ok');
    });

    serverTest(s, 'a call after the server was killed and started again reconnects and succeeds', async (server) => {
      await server.crashAndRestart();
      expect(await b.backend.listFolders()).toContain('v1');
    });

    serverTest(s, 'a server that is not running fails a call with BACKEND_UNAVAILABLE naming the backend, within the timeout', async (server) => {
      const down = await server.unreachable(3000);
      made.push(down);
      const started = Date.now();
      const err = await rejection(down.backend.listFolders());
      expect(err.code).toBe('BACKEND_UNAVAILABLE');
      expect(err.message).toMatch(new RegExp(`^backend ${s.name}: `));
      expect(Date.now() - started).toBeLessThan(4500);
    });

    serverTest(s, 'a server that stops answering mid-way fails the call within the timeout, and the backend works again once it answers', async (server) => {
      const paused = make({ timeoutMs: 2500 });
      await paused.backend.open();
      await server.pause();
      const started = Date.now();
      const err = await rejection(paused.backend.listFolders()).finally(() => server.resume());
      expect(err.code).toBe('BACKEND_UNAVAILABLE');
      expect(err.message).toMatch(new RegExp(`^backend ${s.name}: .*did not answer`));
      expect(Date.now() - started).toBeLessThan(6000);
      expect(await paused.backend.listFolders()).toContain('v1');
    });

    describe('on a full disk', () => {
      test('writeFile() fails with NO_SPACE naming the backend and leaves no temporary file behind', async () => {
        const small = await s.smallDisk();
        try {
          const full = small.make();
          made.push(full);
          await full.backend.open();
          await full.backend.makeFolder('v', true);
          try {
            execFileSync('dd', ['if=/dev/zero', `of=${path.join(small.dir, 'filler')}`, 'bs=1M', 'count=64'], { stdio: 'ignore' });
          } catch {
            /* ENOSPC: full, as intended */
          }
          const err = await rejection(full.backend.writeFile('v', 'volume.json', Buffer.alloc(2 * 1024 * 1024, 1)));
          expect(err.code).toBe('NO_SPACE');
          expect(err.message).toMatch(new RegExp(`^backend ${s.name}: cannot write volume.json of volume v: .*disk is full`));
          expect(fs.readdirSync(path.join(small.dir, 'volumes', 'v')).filter((n) => n.endsWith('.tmp'))).toEqual([]);
          expect(await full.backend.freeBytes()).toBeLessThan(1024 * 1024);
          await full.backend.close();
        } finally {
          await small.dispose();
        }
      });
    });

    s.extraCases?.(() => b);
  });
}
