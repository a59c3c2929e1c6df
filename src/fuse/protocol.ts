/**
 * The FUSE kernel protocol (linux/fuse.h, protocol 7.33 as this library speaks it): opcodes, flags,
 * and the little-endian structures read from and written to /dev/fuse. Nothing here does I/O.
 */

export const KERNEL_MAJOR = 7;
/** The minor version this library implements; the kernel speaks the lower of its own and this. */
/**
 * 7.33 for HANDLE_KILLPRIV_V2 (the kernel tells the filesystem which writes, truncates and chowns
 * must clear set-ID bits); 7.32's additions (submounts, fuse_attr.flags) are unused, so requests
 * and answers have the 7.31 layout otherwise.
 */
export const KERNEL_MINOR = 33;
export const ROOT_ID = 1;

export enum Op {
  LOOKUP = 1,
  FORGET = 2,
  GETATTR = 3,
  SETATTR = 4,
  READLINK = 5,
  SYMLINK = 6,
  MKNOD = 8,
  MKDIR = 9,
  UNLINK = 10,
  RMDIR = 11,
  RENAME = 12,
  LINK = 13,
  OPEN = 14,
  READ = 15,
  WRITE = 16,
  STATFS = 17,
  RELEASE = 18,
  FSYNC = 20,
  SETXATTR = 21,
  GETXATTR = 22,
  LISTXATTR = 23,
  REMOVEXATTR = 24,
  FLUSH = 25,
  INIT = 26,
  OPENDIR = 27,
  READDIR = 28,
  RELEASEDIR = 29,
  FSYNCDIR = 30,
  GETLK = 31,
  SETLK = 32,
  SETLKW = 33,
  ACCESS = 34,
  CREATE = 35,
  INTERRUPT = 36,
  BMAP = 37,
  DESTROY = 38,
  IOCTL = 39,
  POLL = 40,
  NOTIFY_REPLY = 41,
  BATCH_FORGET = 42,
  FALLOCATE = 43,
  READDIRPLUS = 44,
  RENAME2 = 45,
  LSEEK = 46,
  COPY_FILE_RANGE = 47,
}

/** FUSE_INIT capability flags. */
export const Init = {
  ASYNC_READ: 1 << 0,
  POSIX_LOCKS: 1 << 1,
  ATOMIC_O_TRUNC: 1 << 3,
  EXPORT_SUPPORT: 1 << 4,
  BIG_WRITES: 1 << 5,
  DONT_MASK: 1 << 6,
  FLOCK_LOCKS: 1 << 10,
  AUTO_INVAL_DATA: 1 << 12,
  DO_READDIRPLUS: 1 << 13,
  READDIRPLUS_AUTO: 1 << 14,
  ASYNC_DIO: 1 << 15,
  WRITEBACK_CACHE: 1 << 16,
  PARALLEL_DIROPS: 1 << 18,
  HANDLE_KILLPRIV: 1 << 19,
  ABORT_ERROR: 1 << 21,
  MAX_PAGES: 1 << 22,
  CACHE_SYMLINKS: 1 << 23,
  HANDLE_KILLPRIV_V2: 1 << 28,
} as const;

/** SETATTR `valid` bits. */
export const Fattr = {
  MODE: 1 << 0,
  UID: 1 << 1,
  GID: 1 << 2,
  SIZE: 1 << 3,
  ATIME: 1 << 4,
  MTIME: 1 << 5,
  FH: 1 << 6,
  ATIME_NOW: 1 << 7,
  MTIME_NOW: 1 << 8,
  CTIME: 1 << 10,
  /** Clear set-ID bits: a truncate by a writer without CAP_FSETID, or any chown (HANDLE_KILLPRIV_V2). */
  KILL_SUIDGID: 1 << 11,
} as const;

/** WRITE `write_flags`: the writer lacks CAP_FSETID, so set-ID bits must go (FUSE_WRITE_KILL_SUIDGID; direct I/O, and every write with HANDLE_KILLPRIV_V2). */
export const WRITE_KILL_PRIV = 1 << 2;
export const FOPEN_DIRECT_IO = 1 << 0;
export const FOPEN_KEEP_CACHE = 1 << 1;
export const FSYNC_FDATASYNC = 1 << 0;
export const GETATTR_FH = 1 << 0;
export const RENAME_NOREPLACE = 1 << 0;
export const RENAME_EXCHANGE = 1 << 1;

export const IN_HEADER_SIZE = 40;
export const OUT_HEADER_SIZE = 16;
export const ATTR_SIZE = 88;
export const ENTRY_OUT_SIZE = 40 + ATTR_SIZE;
export const ATTR_OUT_SIZE = 16 + ATTR_SIZE;
export const OPEN_OUT_SIZE = 16;
export const INIT_OUT_SIZE = 64;
export const STATFS_OUT_SIZE = 80;
export const WRITE_IN_SIZE = 40;
/** The kernel refuses a read buffer smaller than this. */
export const MIN_READ_BUFFER = 8192;

export interface InHeader {
  len: number;
  opcode: number;
  unique: bigint;
  nodeid: number;
  uid: number;
  gid: number;
  pid: number;
}

export function readInHeader(b: Buffer): InHeader {
  return {
    len: b.readUInt32LE(0),
    opcode: b.readUInt32LE(4),
    unique: b.readBigUInt64LE(8),
    nodeid: Number(b.readBigUInt64LE(16)),
    uid: b.readUInt32LE(24),
    gid: b.readUInt32LE(28),
    pid: b.readUInt32LE(32),
  };
}

