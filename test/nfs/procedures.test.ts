import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  ACCESS_DELETE,
  ACCESS_EXECUTE,
  ACCESS_LOOKUP,
  ACCESS_MODIFY,
  ACCESS_READ,
  FileType,
  FSF_LINK,
  FSF_SYMLINK,
  NfsError,
  StableHow,
} from '../../src/nfs';
import { useGanesha, uniqueName } from './fixture';

const fx = useGanesha();

/** A fresh directory in the export for one test. */
async function freshDir(): Promise<{ fh: Buffer; local: string; name: string }> {
  const name = uniqueName('t');
  const res = await fx.client.mkdir(fx.client.root, name, { mode: 0o755 });
  return { fh: res.handle, local: path.join(fx.server.exportDir, name), name };
}

describe('NFS3 procedures against ganesha', () => {
  test('NULL answers', async () => {
    await expect(fx.client.null()).resolves.toBeUndefined();
  });

  test('GETATTR of the root reports a directory', async () => {
    const a = await fx.client.getattr(fx.client.root);
    expect(a.type).toBe(FileType.DIR);
    expect(a.fileid).toBe(BigInt(fs.statSync(fx.server.exportDir).ino));
  });

  test('CREATE then LOOKUP returns the same file with the requested mode', async () => {
    const d = await freshDir();
    const created = await fx.client.create(d.fh, 'f', { mode: 'guarded', attrs: { mode: 0o640 } });
    expect(created.attrs?.type).toBe(FileType.REG);
    const found = await fx.client.lookup(d.fh, 'f');
    expect(found.handle.equals(created.handle)).toBe(true);
    expect(found.attrs?.mode).toBe(0o640);
    expect(fs.statSync(path.join(d.local, 'f')).mode & 0o777).toBe(0o640);
  });

  test('guarded CREATE of an existing name fails with EEXIST, unchecked CREATE succeeds', async () => {
    const d = await freshDir();
    await fx.client.create(d.fh, 'f', { mode: 'guarded' });
    await expect(fx.client.create(d.fh, 'f', { mode: 'guarded' })).rejects.toMatchObject({ code: 'EEXIST', nfsStatus: 17 });
    await expect(fx.client.create(d.fh, 'f', { mode: 'unchecked' })).resolves.toBeDefined();
  });

  // Why an UNCHECKED CREATE is resent after a reconnect only when it sets no size (see nfs3.ts).
  test('unchecked CREATE of an existing file truncates it when size 0 is set and leaves it alone otherwise', async () => {
    const d = await freshDir();
    const f = await fx.client.create(d.fh, 'f', { mode: 'guarded', attrs: { mode: 0o600 } });
    await fx.client.write(f.handle, 0, Buffer.from('hello world'), StableHow.FILE_SYNC);
    for (const attrs of [undefined, { mode: 0o644 }]) {
      const again = await fx.client.create(d.fh, 'f', { mode: 'unchecked', attrs });
      expect(again.handle.equals(f.handle)).toBe(true);
      expect((await fx.client.getattr(f.handle)).size).toBe(11);
    }
    await fx.client.create(d.fh, 'f', { mode: 'unchecked', attrs: { mode: 0o644, size: 0 } });
    expect((await fx.client.getattr(f.handle)).size).toBe(0);
    expect(fs.statSync(path.join(d.local, 'f')).size).toBe(0);
  });

  test('exclusive CREATE with the same verifier is idempotent and a different verifier fails with EEXIST', async () => {
    const d = await freshDir();
    const verifier = Buffer.from('12345678');
    const first = await fx.client.create(d.fh, 'x', { mode: 'exclusive', verifier });
    const again = await fx.client.create(d.fh, 'x', { mode: 'exclusive', verifier });
    expect(again.handle.equals(first.handle)).toBe(true);
    await expect(fx.client.create(d.fh, 'x', { mode: 'exclusive', verifier: Buffer.from('87654321') })).rejects.toMatchObject({
      code: 'EEXIST',
    });
    // After an exclusive create the client sets real attributes.
    await fx.client.setattr(first.handle, { mode: 0o600 });
    expect((await fx.client.getattr(first.handle)).mode).toBe(0o600);
  });

  test('LOOKUP of a missing name fails with ENOENT and a typed NfsError', async () => {
    const err = await fx.client.lookup(fx.client.root, 'no-such-file').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NfsError);
    expect(err).toMatchObject({ code: 'ENOENT', nfsStatus: 2, procedure: 'NFS3.LOOKUP' });
  });

  test('LOOKUP through a regular file fails with ENOTDIR', async () => {
    const d = await freshDir();
    const f = await fx.client.create(d.fh, 'f');
    await expect(fx.client.lookup(f.handle, 'x')).rejects.toMatchObject({ code: 'ENOTDIR' });
  });

  test('a name longer than 255 bytes fails with ENAMETOOLONG', async () => {
    const d = await freshDir();
    await expect(fx.client.create(d.fh, 'n'.repeat(300))).rejects.toMatchObject({ code: 'ENAMETOOLONG' });
  });

  test('ACCESS grants everything to root on a file it owns', async () => {
    const d = await freshDir();
    const f = await fx.client.create(d.fh, 'f', { mode: 'guarded', attrs: { mode: 0o644 } });
    const res = await fx.client.access(f.handle, ACCESS_READ | ACCESS_MODIFY);
    expect(res.access & (ACCESS_READ | ACCESS_MODIFY)).toBe(ACCESS_READ | ACCESS_MODIFY);
    const dirRes = await fx.client.access(d.fh, ACCESS_LOOKUP | ACCESS_DELETE | ACCESS_EXECUTE);
    expect(dirRes.access & ACCESS_LOOKUP).toBe(ACCESS_LOOKUP);
  });

  test('ACCESS as another uid is refused write on a root-owned 0644 file', async () => {
    const d = await freshDir();
    const f = await fx.client.create(d.fh, 'f', { mode: 'guarded', attrs: { mode: 0o644 } });
    const { NfsClient } = await import('../../src/nfs');
    const { clientOptions } = await import('./fixture');
    const other = await NfsClient.connect(clientOptions(fx.server, { uid: 4321, gid: 4321 }));
    try {
      const res = await other.access(f.handle, ACCESS_READ | ACCESS_MODIFY);
      expect(res.access & ACCESS_READ).toBe(ACCESS_READ);
      expect(res.access & ACCESS_MODIFY).toBe(0);
      await expect(other.write(f.handle, 0, Buffer.from('x'), StableHow.FILE_SYNC)).rejects.toMatchObject({ code: 'EACCES' });
      await expect(other.create(d.fh, 'g')).rejects.toMatchObject({ code: 'EACCES' });
    } finally {
      await other.close();
    }
  });

  test('MKDIR creates a directory and a second MKDIR fails with EEXIST', async () => {
    const d = await freshDir();
    const sub = await fx.client.mkdir(d.fh, 'sub', { mode: 0o700 });
    expect(sub.attrs?.type).toBe(FileType.DIR);
    expect(fs.statSync(path.join(d.local, 'sub')).isDirectory()).toBe(true);
    await expect(fx.client.mkdir(d.fh, 'sub')).rejects.toMatchObject({ code: 'EEXIST' });
  });

  test('SYMLINK stores a target that READLINK returns', async () => {
    const d = await freshDir();
    const l = await fx.client.symlink(d.fh, 'link', '../some/where');
    expect((await fx.client.getattr(l.handle)).type).toBe(FileType.LNK);
    expect(await fx.client.readlink(l.handle)).toBe('../some/where');
    expect(fs.readlinkSync(path.join(d.local, 'link'))).toBe('../some/where');
  });

  test('MKNOD makes a FIFO, a socket, and character and block devices that keep their major and minor numbers', async () => {
    const d = await freshDir();
    const fifo = await fx.client.mknod(d.fh, 'fifo', { type: FileType.FIFO, attrs: { mode: 0o640 } });
    expect(fifo.attrs?.type).toBe(FileType.FIFO);
    expect(fs.statSync(path.join(d.local, 'fifo')).isFIFO()).toBe(true);
    expect(fs.statSync(path.join(d.local, 'fifo')).mode & 0o7777).toBe(0o640);
    const sock = await fx.client.mknod(d.fh, 'sock', { type: FileType.SOCK, attrs: { mode: 0o755 } });
    expect((await fx.client.getattr(sock.handle)).type).toBe(FileType.SOCK);
    expect(fs.statSync(path.join(d.local, 'sock')).isSocket()).toBe(true);
    const chr = await fx.client.mknod(d.fh, 'null', { type: FileType.CHR, rdev: { major: 1, minor: 3 }, attrs: { mode: 0o666 } });
    expect(chr.attrs).toMatchObject({ type: FileType.CHR, rdev: { major: 1, minor: 3 }, mode: 0o666 });
    const blk = await fx.client.mknod(d.fh, 'blk', { type: FileType.BLK, rdev: { major: 7, minor: 300 } });
    expect((await fx.client.getattr(blk.handle)).rdev).toEqual({ major: 7, minor: 300 });
    const st = fs.statSync(path.join(d.local, 'blk'));
    expect(st.isBlockDevice()).toBe(true);
    // Linux's dev_t: major in bits 8-19, minor in bits 0-7 and 20-31.
    expect([(st.rdev >> 8) & 0xfff, (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00)]).toEqual([7, 300]);
    expect(fs.statSync(path.join(d.local, 'null')).isCharacterDevice()).toBe(true);
  });

  test('MKNOD of an existing name fails with EEXIST, and of a regular file or folder with EBADTYPE', async () => {
    const d = await freshDir();
    await fx.client.mknod(d.fh, 'p', { type: FileType.FIFO });
    await expect(fx.client.mknod(d.fh, 'p', { type: FileType.SOCK })).rejects.toMatchObject({ code: 'EEXIST', procedure: 'NFS3.MKNOD' });
    for (const type of [FileType.REG, FileType.DIR]) {
      await expect(fx.client.mknod(d.fh, `t${type}`, { type } as never)).rejects.toMatchObject({ code: 'EBADTYPE' });
    }
  });

  test('READLINK of a regular file fails with EINVAL', async () => {
    const d = await freshDir();
    const f = await fx.client.create(d.fh, 'f');
    await expect(fx.client.readlink(f.handle)).rejects.toMatchObject({ code: 'EINVAL' });
  });

  test('REMOVE deletes a file, and a second REMOVE fails with ENOENT', async () => {
    const d = await freshDir();
    await fx.client.create(d.fh, 'f');
    await fx.client.remove(d.fh, 'f');
    expect(fs.existsSync(path.join(d.local, 'f'))).toBe(false);
    await expect(fx.client.remove(d.fh, 'f')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  test('RMDIR of a non-empty directory fails with ENOTEMPTY and succeeds once emptied', async () => {
    const d = await freshDir();
    const sub = await fx.client.mkdir(d.fh, 'sub');
    await fx.client.create(sub.handle, 'f');
    await expect(fx.client.rmdir(d.fh, 'sub')).rejects.toMatchObject({ code: 'ENOTEMPTY', nfsStatus: 66 });
    await fx.client.remove(sub.handle, 'f');
    await fx.client.rmdir(d.fh, 'sub');
    expect(fs.existsSync(path.join(d.local, 'sub'))).toBe(false);
  });

  test('RMDIR of a file fails with ENOTDIR', async () => {
    const d = await freshDir();
    await fx.client.create(d.fh, 'f');
    await expect(fx.client.rmdir(d.fh, 'f')).rejects.toMatchObject({ code: 'ENOTDIR' });
  });

  test('RENAME over an existing file replaces it atomically', async () => {
    const d = await freshDir();
    const a = await fx.client.create(d.fh, 'a');
    await fx.client.write(a.handle, 0, Buffer.from('new'), StableHow.FILE_SYNC);
    const b = await fx.client.create(d.fh, 'b');
    await fx.client.write(b.handle, 0, Buffer.from('old content'), StableHow.FILE_SYNC);
    const res = await fx.client.rename(d.fh, 'a', d.fh, 'b');
    expect(res.toDirWcc.after?.type).toBe(FileType.DIR);
    await expect(fx.client.lookup(d.fh, 'a')).rejects.toMatchObject({ code: 'ENOENT' });
    const nowB = await fx.client.lookup(d.fh, 'b');
    expect(nowB.attrs?.fileid).toBe((await fx.client.getattr(a.handle)).fileid);
    expect(fs.readFileSync(path.join(d.local, 'b'), 'utf8')).toBe('new');
  });

  test('RENAME between directories moves the entry', async () => {
    const d = await freshDir();
    const x = await fx.client.mkdir(d.fh, 'x');
    const y = await fx.client.mkdir(d.fh, 'y');
    await fx.client.create(x.handle, 'f');
    await fx.client.rename(x.handle, 'f', y.handle, 'g');
    expect(fs.existsSync(path.join(d.local, 'y', 'g'))).toBe(true);
    expect(fs.existsSync(path.join(d.local, 'x', 'f'))).toBe(false);
  });

  test('RENAME of a directory over a non-empty directory fails with ENOTEMPTY or EEXIST', async () => {
    const d = await freshDir();
    await fx.client.mkdir(d.fh, 'src');
    const dst = await fx.client.mkdir(d.fh, 'dst');
    await fx.client.create(dst.handle, 'keep');
    const err = await fx.client.rename(d.fh, 'src', d.fh, 'dst').catch((e: NfsError) => e);
    expect(['ENOTEMPTY', 'EEXIST']).toContain((err as NfsError).code);
  });

  test('LINK makes a second name for the same file and raises nlink', async () => {
    const d = await freshDir();
    const f = await fx.client.create(d.fh, 'f');
    const res = await fx.client.link(f.handle, d.fh, 'g');
    expect(res.attrs?.nlink).toBe(2);
    const g = await fx.client.lookup(d.fh, 'g');
    expect(g.attrs?.fileid).toBe(res.attrs?.fileid);
    expect(fs.statSync(path.join(d.local, 'f')).ino).toBe(fs.statSync(path.join(d.local, 'g')).ino);
    await expect(fx.client.link(f.handle, d.fh, 'g')).rejects.toMatchObject({ code: 'EEXIST' });
  });

  test('SETATTR changes mode and truncates or extends the size', async () => {
    const d = await freshDir();
    const f = await fx.client.create(d.fh, 'f', { mode: 'guarded', attrs: { mode: 0o644 } });
    await fx.client.write(f.handle, 0, Buffer.from('0123456789'), StableHow.FILE_SYNC);
    const wcc = await fx.client.setattr(f.handle, { mode: 0o600, size: 4 });
    expect(wcc.after?.mode).toBe(0o600);
    expect(wcc.after?.size).toBe(4);
    expect(fs.readFileSync(path.join(d.local, 'f'), 'utf8')).toBe('0123');
    await fx.client.setattr(f.handle, { size: 100 });
    expect(fs.statSync(path.join(d.local, 'f')).size).toBe(100);
  });

  test('SETATTR sets times given by the client and by the server', async () => {
    const d = await freshDir();
    const f = await fx.client.create(d.fh, 'f');
    await fx.client.setattr(f.handle, { mtime: { seconds: 1_000_000_000, nseconds: 0 }, atime: 'server' });
    const a = await fx.client.getattr(f.handle);
    expect(a.mtime.seconds).toBe(1_000_000_000);
    expect(Math.abs(a.atime.seconds - Date.now() / 1000)).toBeLessThan(60);
  });

  test('SETATTR of a time NFSv3 cannot carry fails with EOVERFLOW naming the range, and the last second it can carry is set', async () => {
    const d = await freshDir();
    const f = await fx.client.create(d.fh, 'f');
    for (const seconds of [2 ** 32, -1, 2 ** 40]) {
      await expect(fx.client.setattr(f.handle, { mtime: { seconds, nseconds: 0 } })).rejects.toMatchObject({ code: 'EOVERFLOW', message: expect.stringMatching(/1970 to 2106/) });
    }
    await fx.client.setattr(f.handle, { mtime: { seconds: 2 ** 32 - 1, nseconds: 0 } });
    expect((await fx.client.getattr(f.handle)).mtime.seconds).toBe(2 ** 32 - 1);
    expect(fs.statSync(path.join(d.local, 'f')).mtimeMs).toBe((2 ** 32 - 1) * 1000);
  });

  test('SETATTR with a stale ctime guard fails with ENOTSYNC', async () => {
    const d = await freshDir();
    const f = await fx.client.create(d.fh, 'f');
    await expect(fx.client.setattr(f.handle, { mode: 0o600 }, { seconds: 1, nseconds: 0 })).rejects.toMatchObject({
      code: 'ENOTSYNC',
    });
    const ctime = (await fx.client.getattr(f.handle)).ctime;
    await expect(fx.client.setattr(f.handle, { mode: 0o600 }, ctime)).resolves.toBeDefined();
  });

  test('WRITE and READ of a small range, with eof at the end of the file', async () => {
    const d = await freshDir();
    const f = await fx.client.create(d.fh, 'f');
    const w = await fx.client.write(f.handle, 3, Buffer.from('abc'), StableHow.FILE_SYNC);
    expect(w.count).toBe(3);
    expect(w.committed).toBe(StableHow.FILE_SYNC);
    expect(w.verifier.length).toBe(8);
    const r = await fx.client.read(f.handle, 0, 100);
    expect(r.data.equals(Buffer.from('\0\0\0abc'))).toBe(true);
    expect(r.eof).toBe(true);
    const part = await fx.client.read(f.handle, 0, 2);
    expect(part.eof).toBe(false);
  });

  test('READ of a directory fails with EISDIR', async () => {
    const d = await freshDir();
    await expect(fx.client.read(d.fh, 0, 10)).rejects.toMatchObject({ code: 'EISDIR' });
  });

  test('FSSTAT reports sizes consistent with the local file system', async () => {
    const st = await fx.client.fsstat(fx.client.root);
    const local = fs.statfsSync(fx.server.exportDir);
    expect(st.totalBytes).toBe(local.blocks * local.bsize);
    expect(st.freeBytes).toBeLessThanOrEqual(st.totalBytes);
    expect(st.availBytes).toBeLessThanOrEqual(st.freeBytes);
    expect(st.totalFiles).toBeGreaterThan(0);
  });

  test('FSINFO reports transfer sizes that the client honours', async () => {
    const info = await fx.client.fsinfo(fx.client.root);
    expect(info.rtmax).toBeGreaterThanOrEqual(4096);
    expect(info.wtmax).toBeGreaterThanOrEqual(4096);
    expect(info.properties & (FSF_LINK | FSF_SYMLINK)).toBe(FSF_LINK | FSF_SYMLINK);
    expect(fx.client.readSize).toBeLessThanOrEqual(info.rtmax);
    expect(fx.client.writeSize).toBeLessThanOrEqual(info.wtmax);
  });

  test('PATHCONF reports link and name limits', async () => {
    const pc = await fx.client.pathconf(fx.client.root);
    expect(pc.linkMax).toBeGreaterThan(1);
    expect(pc.nameMax).toBeGreaterThanOrEqual(255);
    expect(pc.casePreserving).toBe(true);
  });

  test('a garbage file handle fails with ESTALE or EBADHANDLE', async () => {
    const err = await fx.client.getattr(Buffer.alloc(24, 0x5a)).catch((e: NfsError) => e);
    expect(['ESTALE', 'EBADHANDLE']).toContain((err as NfsError).code);
  });

  test('the handle of a removed file turns stale', async () => {
    const d = await freshDir();
    const f = await fx.client.create(d.fh, 'f');
    await fx.client.remove(d.fh, 'f');
    await expect(fx.client.getattr(f.handle)).rejects.toMatchObject({ code: 'ESTALE' });
  });
});
