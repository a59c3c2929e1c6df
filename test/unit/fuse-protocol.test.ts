/**
 * The FUSE protocol encoders and decoders (src/fuse) against the layouts of linux/fuse.h, and the
 * inode table of the userspace NFS server (src/fuse-nfs/nodes.ts). The same code is driven through
 * a real kernel mount by the nfs tier (test/nfs/fuse).
 */
import { defaultErrnoOf, FuseError } from '../../src/fuse';
import { packDirents } from '../../src/fuse/dirents';
import type { DirEntry, Entry } from '../../src/fuse/ops';
import { Attr, direntSize, encodeAttrOut, encodeStatfs, ENTRY_OUT_SIZE, readInHeader, readName, writeEntryOut } from '../../src/fuse/protocol';
import { InodeTable } from '../../src/fuse-nfs/nodes';
import { FileType, type Fattr } from '../../src/nfs';

const attr: Attr = {
  ino: 0x1_0000_0002n,
  size: 5 * 2 ** 32 + 7,
  blocks: 16,
  atime: { seconds: 1_700_000_000, nseconds: 1 },
  mtime: { seconds: 1_700_000_001, nseconds: 2 },
  ctime: { seconds: 1_700_000_002, nseconds: 999_999_999 },
  mode: 0o100644,
  nlink: 3,
  uid: 1000,
  gid: 1001,
  rdev: 0,
  blksize: 1 << 20,
};

test('a request header decodes as struct fuse_in_header (40 bytes, little-endian)', () => {
  const b = Buffer.alloc(40);
  b.writeUInt32LE(56, 0);
  b.writeUInt32LE(1, 4);
  b.writeBigUInt64LE(0xdead_beefn, 8);
  b.writeBigUInt64LE(42n, 16);
  b.writeUInt32LE(1000, 24);
  b.writeUInt32LE(1001, 28);
  b.writeUInt32LE(4242, 32);
  expect(readInHeader(b)).toEqual({ len: 56, opcode: 1, unique: 0xdead_beefn, nodeid: 42, uid: 1000, gid: 1001, pid: 4242 });
});

test('an attribute answer puts each field where struct fuse_attr_out has it, 64-bit sizes included', () => {
  const b = encodeAttrOut(attr, 1250);
  expect(b.length).toBe(104);
  expect(b.readBigUInt64LE(0)).toBe(1n); // attr_valid seconds
  expect(b.readUInt32LE(8)).toBe(250_000_000); // attr_valid_nsec
  const a = 16;
  expect(b.readBigUInt64LE(a)).toBe(0x1_0000_0002n);
  expect(b.readBigUInt64LE(a + 8)).toBe(BigInt(5 * 2 ** 32 + 7));
  expect(b.readBigUInt64LE(a + 16)).toBe(16n);
  expect(b.readBigUInt64LE(a + 40)).toBe(1_700_000_002n);
  expect(b.readUInt32LE(a + 56)).toBe(999_999_999);
  expect(b.readUInt32LE(a + 60)).toBe(0o100644);
  expect([b.readUInt32LE(a + 64), b.readUInt32LE(a + 68), b.readUInt32LE(a + 72)]).toEqual([3, 1000, 1001]);
  expect(b.readUInt32LE(a + 80)).toBe(1 << 20);
});

test('an entry answer carries the node ID and both cache lifetimes', () => {
  const b = Buffer.alloc(ENTRY_OUT_SIZE);
  writeEntryOut(b, 0, 7, 3, 2500, 0, attr);
  expect(b.readBigUInt64LE(0)).toBe(7n);
  expect(b.readBigUInt64LE(8)).toBe(3n);
  expect([b.readBigUInt64LE(16), b.readUInt32LE(32)]).toEqual([2n, 500_000_000]);
  expect([b.readBigUInt64LE(24), b.readUInt32LE(36)]).toEqual([0n, 0]);
  expect(b.readBigUInt64LE(40)).toBe(0x1_0000_0002n);
});

test('statfs answers keep counts past 32 bits (a 100 TiB export)', () => {
  const blocks = (100 * 2 ** 40) / 4096;
  const b = encodeStatfs({ blocks, bfree: blocks / 2, bavail: blocks / 4, files: 2 ** 33, ffree: 2 ** 32 + 1, bsize: 4096, frsize: 4096, namelen: 255 });
  expect(b.readBigUInt64LE(0)).toBe(BigInt(blocks));
  expect(b.readBigUInt64LE(32)).toBe(BigInt(2 ** 32 + 1));
  expect([b.readUInt32LE(40), b.readUInt32LE(44), b.readUInt32LE(48)]).toEqual([4096, 255, 4096]);
});