export function writeOutHeader(b: Buffer, len: number, error: number, unique: bigint): void {
  b.writeUInt32LE(len, 0);
  b.writeInt32LE(error, 4);
  b.writeBigUInt64LE(unique, 8);
}

/** Seconds and nanoseconds, as the kernel stores timestamps. */
export interface Timespec {
  seconds: number;
  nseconds: number;
}

/** What the kernel is told about an inode. */
export interface Attr {
  ino: bigint | number;
  size: number;
  /** 512-byte blocks in use. */
  blocks: number;
  atime: Timespec;
  mtime: Timespec;
  ctime: Timespec;
  /** File type and permission bits, as st_mode. */
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  blksize: number;
}

const u64 = (b: Buffer, v: number | bigint, off: number) => b.writeBigUInt64LE(BigInt(v), off);
const secs = (t: Timespec) => Math.max(0, Math.floor(t.seconds));
const nsecs = (t: Timespec) => Math.min(999_999_999, Math.max(0, Math.floor(t.nseconds)));

export function writeAttr(b: Buffer, off: number, a: Attr): void {
  u64(b, a.ino, off);
  u64(b, Math.max(0, a.size), off + 8);
  u64(b, Math.max(0, a.blocks), off + 16);
  u64(b, secs(a.atime), off + 24);
  u64(b, secs(a.mtime), off + 32);
  u64(b, secs(a.ctime), off + 40);
  b.writeUInt32LE(nsecs(a.atime), off + 48);
  b.writeUInt32LE(nsecs(a.mtime), off + 52);
  b.writeUInt32LE(nsecs(a.ctime), off + 56);
  b.writeUInt32LE(a.mode >>> 0, off + 60);
  b.writeUInt32LE(a.nlink >>> 0, off + 64);
  b.writeUInt32LE(a.uid >>> 0, off + 68);
  b.writeUInt32LE(a.gid >>> 0, off + 72);
  b.writeUInt32LE(a.rdev >>> 0, off + 76);
  b.writeUInt32LE(a.blksize >>> 0, off + 80);
  b.writeUInt32LE(0, off + 84);
}

/** A cache lifetime in milliseconds as the kernel's seconds + nanoseconds pair. */
function writeValid(b: Buffer, secOff: number, nsecOff: number, ms: number): void {
  const whole = Math.floor(ms / 1000);
  u64(b, whole, secOff);
  b.writeUInt32LE(Math.round((ms - whole * 1000) * 1e6), nsecOff);
}

export function writeEntryOut(b: Buffer, off: number, nodeid: number, generation: number, entryTtlMs: number, attrTtlMs: number, attr: Attr): void {
  u64(b, nodeid, off);
  u64(b, generation, off + 8);
  writeValid(b, off + 16, off + 32, entryTtlMs);
  writeValid(b, off + 24, off + 36, attrTtlMs);
  writeAttr(b, off + 40, attr);
}

export function encodeAttrOut(attr: Attr, attrTtlMs: number): Buffer {
  const b = Buffer.alloc(ATTR_OUT_SIZE);
  writeValid(b, 0, 8, attrTtlMs);
  writeAttr(b, 16, attr);
  return b;
}

export function encodeOpenOut(fh: number, openFlags: number): Buffer {
  const b = Buffer.alloc(OPEN_OUT_SIZE);
  u64(b, fh, 0);
  b.writeUInt32LE(openFlags, 8);
  return b;
}

export interface Statfs {
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  bsize: number;
  frsize: number;
  namelen: number;
}

export function encodeStatfs(s: Statfs): Buffer {
  const b = Buffer.alloc(STATFS_OUT_SIZE);
  const n = (v: number) => Math.max(0, Math.floor(v));
  u64(b, n(s.blocks), 0);
  u64(b, n(s.bfree), 8);
  u64(b, n(s.bavail), 16);
  u64(b, n(s.files), 24);
  u64(b, n(s.ffree), 32);
  b.writeUInt32LE(s.bsize, 40);
  b.writeUInt32LE(s.namelen, 44);
  b.writeUInt32LE(s.frsize, 48);
  return b;
}

/** Size of one fuse_dirent with its name, padded to 8 bytes. */
export function direntSize(nameBytes: number): number {
  return (24 + nameBytes + 7) & ~7;
}

/** Writes a fuse_dirent at `off`; returns the offset after it. */
export function writeDirent(b: Buffer, off: number, ino: bigint | number, nextOffset: number, type: number, name: Buffer): number {
  u64(b, ino, off);
  u64(b, nextOffset, off + 8);
  b.writeUInt32LE(name.length, off + 16);
  b.writeUInt32LE(type, off + 20);
  name.copy(b, off + 24);
  const end = off + direntSize(name.length);
  b.fill(0, off + 24 + name.length, end);
  return end;
}

/**
 * A null-terminated name at `off` in a request body, as its bytes: Linux names are any bytes but
 * '/' and NUL, not necessarily UTF-8. A copy, so it outlives the request buffer.
 */
export function readName(b: Buffer, off: number): { name: Buffer; next: number } {
  let end = b.indexOf(0, off);
  if (end < 0) end = b.length;
  return { name: Buffer.from(b.subarray(off, end)), next: end + 1 };
}
