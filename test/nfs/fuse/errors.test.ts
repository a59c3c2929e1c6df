/**
 * Errors reach applications as the errno they expect: server statuses mapped one to one, a full
 * disk on the server as ENOSPC from write, fsync or close, with the data written before intact.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { constants } from 'node:os';
import { NfsError, RpcError } from '../../../src/nfs';
import { toErrno } from '../../../src/fuse-nfs/errno';
import { GaneshaServer, startGanesha } from '../../harness/ganesha';
import { FuseMount, mountFolder } from './support/fuse-mount';

const E = constants.errno;

test('server statuses map to the errno of the same meaning, and NFS-only ones to what the kernel client uses', () => {
  expect(toErrno(new NfsError(2, 'NFS3.LOOKUP'))).toBe(-E.ENOENT);
  expect(toErrno(new NfsError(13, 'NFS3.ACCESS'))).toBe(-E.EACCES);
  expect(toErrno(new NfsError(17, 'NFS3.CREATE'))).toBe(-E.EEXIST);
  expect(toErrno(new NfsError(28, 'NFS3.WRITE'))).toBe(-E.ENOSPC);
  expect(toErrno(new NfsError(66, 'NFS3.RMDIR'))).toBe(-E.ENOTEMPTY);
  expect(toErrno(new NfsError(69, 'NFS3.WRITE'))).toBe(-E.EDQUOT);
  expect(toErrno(new NfsError(70, 'NFS3.GETATTR'))).toBe(-E.ESTALE);
  expect(toErrno(new NfsError(10001, 'NFS3.GETATTR'))).toBe(-E.ESTALE);
  expect(toErrno(new NfsError(10004, 'NFS3.SETATTR'))).toBe(-E.EOPNOTSUPP);
  expect(toErrno(new NfsError(10006, 'NFS3.READ'))).toBe(-E.EIO);
  expect(toErrno(new RpcError('ECLOSED', 'closed'))).toBe(-E.ENOTCONN);
  expect(toErrno(new Error('no code'))).toBe(-E.EIO);
});

describe('on a server whose disk fills up', () => {
  let g: GaneshaServer;
  let m: FuseMount;
  let base: string;
  let dir: string;

  beforeAll(async () => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'nvfuse-full-'));
    const img = path.join(base, 'disk.img');
    dir = path.join(base, 'mnt');
    fs.mkdirSync(dir);
    execFileSync('truncate', ['-s', '32M', img]);
    execFileSync('mkfs.ext4', ['-q', '-F', '-m', '0', img]);
    execFileSync('mount', ['-o', 'loop', img, dir]);
    g = await startGanesha({ exportDir: dir });
    m = await mountFolder(g, 'vol');
  }, 120_000);

  afterAll(async () => {
    await m?.unmount();
    await g?.stop();
    if (dir) execFileSync('umount', ['-l', dir]);
    if (base) fs.rmSync(base, { recursive: true, force: true });
  });

  test('writing past the free space fails with ENOSPC (from write, fsync or close) and an earlier file keeps its content', () => {
    const early = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < early.length; i++) early[i] = (i * 31) & 0xff;
    fs.writeFileSync(path.join(m.mountpoint, 'early'), early);
    let failure: NodeJS.ErrnoException | undefined;
    let fd: number | undefined;
    try {
      fd = fs.openSync(path.join(m.mountpoint, 'filler'), 'w');
      const chunk = Buffer.alloc(1024 * 1024, 0x42);
      for (let i = 0; i < 64; i++) fs.writeSync(fd, chunk);
      fs.fsyncSync(fd);
    } catch (err) {
      failure = err as NodeJS.ErrnoException;
    } finally {
      if (fd !== undefined) {
        try {
          fs.closeSync(fd);
        } catch (err) {
          failure ??= err as NodeJS.ErrnoException;
        }
      }
    }
    expect(failure?.code).toBe('ENOSPC');
    expect(fs.readFileSync(path.join(m.mountpoint, 'early')).equals(early)).toBe(true);
    expect(fs.readFileSync(path.join(dir, 'vol', 'early')).equals(early)).toBe(true);
    fs.unlinkSync(path.join(m.mountpoint, 'filler'));
    fs.writeFileSync(path.join(m.mountpoint, 'after'), 'room again');
    expect(fs.readFileSync(path.join(dir, 'vol', 'after'), 'utf8')).toBe('room again');
  });
});
