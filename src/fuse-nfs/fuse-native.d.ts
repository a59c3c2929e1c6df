// Types for the parts of fuse-native 2.2.6 (plain JavaScript, no bundled types) that netvol uses.
declare module 'fuse-native' {
  type Cb<T extends unknown[] = []> = (code: number, ...result: T) => void;

  export interface FuseStat {
    mode: number;
    uid: number;
    gid: number;
    size: number;
    dev?: number;
    nlink: number;
    ino?: number;
    rdev?: number;
    blksize?: number;
    blocks?: number;
    /** Milliseconds since the epoch, or a Date. */
    atime: number | Date;
    mtime: number | Date;
    ctime: number | Date;
  }

  export interface FuseStatfs {
    bsize: number;
    frsize: number;
    blocks: number;
    bfree: number;
    bavail: number;
    files: number;
    ffree: number;
    favail: number;
    fsid: number;
    flag: number;
    namemax: number;
  }

  /** Each callback takes 0 or a negative errno first; read and write take the byte count instead. */
  export interface FuseOps {
    init?(cb: Cb): void;
    statfs?(path: string, cb: Cb<[FuseStatfs?]>): void;
    getattr?(path: string, cb: Cb<[FuseStat?]>): void;
    readdir?(path: string, cb: Cb<[string[]?, FuseStat[]?]>): void;
    open?(path: string, flags: number, cb: Cb<[number?]>): void;
    create?(path: string, mode: number, cb: Cb<[number?]>): void;
    read?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrErrno: number) => void): void;
    write?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrErrno: number) => void): void;
    flush?(path: string, fd: number, cb: Cb): void;
    fsync?(path: string, datasync: number, fd: number, cb: Cb): void;
    release?(path: string, fd: number, cb: Cb): void;
    truncate?(path: string, size: number, cb: Cb): void;
    ftruncate?(path: string, fd: number, size: number, cb: Cb): void;
    unlink?(path: string, cb: Cb): void;
    rmdir?(path: string, cb: Cb): void;
    mkdir?(path: string, mode: number, cb: Cb): void;
    rename?(src: string, dest: string, cb: Cb): void;
    link?(existing: string, newPath: string, cb: Cb): void;
    symlink?(target: string, linkPath: string, cb: Cb): void;
    readlink?(path: string, cb: Cb<[string?]>): void;
    chmod?(path: string, mode: number, cb: Cb): void;
    chown?(path: string, uid: number, gid: number, cb: Cb): void;
    utimens?(path: string, atime: number, mtime: number, cb: Cb): void;
  }

  export interface FuseOptions {
    /** Milliseconds before fuse-native answers a request with ETIMEDOUT itself; false: never. */
    timeout?: number | false;
    allowOther?: boolean;
    defaultPermissions?: boolean;
    maxRead?: number;
    fsname?: string;
    subtype?: string;
    attrTimeout?: number;
    entryTimeout?: number;
    debug?: boolean;
  }

  class Fuse {
    constructor(mnt: string, ops: FuseOps, opts?: FuseOptions);
    readonly mnt: string;
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err: Error | null) => void): void;
    /** The `-o…` string handed to libfuse. */
    protected _fuseOptions(): string;
  }
  export = Fuse;
}