test('names are read up to their terminating NUL, one after another, as their bytes', () => {
  const b = Buffer.concat([Buffer.from('old\0névé\0'), Buffer.from([0x62, 0xff, 0, 0x62, 0xfe, 0])]);
  const first = readName(b, 0);
  expect(first.name).toEqual(Buffer.from('old'));
  const second = readName(b, first.next);
  expect(second.name).toEqual(Buffer.from('névé'));
  // Names that are not UTF-8 stay apart (decoding would make both "b\uFFFD").
  const third = readName(b, second.next);
  expect(third.name).toEqual(Buffer.from([0x62, 0xff]));
  expect(readName(b, third.next).name).toEqual(Buffer.from([0x62, 0xfe]));
});

test('directory entries are padded to 8 bytes', () => {
  expect([direntSize(1), direntSize(8), direntSize(9), direntSize(255)]).toEqual([32, 32, 40, 280]);
});

describe('packDirents', () => {
  const entries = (n: number, lookups: string[]): DirEntry[] =>
    ['.', '..', ...Array.from({ length: n }, (_, i) => `file-${i}`)].map((name, i) => ({
      name,
      ino: i + 10,
      mode: name.startsWith('.') ? 0o40755 : 0o100644,
      offset: i + 1,
      lookup: (): Entry => {
        lookups.push(name);
        return { nodeid: i + 100, attr };
      },
    }));

  test('stops at the first entry that does not fit, and takes lookups only for entries sent', () => {
    const lookups: string[] = [];
    const out = packDirents(entries(100, lookups), 4096, true, 1000, 1000);
    const each = ENTRY_OUT_SIZE + direntSize('file-0'.length);
    const sent = Math.floor((4096 - 2 * (ENTRY_OUT_SIZE + 32)) / each);
    expect(out.length).toBe(2 * (ENTRY_OUT_SIZE + 32) + sent * each);
    // "." and ".." are sent with node ID 0 and no lookup: the kernel does not count them.
    expect(lookups).toEqual(Array.from({ length: sent }, (_, i) => `file-${i}`));
    expect(out.readBigUInt64LE(0)).toBe(0n);
    // The last entry's cookie resumes after it.
    const lastDirent = out.length - direntSize(`file-${sent - 1}`.length);
    expect(out.readBigUInt64LE(lastDirent + 8)).toBe(BigInt(sent + 2));
    expect(out.readUInt32LE(lastDirent + 20)).toBe(8); // DT_REG
  });

  test('plain READDIR entries carry inode, type and name, and no lookups', () => {
    const lookups: string[] = [];
    const out = packDirents(entries(3, lookups), 4096, false, 1000, 1000);
    expect(lookups).toEqual([]);
    expect(out.length).toBe(2 * 32 + 3 * direntSize(6));
    expect(out.readUInt32LE(20)).toBe(4); // "." is DT_DIR
    expect(out.toString('utf8', 64 + 24, 64 + 24 + 6)).toBe('file-0');
  });
});

test('errors become errno numbers: codes by name, numbers as they are, EIO otherwise', () => {
  expect(defaultErrnoOf(new FuseError('ENOENT'))).toBe(2);
  expect(defaultErrnoOf({ code: -13 })).toBe(13);
  expect(defaultErrnoOf(new Error('boom'))).toBe(5);
});

describe('InodeTable', () => {
  const fattr = (fileid: number, nlink = 1): Fattr => ({
    type: FileType.REG, mode: 0o644, nlink, uid: 0, gid: 0, size: 0, used: 0, rdev: { major: 0, minor: 0 },
    fsid: 1n, fileid: BigInt(fileid), atime: { seconds: 0, nseconds: 0 }, mtime: { seconds: 0, nseconds: 0 }, ctime: { seconds: 0, nseconds: 0 },
  });

  test('one handle is one node however often it is looked up, until the kernel forgets every lookup', () => {
    const t = new InodeTable(Buffer.from('root'), fattr(1), 1000);
    const a = t.remember(Buffer.from('aa'), fattr(2));
    expect(t.remember(Buffer.from('aa'), fattr(2)).id).toBe(a.id);
    expect(t.remember(Buffer.from('bb'), fattr(3)).id).not.toBe(a.id);
    t.forget(a.id, 1);
    expect(t.get(a.id)).toBe(a);
    t.forget(a.id, 1);
    expect(t.get(a.id)).toBeUndefined();
    // The root is never forgotten.
    t.forget(1, 10);
    expect(t.get(1)).toBe(t.root);
  });

  test('cached attributes expire with their lifetime, with a change to the file, and with any unlink or rename', () => {
    const t = new InodeTable(Buffer.from('root'), fattr(1), 60_000);
    const a = t.remember(Buffer.from('aa'), fattr(2, 2));
    expect(t.fresh(a)?.nlink).toBe(2);
    t.namespaceChanged();
    expect(t.fresh(a)).toBeUndefined();
    t.setAttrs(a, fattr(2, 1));
    expect(t.fresh(a)?.nlink).toBe(1);
    t.stale(a);
    expect(t.fresh(a)).toBeUndefined();
  });
});
