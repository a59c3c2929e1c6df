import type { Attr, Statfs } from '../fuse';
import { Fattr, FileType, FsStat } from '../nfs';

const TYPE_BITS: Record<number, number> = {
  [FileType.REG]: 0o100000,
  [FileType.DIR]: 0o040000,
  [FileType.BLK]: 0o060000,
  [FileType.CHR]: 0o020000,
  [FileType.LNK]: 0o120000,
  [FileType.SOCK]: 0o140000,
  [FileType.FIFO]: 0o010000,
};

/** st_blksize: what applications (cp, dd, stdio) size their buffers by. */
const BLKSIZE = 1024 * 1024;

/** st_mode of NFS attributes (type bits + permission bits). */
export function modeOf(a: Fattr): number {
  return (TYPE_BITS[a.type] ?? 0) | (a.mode & 0o7777);
}

/**
 * A device number as FUSE carries it (the kernel's new_encode_dev: 12-bit major, 20-bit minor,
 * the minor's low byte at the bottom).
 */
export function encodeDev(d: { major: number; minor: number }): number {
  return ((d.minor & 0xff) | ((d.major & 0xfff) << 8) | ((d.minor & 0xfff00) << 12)) >>> 0;
}

export function decodeDev(rdev: number): { major: number; minor: number } {
  return { major: (rdev >>> 8) & 0xfff, minor: (rdev & 0xff) | ((rdev >>> 12) & 0xfff00) };
}

/** NFS attributes as the kernel's inode attributes. `minSize` accounts for writes not yet on the server. */
export function toAttr(a: Fattr, minSize = 0): Attr {
  const size = Math.max(a.size, minSize);
  return {
    ino: a.fileid,
    size,
    blocks: Math.ceil(Math.max(a.used, minSize > a.size ? size : 0) / 512),
    atime: a.atime,
    mtime: a.mtime,
    ctime: a.ctime,
    mode: modeOf(a),
    nlink: a.nlink,
    uid: a.uid,
    gid: a.gid,
    rdev: encodeDev(a.rdev),
    blksize: BLKSIZE,
  };
}

/** FSSTAT as statvfs, in 4 KiB fragments (the counts are 64-bit). */
export function toStatfs(s: FsStat): Statfs {
  const frsize = 4096;
  return {
    bsize: frsize,
    frsize,
    blocks: s.totalBytes / frsize,
    bfree: s.freeBytes / frsize,
    bavail: s.availBytes / frsize,
    files: s.totalFiles,
    ffree: s.freeFiles,
    namelen: 255,
  };
}
