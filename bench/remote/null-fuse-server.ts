#!/usr/bin/env node
/**
 * The FUSE ceiling for the nfs section: a FUSE filesystem served by netvol's own FUSE library
 * (src/fuse) that does no work, so sequential I/O through it costs only the kernel's FUSE path
 * and the library. Its root holds one regular file `f`: WRITEs are taken and dropped, the size is
 * the largest end written since the last truncate, and READs return zeros up to it.
 *
 *   node dist-bench/bench/remote/null-fuse-server.js MOUNTPOINT
 *
 * It runs in a process of its own (a FUSE server that does I/O on its own mount deadlocks) and
 * mounts and negotiates exactly as netvol's userspace NFS server does (src/fuse-nfs/main.ts):
 * the same request readers and libuv pool, 1 MiB WRITEs and READs, readahead raised to 4 MiB,
 * the same cache lifetimes and mount options. Prints one JSON line `{"event":"mounted",…}` once
 * it serves; exits 0 when the mount goes away (umount -l), SIGTERM, or the bench that started it
 * is gone (it then unmounts itself).
 */
// First: the pool size must be set before libuv's pool starts. The module netvol's server uses,
// so the ceiling has the same readers and threads as what it is compared with.
import { FUSE_READERS } from '../../src/fuse-nfs/threadpool';
import { Attr, Context, DirEntry, Entry, FuseError, FuseOps, FuseSession, mountFuse, Opened, ROOT_ID, setReadahead, Statfs, unmountFuse } from '../../src/fuse';

/** As src/fuse-nfs/main.ts: the protocol's largest WRITE and READ, and 4 of them of readahead. */
const MAX_IO = 1024 * 1024;
const READAHEAD = 4 * MAX_IO;
const TTL_MS = 1000;
const FILE_ID = 2;
const FILE_NAME = 'f';
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

/** The one file and the folder holding it; nothing is stored. */
class NullFilesystem {
  private size = 0;
  private readonly zeros = Buffer.alloc(MAX_IO);
  private readonly born = { seconds: Math.floor(Date.now() / 1000), nseconds: 0 };

  private attr(nodeid: number): Attr {
    const t = this.born;
    if (nodeid === ROOT_ID) return { ino: ROOT_ID, size: 4096, blocks: 8, atime: t, mtime: t, ctime: t, mode: S_IFDIR | 0o755, nlink: 2, uid: 0, gid: 0, rdev: 0, blksize: MAX_IO };
    if (nodeid === FILE_ID) return { ino: FILE_ID, size: this.size, blocks: Math.ceil(this.size / 512), atime: t, mtime: t, ctime: t, mode: S_IFREG | 0o644, nlink: 1, uid: 0, gid: 0, rdev: 0, blksize: MAX_IO };
    throw new FuseError('ENOENT');
  }

  private fileEntry(): Entry {
    return { nodeid: FILE_ID, attr: this.attr(FILE_ID) };
  }

  ops(): FuseOps {
    const only = (parent: number, name: Buffer): void => {
      if (parent !== ROOT_ID || name.toString() !== FILE_NAME) throw new FuseError('ENOENT');
    };
    return {
      lookup: async (_c: Context, parent: number, name: Buffer) => {
        only(parent, name);
        return this.fileEntry();
      },
      getattr: async (_c: Context, nodeid: number) => this.attr(nodeid),
      setattr: async (_c: Context, nodeid: number, changes) => {
        if (nodeid === FILE_ID && changes.size !== undefined) this.size = changes.size;
        return this.attr(nodeid);
      },
      open: async (): Promise<Opened> => ({ fh: 1 }),
      create: async (_c: Context, parent: number, name: Buffer) => {
        if (parent !== ROOT_ID || name.toString() !== FILE_NAME) throw new FuseError('EACCES', `only ${FILE_NAME} exists here`);
        return { entry: this.fileEntry(), opened: { fh: 1 } };
      },
      read: async (_c: Context, _nodeid: number, _fh: number, offset: number, size: number) => this.zeros.subarray(0, Math.max(0, Math.min(size, this.size - offset, MAX_IO))),
      write: async (_c: Context, _nodeid: number, _fh: number, offset: number, data: Buffer) => {
        this.size = Math.max(this.size, offset + data.length);
        return data.length;
      },
      flush: async () => undefined,
      fsync: async () => undefined,
      release: async () => undefined,
      readdir: async (_c: Context, nodeid: number, _fh: number, offset: number): Promise<DirEntry[]> => {
        if (nodeid !== ROOT_ID) throw new FuseError('ENOTDIR');
        const all: DirEntry[] = [
          { name: '.', ino: ROOT_ID, mode: S_IFDIR, offset: 1 },
          { name: '..', ino: ROOT_ID, mode: S_IFDIR, offset: 2 },
          { name: FILE_NAME, ino: FILE_ID, mode: S_IFREG, offset: 3, lookup: () => this.fileEntry() },
        ];
        return all.slice(offset);
      },
      statfs: async (): Promise<Statfs> => ({ blocks: 1 << 30, bfree: 1 << 30, bavail: 1 << 30, files: 1 << 20, ffree: 1 << 20, bsize: 4096, frsize: 4096, namelen: 255 }),
    };
  }
}

function say(fields: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ pid: process.pid, ...fields })}\n`);
}

async function main(): Promise<void> {
  const mountpoint = process.argv[2];
  if (!mountpoint) throw new Error('usage: null-fuse-server.js MOUNTPOINT');
  const parent = process.ppid;
  const fd = await mountFuse(mountpoint, { fsname: 'netvol-bench-null', subtype: 'netvol-null', allowOther: true, defaultPermissions: true, maxRead: MAX_IO });
  const session = new FuseSession(fd, new NullFilesystem().ops(), { maxWrite: MAX_IO, maxReadahead: MAX_IO, entryTtlMs: TTL_MS, attrTtlMs: TTL_MS, readers: FUSE_READERS });
  const negotiated = new Promise<unknown>((resolve) => {
    session.once('init', resolve);
    setTimeout(() => resolve(undefined), 5000).unref();
  });
  let stopping = false;
  // umount(8) runs in a child, so this process goes on answering while it looks at the mountpoint.
  const stop = async (why: string, code = 0): Promise<void> => {
    if (stopping) return;
    stopping = true;
    say({ event: 'stopping', why });
    await unmountFuse(mountpoint);
    process.exit(code);
  };
  session.on('close', () => process.exit(0));
  session.on('error', (err) => say({ event: 'error', error: String((err as Error)?.message ?? err) }));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  // No mount outlives the bench: a killed bench leaves this process with another parent.
  setInterval(() => process.ppid !== parent && void stop('the bench is gone'), 1000).unref();
  session.start();
  const init = await negotiated;
  if (!init) return stop('the kernel did not start the FUSE session within 5 s', 4);
  const readahead = setReadahead(mountpoint, READAHEAD) ? READAHEAD : undefined;
  say({ event: 'mounted', mountpoint, fuse: init, readahead, threadpool: process.env.UV_THREADPOOL_SIZE });
}

main().catch((err) => {
  say({ event: 'crash', error: (err as Error)?.stack ?? String(err) });
  process.exit(1);
});
