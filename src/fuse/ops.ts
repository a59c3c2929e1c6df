import type { Attr, Statfs, Timespec } from './protocol';

/** Who asked: the calling process's ids, as the kernel sends them with every request. */
export interface Context {
  uid: number;
  gid: number;
  pid: number;
}

/** A name resolved to an inode. Each Entry returned counts one lookup of `nodeid` until a FORGET. */
export interface Entry {
  nodeid: number;
  generation?: number;
  attr: Attr;
  /** Override the session's cache lifetimes for this answer. */
  entryTtlMs?: number;
  attrTtlMs?: number;
}

export interface Opened {
  fh: number;
  /** Keep the kernel's page cache of the file across opens (default: dropped at each open). */
  keepCache?: boolean;
  /** Bypass the page cache for this open file. */
  directIo?: boolean;
}

export interface SetattrChanges {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  /** 'now' asks for the server's (or caller's) current time. */
  atime?: Timespec | 'now';
  mtime?: Timespec | 'now';
  /** The open file the change came through (ftruncate, futimens), when the kernel says. */
  fh?: number;
  /**
   * Clear set-ID bits as well: a truncate by a process without CAP_FSETID, or a chown of a file
   * that is not a folder (the kernel leaves this to the filesystem, see WriteFlags.killPriv).
   */
  killSuidgid?: boolean;
}

/** What the kernel says about a WRITE besides its data. */
export interface WriteFlags {
  /**
   * The writer may not keep set-ID bits (it lacks CAP_FSETID): clear set-user-ID, and set-group-ID
   * when the group may execute or the writer is not in the file's group, as a local disk does.
   * The session negotiates HANDLE_KILLPRIV_V2, so the kernel asks this on every write path
   * (page cache and direct I/O) instead of sending a SETATTR of the mode itself.
   */
  killPriv: boolean;
}

/** One directory entry as readdir returns it; `offset` is the cookie that resumes after it. */
export interface DirEntry {
  /** The name's bytes (a string is sent as UTF-8). */
  name: Buffer | string;
  ino: bigint | number;
  /** st_mode file-type bits (S_IFDIR…), or 0 when unknown. */
  mode: number;
  offset: number;
  /**
   * For READDIRPLUS: called only for entries that fit in the reply, so the lookup it counts is one
   * the kernel will FORGET. Returns undefined when the entry has no attributes to offer.
   */
  lookup?: () => Entry | undefined;
}

/**
 * The low-level filesystem a session serves: inode numbers, not paths. Every method may throw an
 * error the session turns into an errno (see SessionOptions.errnoOf); a method left out answers
 * ENOSYS, which makes the kernel fall back or stop asking where it can.
 */
/**
 * Names and symlink targets reach the operations as the bytes the application used: Linux names
 * are any bytes but '/' and NUL, so decoding them (as UTF-8) would merge different names.
 */
/** READ data whose memory goes back to its owner (a buffer pool) once the answer is sent. */
export interface Lent {
  data: Buffer;
  giveBack(): void;
}

export interface FuseOps {
  lookup?(ctx: Context, parent: number, name: Buffer): Promise<Entry>;
  /** The kernel dropped `nlookup` references to `nodeid`. No answer is sent. */
  forget?(nodeid: number, nlookup: number): void;
  getattr?(ctx: Context, nodeid: number, fh?: number): Promise<Attr>;
  setattr?(ctx: Context, nodeid: number, changes: SetattrChanges): Promise<Attr>;
  readlink?(ctx: Context, nodeid: number): Promise<Buffer | string>;
  symlink?(ctx: Context, parent: number, name: Buffer, target: Buffer): Promise<Entry>;
  mknod?(ctx: Context, parent: number, name: Buffer, mode: number, rdev: number): Promise<Entry>;
  mkdir?(ctx: Context, parent: number, name: Buffer, mode: number): Promise<Entry>;
  unlink?(ctx: Context, parent: number, name: Buffer): Promise<void>;
  rmdir?(ctx: Context, parent: number, name: Buffer): Promise<void>;
  rename?(ctx: Context, parent: number, name: Buffer, newParent: number, newName: Buffer, flags: number): Promise<void>;
  link?(ctx: Context, nodeid: number, newParent: number, newName: Buffer): Promise<Entry>;
  open?(ctx: Context, nodeid: number, flags: number): Promise<Opened>;
  create?(ctx: Context, parent: number, name: Buffer, mode: number, flags: number): Promise<{ entry: Entry; opened: Opened }>;
  /**
   * Returns at most `size` bytes; fewer only at the end of the file. A `Lent` answer lends its
   * memory: the session calls `giveBack` once the kernel has copied the data.
   */
  read?(ctx: Context, nodeid: number, fh: number, offset: number, size: number): Promise<Buffer | Lent>;
  /**
   * `data` belongs to the filesystem from here on (it may keep it). Returns the bytes taken.
   * `giveBack`, when given, lends the memory: call it once nothing will read `data` again, and the
   * session reads a later request into it (not calling it is safe: the memory is then freed).
   */
  write?(ctx: Context, nodeid: number, fh: number, offset: number, data: Buffer, giveBack?: () => void, flags?: WriteFlags): Promise<number>;
  flush?(ctx: Context, nodeid: number, fh: number): Promise<void>;
  fsync?(ctx: Context, nodeid: number, fh: number, datasync: boolean): Promise<void>;
  release?(ctx: Context, nodeid: number, fh: number): Promise<void>;
  opendir?(ctx: Context, nodeid: number): Promise<Opened>;
  /** Entries after cookie `offset` (0: from the start); the session packs as many as fit. */
  readdir?(ctx: Context, nodeid: number, fh: number, offset: number, plus: boolean): Promise<DirEntry[]>;
  releasedir?(ctx: Context, nodeid: number, fh: number): Promise<void>;
  statfs?(ctx: Context, nodeid: number): Promise<Statfs>;
  /** The kernel is going away (unmount). */
  destroy?(): void;
}
