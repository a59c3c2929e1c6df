/**
 * File-system behaviour through the userspace data path: the FUSE server (dist/fuse-nfs/main.js)
 * over a real nfs-ganesha. Each result is checked both through the mount and on the server's disk.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NfsClient, writeWholeFile } from '../../../src/nfs';
import { GaneshaServer, startGanesha } from '../../harness/ganesha';
import { FuseMount, mountFolder, sh } from './support/fuse-mount';

let g: GaneshaServer;
let m: FuseMount;
const at = (...p: string[]) => path.join(m.mountpoint, ...p);
const onServer = (...p: string[]) => path.join(m.serverDir, ...p);

beforeAll(async () => {
  g = await startGanesha();
  m = await mountFolder(g, 'vol');
});

afterAll(async () => {
  await m?.unmount();
  await g?.stop();
});

function errnoOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (err) {
    return (err as NodeJS.ErrnoException).code;
  }
  return undefined;
}

test('the mount is a FUSE mount of type fuse.netvol-nfs whose kernel sends requests of up to 1 MiB', () => {
  const line = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === m.mountpoint) ?? '';
  expect(line.split(' - ')[1]?.split(' ')[0]).toBe('fuse.netvol-nfs');
  expect(line).toMatch(/allow_other/);
  expect(line).toMatch(/default_permissions/);
  const mounted = JSON.parse(m.output.find((l) => l.includes('"event":"mounted"')) ?? '{}');
  expect(mounted.fuse.maxWrite).toBe(1024 * 1024);
  expect(mounted.fuse.maxReadahead).toBeGreaterThanOrEqual(128 * 1024);
  expect(mounted.writeSize).toBeGreaterThanOrEqual(128 * 1024);
});

test('a file created through the mount appears on the server with its content and mode', () => {
  fs.writeFileSync(at('hello.txt'), 'hello, nfs\n', { mode: 0o640 });
  expect(fs.readFileSync(onServer('hello.txt'), 'utf8')).toBe('hello, nfs\n');
  expect(fs.statSync(onServer('hello.txt')).mode & 0o777).toBe(0o640);
  expect(fs.readFileSync(at('hello.txt'), 'utf8')).toBe('hello, nfs\n');
  expect(fs.readdirSync(m.mountpoint)).toContain('hello.txt');
});

test('names that differ only in bytes that are not UTF-8 stay two files, on the mount and on the server', () => {
  fs.mkdirSync(at('raw'));
  const ff = Buffer.from(at('raw', 'bad-\xff'), 'latin1');
  const fe = Buffer.from(at('raw', 'bad-\xfe'), 'latin1');
  fs.writeFileSync(ff, 'ff');
  fs.writeFileSync(fe, 'fe');
  const hex = (names: Buffer[]) => names.map((b) => b.toString('hex')).sort();
  const expected = hex([Buffer.from('bad-\xff', 'latin1'), Buffer.from('bad-\xfe', 'latin1')]);
  expect(hex(fs.readdirSync(Buffer.from(at('raw')), { encoding: 'buffer' }))).toEqual(expected);
  expect(hex(fs.readdirSync(Buffer.from(onServer('raw')), { encoding: 'buffer' }))).toEqual(expected);
  expect(fs.readFileSync(ff, 'utf8')).toBe('ff');
  expect(fs.readFileSync(fe, 'utf8')).toBe('fe');
  fs.unlinkSync(ff);
  expect(fs.readFileSync(fe, 'utf8')).toBe('fe');
  expect(hex(fs.readdirSync(Buffer.from(onServer('raw')), { encoding: 'buffer' }))).toEqual([Buffer.from('bad-\xfe', 'latin1').toString('hex')]);
});

test('writes through a write-only descriptor (direct I/O) are seen by a descriptor that had the file cached, and appends land at the end', () => {
  fs.writeFileSync(at('mixed'), 'A'.repeat(8192));
  const rw = fs.openSync(at('mixed'), 'r+');
  try {
    const buf = Buffer.alloc(8192);
    expect(fs.readSync(rw, buf, 0, 8192, 0)).toBe(8192);
    const wo = fs.openSync(at('mixed'), fs.constants.O_WRONLY);
    try {
      expect(fs.writeSync(wo, Buffer.from('B'.repeat(4096)), 0, 4096, 0)).toBe(4096);
      expect(errnoOf(() => fs.readSync(wo, Buffer.alloc(1), 0, 1, 0))).toBe('EBADF');
    } finally {
      fs.closeSync(wo);
    }
    expect(fs.readSync(rw, buf, 0, 8192, 0)).toBe(8192);
    expect(buf.toString()).toBe('B'.repeat(4096) + 'A'.repeat(4096));
  } finally {
    fs.closeSync(rw);
  }
  fs.appendFileSync(at('mixed'), 'C'.repeat(10));
  fs.appendFileSync(at('mixed'), 'D'.repeat(10));
  const text = fs.readFileSync(onServer('mixed'), 'utf8');
  expect(text).toBe('B'.repeat(4096) + 'A'.repeat(4096) + 'C'.repeat(10) + 'D'.repeat(10));
  expect(fs.statSync(at('mixed')).size).toBe(8212);
});

test('creating a file that exists exclusively fails with EEXIST, and opening a missing one with ENOENT', () => {
  fs.writeFileSync(at('exists'), 'x');
  expect(errnoOf(() => fs.openSync(at('exists'), 'wx'))).toBe('EEXIST');
  expect(errnoOf(() => fs.readFileSync(at('missing')))).toBe('ENOENT');
  expect(errnoOf(() => fs.mkdirSync(at('exists')))).toBe('EEXIST');
});

test('rename over an existing file replaces it atomically', () => {
  fs.writeFileSync(at('target'), 'old content');
  fs.writeFileSync(at('source'), 'new content');
  fs.renameSync(at('source'), at('target'));
  expect(fs.readFileSync(at('target'), 'utf8')).toBe('new content');
  expect(fs.existsSync(at('source'))).toBe(false);
  expect(fs.readFileSync(onServer('target'), 'utf8')).toBe('new content');
  expect(fs.existsSync(onServer('source'))).toBe(false);
});

test('rename moves a directory with its contents, which stay reachable under the new name', () => {
  fs.mkdirSync(at('d1/sub'), { recursive: true });
  fs.writeFileSync(at('d1/sub/f'), 'inside');
  fs.renameSync(at('d1'), at('d2'));
  expect(fs.readFileSync(at('d2/sub/f'), 'utf8')).toBe('inside');
  expect(errnoOf(() => fs.statSync(at('d1/sub/f')))).toBe('ENOENT');
  expect(fs.readFileSync(onServer('d2/sub/f'), 'utf8')).toBe('inside');
});

test('rmdir of a non-empty directory fails with ENOTEMPTY, and succeeds once it is empty', () => {
  fs.mkdirSync(at('full'));
  fs.writeFileSync(at('full/f'), 'x');
  expect(errnoOf(() => fs.rmdirSync(at('full')))).toBe('ENOTEMPTY');
  fs.unlinkSync(at('full/f'));
  fs.rmdirSync(at('full'));
  expect(fs.existsSync(onServer('full'))).toBe(false);
});

test('a hard link shares content and inode, and the link count follows', () => {
  fs.writeFileSync(at('orig'), 'shared');
  fs.linkSync(at('orig'), at('hard'));
  const a = fs.statSync(at('orig'));
  const b = fs.statSync(at('hard'));
  expect(b.ino).toBe(a.ino);
  expect(b.nlink).toBe(2);
  fs.appendFileSync(at('hard'), ' and changed');
  expect(fs.readFileSync(onServer('orig'), 'utf8')).toBe('shared and changed');
  expect(fs.statSync(onServer('orig')).ino).toBe(fs.statSync(onServer('hard')).ino);
  fs.unlinkSync(at('orig'));
  expect(fs.statSync(at('hard')).nlink).toBe(1);
});

test('a symbolic link stores its target text and resolves through the mount', () => {
  fs.writeFileSync(at('real'), 'via link');
  fs.symlinkSync('real', at('sym'));
  expect(fs.readlinkSync(at('sym'))).toBe('real');
  expect(fs.lstatSync(at('sym')).isSymbolicLink()).toBe(true);
  expect(fs.readFileSync(at('sym'), 'utf8')).toBe('via link');
  expect(fs.readlinkSync(onServer('sym'))).toBe('real');
  fs.symlinkSync('nowhere', at('dangling'));
  expect(errnoOf(() => fs.readFileSync(at('dangling')))).toBe('ENOENT');
});

test('chmod and chown reach the server, and another user gets EACCES on a private file', async () => {
  fs.writeFileSync(at('private'), 'secret');
  fs.chmodSync(at('private'), 0o600);
  fs.chownSync(at('private'), 1234, 5678);
  const st = fs.statSync(onServer('private'));
  expect(st.mode & 0o777).toBe(0o600);
  expect([st.uid, st.gid]).toEqual([1234, 5678]);
  expect(fs.statSync(at('private')).uid).toBe(1234);
  fs.chownSync(at('private'), 0, 0);
  await expect(sh('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'cat', at('private')])).rejects.toThrow(/Permission denied/);
  fs.chmodSync(at('private'), 0o644);
  const { stdout } = await sh('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'cat', at('private')]);
  expect(stdout).toBe('secret');
});

describe('files made by a caller who is not root', () => {
  const asUser = (uid: number, gid: number, ...argv: string[]) => sh('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', ...argv]);

  beforeAll(() => {
    fs.mkdirSync(at('shared'), { mode: 0o777 });
    fs.chmodSync(at('shared'), 0o1777);
  });

  test('belong to the caller, who can reopen, append to and remove them', async () => {
    await asUser(1000, 1001, 'sh', '-c', `umask 077 && echo one > ${at('shared', 'mine')} && mkdir ${at('shared', 'mydir')} && ln -s mine ${at('shared', 'mylink')}`);
    for (const name of ['mine', 'mydir']) {
      const st = fs.statSync(onServer('shared', name));
      expect([name, st.uid, st.gid]).toEqual([name, 1000, 1001]);
      expect(fs.statSync(at('shared', name)).uid).toBe(1000);
    }
    expect(fs.lstatSync(onServer('shared', 'mylink')).uid).toBe(1000);
    expect(fs.statSync(onServer('shared', 'mine')).mode & 0o777).toBe(0o600);
    await asUser(1000, 1001, 'sh', '-c', `echo two >> ${at('shared', 'mine')} && touch ${at('shared', 'mydir', 'inner')}`);
    expect(fs.readFileSync(onServer('shared', 'mine'), 'utf8')).toBe('one\ntwo\n');
    expect(fs.statSync(onServer('shared', 'mydir', 'inner')).uid).toBe(1000);
    // Another user may not read the private file (the kernel checks the owner the server reports).
    await expect(asUser(1002, 1002, 'cat', at('shared', 'mine'))).rejects.toThrow(/Permission denied/);
    await asUser(1000, 1001, 'rm', '-r', at('shared', 'mine'), at('shared', 'mydir'), at('shared', 'mylink'));
    expect(fs.existsSync(onServer('shared', 'mine'))).toBe(false);
  });

  test('take the group of a set-group-ID folder, and new folders inside keep the bit', async () => {
    fs.mkdirSync(at('team'));
    fs.chownSync(at('team'), 0, 4321);
    fs.chmodSync(at('team'), 0o2777);
    await asUser(1000, 1001, 'sh', '-c', `touch ${at('team', 'f')} && mkdir ${at('team', 'd')}`);
    expect(fs.statSync(onServer('team', 'f')).gid).toBe(4321);
    const d = fs.statSync(onServer('team', 'd'));
    expect([d.uid, d.gid, (d.mode & 0o2000) !== 0]).toEqual([1000, 4321, true]);
  });

  test('made by root stay root\'s', () => {
    fs.writeFileSync(at('shared', 'roots'), 'r');
    const st = fs.statSync(onServer('shared', 'roots'));
    expect([st.uid, st.gid]).toEqual([0, 0]);
  });
});

test('utimens sets access and modification times', () => {
  fs.writeFileSync(at('timed'), 'x');
  const when = new Date('2020-02-03T04:05:06Z');
  fs.utimesSync(at('timed'), when, when);
  expect(fs.statSync(onServer('timed')).mtime.getTime()).toBe(when.getTime());
  expect(fs.statSync(at('timed')).mtime.getTime()).toBe(when.getTime());
});

test('truncate shrinks and extends a file, and the extension reads as zeros', () => {
  fs.writeFileSync(at('trunc'), Buffer.alloc(100_000, 7));
  fs.truncateSync(at('trunc'), 10);
  expect(fs.statSync(at('trunc')).size).toBe(10);
  expect(fs.statSync(onServer('trunc')).size).toBe(10);
  const fd = fs.openSync(at('trunc'), 'r+');
  fs.ftruncateSync(fd, 5000);
  fs.closeSync(fd);
  const data = fs.readFileSync(at('trunc'));
  expect(data.length).toBe(5000);
  expect(data.subarray(0, 10).every((b) => b === 7)).toBe(true);
  expect(data.subarray(10).every((b) => b === 0)).toBe(true);
});

test('a sparse file keeps its holes: a write at 1 GiB allocates almost nothing on the server', () => {
  const fd = fs.openSync(at('sparse'), 'w');
  fs.writeSync(fd, Buffer.from('tail'), 0, 4, 1024 ** 3);
  fs.closeSync(fd);
  const st = fs.statSync(onServer('sparse'));
  expect(st.size).toBe(1024 ** 3 + 4);
  expect(st.blocks * 512).toBeLessThan(1024 * 1024);
  const fd2 = fs.openSync(at('sparse'), 'r');
  const buf = Buffer.alloc(8);
  fs.readSync(fd2, buf, 0, 8, 1024 ** 3 - 4);
  fs.closeSync(fd2);
  expect(buf).toEqual(Buffer.from([0, 0, 0, 0, ...Buffer.from('tail')]));
});

test('fsync commits written data so the server has it before close', () => {
  const fd = fs.openSync(at('synced'), 'w');
  const data = Buffer.alloc(3 * 1024 * 1024, 0x5a);
  fs.writeSync(fd, data);
  fs.fsyncSync(fd);
  expect(fs.readFileSync(onServer('synced')).equals(data)).toBe(true);
  fs.closeSync(fd);
});

test('statfs reports the size of the server filesystem', () => {
  const mine = fs.statfsSync(m.mountpoint);
  const theirs = fs.statfsSync(m.serverDir);
  const total = (s: fs.StatsFs) => s.blocks * s.bsize;
  expect(Math.abs(total(mine) - total(theirs))).toBeLessThan(total(theirs) * 0.01 + 1024 * 1024);
});

test('a file changed by another NFS client is seen through the mount within seconds, through every hard link', async () => {
  fs.writeFileSync(at('changing'), 'one');
  fs.linkSync(at('changing'), at('changing-link'));
  expect(fs.readFileSync(at('changing'), 'utf8')).toBe('one');
  expect(fs.readFileSync(at('changing-link'), 'utf8')).toBe('one');
  const other = await NfsClient.connect({ host: g.host, port: g.nfsPort, mountPort: g.mountPort, exportPath: g.exportPath, uid: 0, gid: 0 });
  try {
    await writeWholeFile(other, 'vol/changing', Buffer.from('two, longer'));
  } finally {
    await other.close();
  }
  // Names and attributes are trusted for 1 s by the kernel and 1 s by the server process.
  const deadline = Date.now() + 5000;
  while (fs.readFileSync(at('changing'), 'utf8') !== 'two, longer' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  expect(fs.readFileSync(at('changing'), 'utf8')).toBe('two, longer');
  expect(fs.readFileSync(at('changing-link'), 'utf8')).toBe('two, longer');
});
