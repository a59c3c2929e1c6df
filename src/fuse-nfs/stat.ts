import type { FuseStat, FuseStatfs } from 'fuse-native';
import { Fattr, FileType, FsStat, NfsTime } from '../nfs';

const TYPE_BITS: Record<number, number> = {
  [FileType.REG]: 0o100000,
  [FileType.DIR]: 0o040000,
  [FileType.BLK]: 0o060000,
  [FileType.CHR]: 0o020000,
  [FileType.LNK]: 0o120000,
  [FileType.SOCK]: 0o140000,
  [FileType.FIFO]: 0o010000,
};

const ms = (t: NfsTime): number => t.seconds * 1000 + Math.floor(t.nseconds / 1e6);

/** NFS attributes as the stat FUSE passes to the kernel. `minSize` accounts for writes not yet on the server. */
export function toStat(a: Fattr, minSize = 0): FuseStat {
  const size = Math.max(a.size, minSize);
  return {
    mode: (TYPE_BITS[a.type] ?? 0) | (a.mode & 0o7777),
    uid: a.uid,
    gid: a.gid,
    size,
    nlink: a.nlink,
    // fuse-native passes 32 bits; servers use small inode numbers in practice.
    ino: Number(a.fileid & 0xffffffffn),
    rdev: ((a.rdev.major & 0xfff) << 8) | (a.rdev.minor & 0xff),
    // st_blksize: what applications (cp, dd, stdio) size their buffers by.
    blksize: 128 * 1024,
    blocks: Math.ceil(Math.max(a.used, minSize > a.size ? size : 0) / 512),
    atime: ms(a.atime),
    mtime: ms(a.mtime),
    ctime: ms(a.ctime),
  };
}

/** FSSTAT as statvfs, with the fragment size raised until the counts fit fuse-native's 32 bits. */
export function toStatfs(s: FsStat): FuseStatfs {
  let frsize = 4096;
  while (s.totalBytes / frsize > 0xffffffff) frsize *= 2;
  const clamp = (n: number) => Math.min(0xffffffff, Math.max(0, Math.floor(n)));
  return {
    // Some readers (Node's statfs among them) multiply blocks by bsize, others (df) by frsize.
    bsize: frsize,
    frsize,
    blocks: clamp(s.totalBytes / frsize),
    bfree: clamp(s.freeBytes / frsize),
    bavail: clamp(s.availBytes / frsize),
    files: clamp(s.totalFiles),
    ffree: clamp(s.freeFiles),
    favail: clamp(s.availFiles),
    fsid: 0,
    flag: 0,
    namemax: 255,
  };
}
