import { constants, readFileSync } from 'node:fs';
import { Attr, Context, DirEntry, Entry, FuseOps, Lent, Opened, RENAME_EXCHANGE, RENAME_NOREPLACE, SetattrChanges, Statfs, Timespec, WriteFlags } from '../fuse';
import { Fattr, FileType, NfsClient, NfsTime, Sattr, WccData, readdirIterate } from '../nfs';
import { FsError } from './errno';
import { Inode, InodeTable } from './nodes';
import { hard, RetryPolicy } from './retry';
import { decodeDev, modeOf, toAttr, toStatfs } from './stat';
import { UNLINKED_DIR, UnlinkedFiles } from './unlinked';
import { FileWriter, isGone } from './write-back';

export interface FilesystemSettings {
  /** How long this process trusts attributes it fetched (the kernel is told the same). */
  attrTtlMs: number;
  /** WRITEs in flight per file. */
  maxWritesInFlight: number;
  /** Unstable bytes per file before a COMMIT is forced. */
  commitEvery: number;
  /** How long after the last close a file's data is committed (fsync commits at once). */
  commitDelayMs: number;
  /** The AUTH_SYS identity calls are made with: files created by another caller are then given to that caller. */
  identity: { uid: number; gid: number };
  retry: RetryPolicy;
  log: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

interface OpenFile {
  inode: Inode;
  writer: FileWriter | undefined;
}

interface OpenDir {
  inode: Inode;
  /** The listing, read whole at the first READDIR from offset 0; offsets are indexes + 1. */
  entries?: DirEntry[];
}

const O_EXCL = constants.O_EXCL;
const O_TRUNC = constants.O_TRUNC;
/** The access-mode bits of open(2) flags (Node's constants do not name them). */
const O_ACCMODE = 3;
const S_ISUID = 0o4000;
const S_ISGID = 0o2000;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
/** st_mode file types MKNOD makes. */
const SPECIAL_TYPES: Record<number, FileType.CHR | FileType.BLK | FileType.SOCK | FileType.FIFO> = {
  0o020000: FileType.CHR,
  0o060000: FileType.BLK,
  0o140000: FileType.SOCK,
  0o010000: FileType.FIFO,
};
const UNLINKED_NAME = Buffer.from(UNLINKED_DIR);
/** COMMITs of closed files sent at once. */
const COMMITS_AT_ONCE = 8;
/** Entries handed to the session per READDIR (it packs what fits in the kernel's buffer). */
const DIR_WINDOW = 1024;

/**
 * What OPEN and CREATE answer. A file opened write-only is opened for direct I/O: the kernel hands
 * the application's buffers straight to us instead of copying them into its page cache first
 * (such a descriptor cannot read or map the file, so that cache would serve nobody). That saves a
 * copy and the cache's memory per byte written: dd's own CPU time for 1 GiB fell from 0.3-1.0 s
 * to under 0.1 s, and the write ran up to 1.2 times faster side by side. Descriptors that may
 * read keep the page cache, readahead and mmap.
 */
function opened(fh: number, flags: number): Opened {
  return { fh, directIo: (flags & O_ACCMODE) === constants.O_WRONLY };
}

/**
 * The FUSE low-level operations, served from one folder of an NFSv3 export over the project's
 * client library. Runs in its own process (fuse-nfs/main.ts) and never touches its own mountpoint.
 */
export class NfsFilesystem {
  private readonly inodes: InodeTable;
  private readonly files = new Map<number, OpenFile>();
  private readonly dirs = new Map<number, OpenDir>();
  private readonly writers = new Map<string, FileWriter>();
  private nextFh = 1;
  private ownerRefused = false;
  /** Closed files whose data is on the server but not yet committed, and the timer that commits them. */
  private readonly toCommit = new Map<string, FileWriter>();
  private commitTimer: NodeJS.Timeout | undefined;
  readonly unlinked: UnlinkedFiles;

  constructor(
    private readonly client: NfsClient,
    root: { handle: Buffer; attrs?: Fattr },
    private readonly s: FilesystemSettings,
  ) {
    this.inodes = new InodeTable(root.handle, root.attrs, s.attrTtlMs);
    this.unlinked = new UnlinkedFiles(client, root.handle);
  }

  /**
   * The folder of open-but-unlinked files does not exist for applications: looking it up finds
   * nothing, and it cannot be made, removed or renamed.
   */
  private reserved(parent: number, name: Buffer, code: 'ENOENT' | 'EPERM'): void {
    if (parent === 1 && name.equals(UNLINKED_NAME)) throw new FsError(code, `${UNLINKED_DIR} is reserved for files removed while open`);
  }

  /** One server call, retried through outages. */
  private call<T>(what: string, fn: (repeat: boolean) => Promise<T>): Promise<T> {
    return hard(what, this.s.retry, fn);
  }

  private inode(id: number): Inode {
    const n = this.inodes.get(id);
    // The kernel asked about a node it had forgotten: only a kernel bug does that.
    if (!n) throw new FsError('ESTALE', `unknown node ${id}`);
    return n;
  }

  private async fattr(n: Inode): Promise<Fattr> {
    const fresh = this.inodes.fresh(n);
    if (fresh) return fresh;
    const a = await this.call('GETATTR', () => this.client.getattr(n.handle));
    this.inodes.setAttrs(n, a);
    return a;
  }

  /** The file's write-behind, made at its first write (hard links share it). */
  private writerFor(n: Inode): FileWriter {
    let w = this.writers.get(n.key);
    if (!w) {
      w = new FileWriter(this.client, n.handle, {
        writeSize: this.client.writeSize,
        maxInFlight: this.s.maxWritesInFlight,
        commitEvery: this.s.commitEvery,
        call: (what, fn) => this.call(what, fn),
        onResend: (bytes, writes) => this.s.log('warn', 'the write verifier changed (the server restarted): sending uncommitted data again', { bytes, writes }),
        // The size may lag WRITEs still in flight: attrOf() raises it to the writer's end.
        onAttrs: (attrs) => this.inodes.setAttrs(n, attrs),
      });
      this.writers.set(n.key, w);
    }
    return w;
  }

  /**
   * Kernel attributes: while a writer exists its end is authoritative for the size (WRITEs may
   * still be on their way), and while its data is on the way the file was modified when it was
   * written, as the server will say once the data lands (the kernel keeps what it is told for the
   * attribute timeout, so old times would outlive the write).
   */
  private attrOf(n: Inode, a: Fattr): Attr {
    const w = this.writers.get(n.key);
    const attr = toAttr(a, w ? w.end : 0);
    if (w?.busy && w.writtenAt) {
      attr.mtime = later(attr.mtime, w.writtenAt);
      attr.ctime = later(attr.ctime, w.writtenAt);
    }
    // Its hidden name is no link an application made.
    if (n.hidden) attr.nlink = Math.max(0, attr.nlink - 1);
    return attr;
  }

  /** A reply naming a file: counts one lookup the kernel will FORGET. */
  private async entryFor(handle: Buffer, attrs: Fattr | undefined): Promise<Entry> {
    const a = attrs ?? (await this.call('GETATTR', () => this.client.getattr(handle)));
    const n = this.inodes.remember(handle, a);
    return { nodeid: n.id, attr: this.attrOf(n, a) };
  }

  private afterDirChange(dir: Inode, wcc: WccData | undefined): void {
    if (wcc?.after) this.inodes.setAttrs(dir, wcc.after);
    else this.inodes.stale(dir);
  }

  /**
   * Who a new file in `dir` belongs to: the caller, with the folder's group when it has the
   * set-group-ID bit (as a local filesystem does). Undefined fields: the server's default (the
   * identity calls are made with) is already right.
   */
  private async ownerFor(ctx: Context, dir: Inode): Promise<{ uid?: number; gid?: number; setgid: boolean }> {
    // The server creates as the backend identity and applies the folder's set-group-ID itself.
    if (ctx.uid === this.s.identity.uid && ctx.gid === this.s.identity.gid) return { setgid: false };
    const d = await this.fattr(dir).catch(() => undefined);
    const setgid = d !== undefined && (d.mode & S_ISGID) !== 0;
    const gid = setgid ? d.gid : ctx.gid;
    return {
      uid: ctx.uid !== this.s.identity.uid ? ctx.uid : undefined,
      gid: gid !== this.s.identity.gid ? gid : undefined,
      setgid,
    };
  }

  /** Gives a new file to its creator; a server that refuses (root squash) leaves it to netvol's identity, said once. */
  private async chownNew(handle: Buffer, owner: { uid?: number; gid?: number }): Promise<{ after?: Fattr } | undefined> {
    if ((owner.uid === undefined && owner.gid === undefined) || this.ownerRefused) return undefined;
    try {
      const wcc = await this.call('SETATTR', () => this.client.setattr(handle, { uid: owner.uid, gid: owner.gid }));
      return { after: wcc.after };
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== 'EPERM' && code !== 'EACCES') throw err;
      this.ownerRefused = true;
      this.s.log('warn', 'the server does not let netvol give new files to their creator (root squash?); they keep the backend identity', {
        uid: this.s.identity.uid,
        gid: this.s.identity.gid,
      });
      return undefined;
    }
  }

  /** CREATE, MKDIR, SYMLINK and MKNOD: the call, recognising a resent one the server already carried out, then the owner. */
  private async make(ctx: Context, parent: number, name: Buffer, what: 'CREATE' | 'MKDIR' | 'SYMLINK' | 'MKNOD', fn: (dir: Buffer, attrs: Sattr) => Promise<{ handle: Buffer; attrs?: Fattr; dirWcc: WccData }>, mode: number | undefined): Promise<Entry> {
    this.reserved(parent, name, 'EPERM');
    const dir = this.inode(parent);
    const owner = await this.ownerFor(ctx, dir);
    const attrs: Sattr = {};
    if (mode !== undefined) attrs.mode = (mode & 0o7777) | (what === 'MKDIR' && owner.setgid ? S_ISGID : 0);
    const res = await this.call(what, async (repeat) => {
      try {
        return await fn(dir.handle, attrs);
      } catch (err) {
        // A call the server carried out before the connection dropped: the file is ours.
        if (repeat && codeOf(err) === 'EEXIST') return { ...(await this.client.lookup(dir.handle, name)), dirWcc: undefined };
        throw err;
      }
    });
    this.afterDirChange(dir, res.dirWcc);
    const chowned = await this.chownNew(res.handle, owner);
    let after = chowned ? chowned.after : res.attrs;
    // The server's chown cleared the set-ID bits the creator asked for (as chown(2) does): they
    // are the creator's to keep, so they go back once the file is theirs.
    const asked = attrs.mode;
    if (chowned && asked !== undefined && asked & (S_ISUID | S_ISGID) && (after === undefined || (after.mode & 0o7777) !== asked)) {
      after = (await this.call('SETATTR', () => this.client.setattr(res.handle, { mode: asked }))).after;
    }
    return this.entryFor(res.handle, after);
  }

  private addFile(inode: Inode): number {
    inode.opens++;
    const fh = this.nextFh;
    this.nextFh = this.nextFh >= Number.MAX_SAFE_INTEGER ? 1 : this.nextFh + 1;
    this.files.set(fh, { inode, writer: undefined });
    return fh;
  }

  private file(fh: number): OpenFile {
    const f = this.files.get(fh);
    if (!f) throw new FsError('EBADF');
    return f;
  }

  // ---------------------------------------------------------------------------------------------
  // operations

  async lookup(_ctx: Context, parent: number, name: Buffer): Promise<Entry> {
    this.reserved(parent, name, 'ENOENT');
    const dir = this.inode(parent);
    const r = await this.call('LOOKUP', () => this.client.lookup(dir.handle, name));
    if (r.dirAttrs) this.inodes.setAttrs(dir, r.dirAttrs);
    return this.entryFor(r.handle, r.attrs);
  }

  forget(nodeid: number, nlookup: number): void {
    this.inodes.forget(nodeid, nlookup);
  }

  async getattr(_ctx: Context, nodeid: number): Promise<Attr> {
    const n = this.inode(nodeid);
    if (n.removed && n.attrs) return removedDir(this.attrOf(n, n.attrs));
    try {
      return this.attrOf(n, await this.fattr(n));
    } catch (err) {
      // A folder still open here that the server no longer knows was removed (here or elsewhere):
      // its descriptors see an empty folder with no links, as on a local disk.
      if (!isGone(err) || !n.attrs || n.attrs.type !== FileType.DIR || ![...this.dirs.values()].some((d) => d.inode === n)) throw err;
      n.removed = true;
      return removedDir(this.attrOf(n, n.attrs));
    }
  }

  async setattr(ctx: Context, nodeid: number, c: SetattrChanges): Promise<Attr> {
    const n = this.inode(nodeid);
    const attrs: Sattr = {};
    if (c.mode !== undefined) attrs.mode = c.mode & 0o7777;
    if (c.killSuidgid) {
      // A chown comes with the flag whoever makes it: root keeps a set-group-ID without group execute.
      const a = n.attrs ?? (await this.fattr(n));
      const from = attrs.mode ?? a.mode & 0o7777;
      const to = withoutSetId(from, a.gid, ctx, c.size === undefined && ctx.uid === 0);
      if (to !== from) attrs.mode = to;
    }
    if (c.uid !== undefined) attrs.uid = c.uid;
    if (c.gid !== undefined) attrs.gid = c.gid;
    if (c.atime !== undefined || c.mtime !== undefined) {
      // A symlink's own times: some servers answer OK and keep them (nfs-ganesha's VFS backend).
      // Sent as explicit times they can be checked below; the server's clock cannot be.
      const link = (n.attrs ?? (await this.fattr(n))).type === FileType.LNK;
      const when = (t: Timespec | 'now'): NfsTime | 'server' => (t !== 'now' ? t : link ? nowTime() : 'server');
      if (c.atime !== undefined) attrs.atime = when(c.atime);
      if (c.mtime !== undefined) attrs.mtime = when(c.mtime);
    }
    const w = c.size !== undefined ? this.writers.get(n.key) : undefined;
    if (c.size !== undefined) {
      // Data on its way must land before the size changes, or it would land after a truncate.
      if (w) await w.commit();
      attrs.size = c.size;
    } else if (attrs.mtime !== undefined || attrs.atime !== undefined) {
      // Data on its way must land before times are set, or its WRITEs would stamp the server's
      // clock over them (tar writes a file, sets its times on the open descriptor, then closes).
      const pending = this.writers.get(n.key);
      if (pending?.busy) await pending.drain();
    }
    if (Object.keys(attrs).length === 0) return this.touchCtime(n);
    const wcc = await this.call('SETATTR', () => this.client.setattr(n.handle, attrs));
    if (w && c.size !== undefined) w.end = c.size;
    this.inodes.stale(n);
    if (wcc.after) this.inodes.setAttrs(n, wcc.after);
    const after = wcc.after ?? (await this.fattr(n));
    const delta = this.client.fsInfo?.timeDelta;
    if (!applied(attrs.atime, after.atime, delta) || !applied(attrs.mtime, after.mtime, delta)) {
      throw new FsError('EOPNOTSUPP', 'the NFS server answered OK to setting these times but kept the old ones');
    }
    return this.attrOf(n, after);
  }

  /**
   * A change that changes nothing (chown(f, -1, -1)) still marks the file changed on a local disk.
   * NFSv3 has no call for the change time alone: the owner is set to itself, guarded by the
   * change time just read, so that an owner given meanwhile by someone else is not undone (the
   * change time has then moved already).
   */
  private async touchCtime(n: Inode): Promise<Attr> {
    const a = await this.call('GETATTR', () => this.client.getattr(n.handle));
    this.inodes.setAttrs(n, a);
    try {
      const wcc = await this.call('SETATTR', () => this.client.setattr(n.handle, { uid: a.uid }, a.ctime));
      if (wcc.after) this.inodes.setAttrs(n, wcc.after);
      else this.inodes.stale(n);
    } catch (err) {
      if (codeOf(err) !== 'ENOTSYNC') throw err;
      this.inodes.stale(n);
    }
    return this.attrOf(n, await this.fattr(n));
  }

  async readlink(_ctx: Context, nodeid: number): Promise<Buffer> {
    const n = this.inode(nodeid);
    return this.call('READLINK', () => this.client.readlinkRaw(n.handle));
  }

  symlink(ctx: Context, parent: number, name: Buffer, target: Buffer): Promise<Entry> {
    return this.make(ctx, parent, name, 'SYMLINK', (dir) => this.client.symlink(dir, name, target), undefined);
  }

  mkdir(ctx: Context, parent: number, name: Buffer, mode: number): Promise<Entry> {
    return this.make(ctx, parent, name, 'MKDIR', (dir, attrs) => this.client.mkdir(dir, name, attrs), mode);
  }

  /**
   * A regular file (CREATE), or a special file (NFSv3 MKNOD): the server keeps only the node. A
   * FIFO's or a socket's data passes between processes of this host in the kernel, as on a local
   * disk; a device node opens the host's device of that number.
   */
  async mknod(ctx: Context, parent: number, name: Buffer, mode: number, rdev: number): Promise<Entry> {
    const format = mode & S_IFMT;
    if (format === S_IFREG || format === 0) return this.make(ctx, parent, name, 'CREATE', (dir, attrs) => this.client.create(dir, name, { mode: 'guarded', attrs }), mode);
    const type = SPECIAL_TYPES[format];
    if (type === undefined) throw new FsError('EINVAL', `cannot make a file of type 0${format.toString(8)}`);
    const dev = decodeDev(rdev);
    return this.make(
      ctx,
      parent,
      name,
      'MKNOD',
      (dir, attrs) => this.client.mknod(dir, name, type === FileType.CHR || type === FileType.BLK ? { type, attrs, rdev: dev } : { type, attrs }),
      mode,
    );
  }

  async create(ctx: Context, parent: number, name: Buffer, mode: number, flags: number): Promise<{ entry: Entry; opened: Opened }> {
    let entry: Entry;
    try {
      entry = await this.make(ctx, parent, name, 'CREATE', (dir, attrs) => this.client.create(dir, name, { mode: 'guarded', attrs }), mode);
    } catch (err) {
      // Made by someone else since the kernel looked: open it, as open(2) without O_EXCL does.
      if ((flags & O_EXCL) !== 0 || codeOf(err) !== 'EEXIST') throw err;
      entry = await this.lookup(ctx, parent, name);
      if ((flags & O_TRUNC) !== 0) entry.attr = await this.setattr(ctx, entry.nodeid, { size: 0 });
    }
    return { entry, opened: opened(this.addFile(this.inode(entry.nodeid)), flags) };
  }

  async open(_ctx: Context, nodeid: number, flags: number): Promise<Opened> {
    return opened(this.addFile(this.inode(nodeid)), flags);
  }

  /**
   * The kernel asks for at most max_read (the server's rtmax here), so one READ answers it and its
   * record goes to the device as is, back to the pool once copied; a shorter answer (not at the end
   * of the file) is completed by more calls and copied into one buffer.
   */
  async read(_ctx: Context, _nodeid: number, fh: number, offset: number, size: number): Promise<Buffer | Lent> {
    const f = this.file(fh);
    const w = this.writers.get(f.inode.key);
    if (w?.busy) await w.drain();
    const readAt = (at: number) => this.call('READ', () => this.client.readLent(f.inode.handle, at, Math.min(size - (at - offset), this.client.readSize)));
    const first = await readAt(offset);
    if (first.eof || first.data.length === 0 || first.data.length >= size) return { data: first.data, giveBack: first.release };
    const parts = [first];
    let done = first.data.length;
    try {
      while (done < size) {
        const res = await readAt(offset + done);
        parts.push(res);
        done += res.data.length;
        if (res.eof || res.data.length === 0) break;
      }
      return Buffer.concat(parts.map((p) => p.data));
    } finally {
      for (const p of parts) p.release();
    }
  }

  async write(ctx: Context, _nodeid: number, fh: number, offset: number, data: Buffer, giveBack?: () => void, flags?: WriteFlags): Promise<number> {
    const f = this.file(fh);
    if (flags?.killPriv) await this.dropSetId(ctx, f.inode);
    if (!f.writer) {
      f.writer = this.writerFor(f.inode);
      f.writer.refs++;
    }
    this.inodes.stale(f.inode);
    return f.writer.write(offset, data, true, giveBack);
  }

  /**
   * A write by a process that may not keep set-ID bits: clears them as a local disk does (the
   * server cannot: every call reaches it as netvol's identity). Set-user-ID always goes;
   * set-group-ID when the group may execute, or when the writer is not in the file's group.
   */
  private async dropSetId(ctx: Context, n: Inode): Promise<void> {
    // The mode the last answer carried (WRITE replies keep it current): no GETATTR per write.
    const a = n.attrs ?? (await this.fattr(n));
    const mode = withoutSetId(a.mode & 0o7777, a.gid, ctx, false);
    if (mode === (a.mode & 0o7777)) return;
    const wcc = await this.call('SETATTR', () => this.client.setattr(n.handle, { mode }));
    this.inodes.setAttrs(n, wcc.after ?? { ...a, mode });
  }

  async flush(_ctx: Context, _nodeid: number, fh: number): Promise<void> {
    const f = this.files.get(fh);
    if (f?.writer) await f.writer.drain();
  }

  async fsync(_ctx: Context, _nodeid: number, fh: number): Promise<void> {
    const f = this.file(fh);
    const w = f.writer ?? this.writers.get(f.inode.key);
    if (w) await w.commit();
    else await this.call('COMMIT', () => this.client.commit(f.inode.handle, 0, 0));
  }

  async release(_ctx: Context, _nodeid: number, fh: number): Promise<void> {
    const f = this.files.get(fh);
    if (!f) return;
    this.files.delete(fh);
    const w = f.writer;
    if (w) w.refs--;
    if (--f.inode.opens <= 0 && f.inode.hidden) return this.reap(f.inode);
    if (!w) return;
    // close(2) waited for the data to reach the server (FLUSH). Making it durable there waits a
    // moment and goes with other files' (a COMMIT is an fsync on the server, one per file of a
    // `tar -x` otherwise), as a local disk's writeback does; fsync(2) still commits at once.
    if (w.refs <= 0) this.commitLater(f.inode.key, w);
  }

  /** The last close of a file unlinked while open: its hidden name goes, and with it (usually) the file. */
  private async reap(n: Inode): Promise<void> {
    const hidden = n.hidden as string;
    n.hidden = undefined;
    const a = await this.call('GETATTR', () => this.client.getattr(n.handle)).catch(() => undefined);
    // Linked again meanwhile (linkat of /proc/self/fd/N): the file lives on under its new name.
    if (!a || a.nlink <= 1) this.discardWriter(n.key);
    else {
      const w = this.writers.get(n.key);
      if (w && w.refs <= 0) this.commitLater(n.key, w);
    }
    try {
      const folder = await this.unlinked.folder();
      await this.call('REMOVE', async (repeat) => {
        try {
          return await this.client.remove(folder, hidden);
        } catch (err) {
          if (repeat && codeOf(err) === 'ENOENT') return undefined;
          throw err;
        }
      });
    } catch (err) {
      this.s.log('warn', 'cannot remove a file unlinked while open; the next mount removes it', { name: hidden, error: String((err as Error)?.message ?? err) });
    }
    this.inodes.namespaceChanged();
  }

  /** Forgets the data queued for a file that no longer exists (nobody has it open). */
  private discardWriter(key: string): void {
    const w = this.writers.get(key);
    if (!w || w.refs > 0) return;
    w.discard();
    this.writers.delete(key);
    this.toCommit.delete(key);
  }

  private commitLater(key: string, w: FileWriter): void {
    this.toCommit.set(key, w);
    this.commitTimer ??= setTimeout(() => void this.commitPending(), this.s.commitDelayMs);
  }

  /** COMMITs released files, a few at a time; a writer goes once nothing of it is left to send. */
  private async commitPending(): Promise<void> {
    this.commitTimer = undefined;
    const batch = [...this.toCommit];
    this.toCommit.clear();
    for (let i = 0; i < batch.length; i += COMMITS_AT_ONCE) {
      await Promise.all(
        batch.slice(i, i + COMMITS_AT_ONCE).map(async ([key, w]) => {
          try {
            await w.commit();
          } catch (err) {
            // Removed before its data was committed: the data went with it, as on a local disk.
            if (!isGone(err)) this.s.log('error', 'cannot commit a closed file; its data stays queued for the next commit', { error: String((err as Error)?.message ?? err) });
          } finally {
            if (w.refs <= 0 && !w.dirty && this.writers.get(key) === w) this.writers.delete(key);
          }
        }),
      );
    }
  }

  async opendir(_ctx: Context, nodeid: number): Promise<Opened> {
    const fh = this.nextFh++;
    this.dirs.set(fh, { inode: this.inode(nodeid) });
    return { fh, keepCache: false };
  }

  async readdir(_ctx: Context, nodeid: number, fh: number, offset: number): Promise<DirEntry[]> {
    const d = this.dirs.get(fh) ?? { inode: this.inode(nodeid) };
    if (!d.entries || offset === 0) d.entries = await this.list(d.inode);
    return d.entries.slice(offset, offset + DIR_WINDOW);
  }

  private async list(dir: Inode): Promise<DirEntry[]> {
    const dirAttrs = await this.fattr(dir);
    const found = await this.call('READDIRPLUS', async () => {
      const out = [];
      for await (const e of readdirIterate(this.client, dir.handle)) out.push(e);
      return out;
    });
    const dirMode = modeOf(dirAttrs);
    const list: DirEntry[] = [
      { name: '.', ino: dirAttrs.fileid, mode: dirMode, offset: 1 },
      { name: '..', ino: dirAttrs.fileid, mode: dirMode, offset: 2 },
    ];
    for (const e of found) {
      if (e.name === '.' || e.name === '..' || (dir.id === 1 && e.name === UNLINKED_DIR)) continue;
      const { handle, attrs } = e;
      list.push({
        name: e.rawName,
        ino: e.fileid,
        mode: attrs ? modeOf(attrs) : 0,
        offset: list.length + 1,
        lookup: handle && attrs ? () => this.direntLookup(handle, attrs) : undefined,
      });
    }
    return list;
  }

  private direntLookup(handle: Buffer, attrs: Fattr): Entry {
    const n = this.inodes.remember(handle, attrs);
    return { nodeid: n.id, attr: this.attrOf(n, attrs) };
  }

  async releasedir(_ctx: Context, _nodeid: number, fh: number): Promise<void> {
    this.dirs.delete(fh);
  }

  async statfs(): Promise<Statfs> {
    const st = await this.call('FSSTAT', () => this.client.fsstat(this.inodes.root.handle));
    return toStatfs(st);
  }

  async link(_ctx: Context, nodeid: number, newParent: number, newName: Buffer): Promise<Entry> {
    this.reserved(newParent, newName, 'EPERM');
    const target = this.inode(nodeid);
    const dir = this.inode(newParent);
    const res = await this.call('LINK', async (repeat) => {
      try {
        return await this.client.link(target.handle, dir.handle, newName);
      } catch (err) {
        if (repeat && codeOf(err) === 'EEXIST') return { attrs: undefined, dirWcc: undefined };
        throw err;
      }
    });
    this.afterDirChange(dir, res.dirWcc);
    this.inodes.namespaceChanged();
    return this.entryFor(target.handle, res.attrs);
  }

  async unlink(_ctx: Context, parent: number, name: Buffer): Promise<void> {
    this.reserved(parent, name, 'ENOENT');
    const dir = this.inode(parent);
    const target = await this.peek(dir, name);
    if (target && (await this.hideIfOpen(dir, name, target))) return;
    await this.removeEntry(parent, name, 'REMOVE');
    // Its last name is gone: data still queued for it could never be committed.
    if (target && (target.attrs?.nlink ?? 1) <= 1) this.discardWriter(target.key);
  }

  rmdir(_ctx: Context, parent: number, name: Buffer): Promise<void> {
    this.reserved(parent, name, 'ENOENT');
    return this.removeEntry(parent, name, 'RMDIR');
  }

  /**
   * The file a name stands for, when removing or replacing the name may concern an open file or
   * one with data queued (otherwise no LOOKUP is spent).
   */
  private async peek(dir: Inode, name: Buffer): Promise<{ key: string; attrs?: Fattr } | undefined> {
    if (this.files.size === 0 && this.writers.size === 0) return undefined;
    try {
      const r = await this.call('LOOKUP', () => this.client.lookup(dir.handle, name));
      return { key: r.handle.toString('hex'), attrs: r.attrs };
    } catch (err) {
      if (codeOf(err) === 'ENOENT') return undefined;
      throw err;
    }
  }

  /**
   * Removing the last name of an open file: renames it into the hidden folder instead (the
   * kernel's NFS client does the same), so its descriptors keep working until the last close.
   * Returns false when the file is not open or keeps another name.
   */
  private async hideIfOpen(dir: Inode, name: Buffer, target: { key: string; attrs?: Fattr }): Promise<boolean> {
    const n = this.inodes.byHandle(target.key);
    if (!n || n.opens <= 0 || n.hidden || (target.attrs?.nlink ?? 1) > 1) return false;
    const folder = await this.unlinked.folder();
    const hidden = this.unlinked.nameFor(target.attrs?.fileid ?? 0n);
    const res = await this.call('RENAME', async (repeat) => {
      try {
        return await this.client.rename(dir.handle, name, folder, hidden);
      } catch (err) {
        if (repeat && codeOf(err) === 'ENOENT') {
          await this.client.lookup(folder, hidden);
          return undefined;
        }
        throw err;
      }
    });
    n.hidden = hidden;
    this.afterDirChange(dir, res?.fromDirWcc);
    this.inodes.namespaceChanged();
    return true;
  }

  private async removeEntry(parent: number, name: Buffer, proc: 'REMOVE' | 'RMDIR'): Promise<void> {
    const dir = this.inode(parent);
    const wcc = await this.call(proc, async (repeat) => {
      try {
        return await (proc === 'REMOVE' ? this.client.remove(dir.handle, name) : this.client.rmdir(dir.handle, name));
      } catch (err) {
        if (repeat && codeOf(err) === 'ENOENT') return undefined;
        throw err;
      }
    });
    this.afterDirChange(dir, wcc);
    this.inodes.namespaceChanged();
  }

  async rename(_ctx: Context, parent: number, name: Buffer, newParent: number, newName: Buffer, flags: number): Promise<void> {
    if (flags & RENAME_EXCHANGE) throw new FsError('EINVAL', 'NFSv3 cannot exchange two names');
    this.reserved(parent, name, 'ENOENT');
    this.reserved(newParent, newName, 'EPERM');
    const src = this.inode(parent);
    const dst = this.inode(newParent);
    if (flags & RENAME_NOREPLACE) {
      const exists = await this.call('LOOKUP', () => this.client.lookup(dst.handle, newName)).then(
        () => true,
        (err) => (codeOf(err) === 'ENOENT' ? false : Promise.reject(err)),
      );
      if (exists) throw new FsError('EEXIST');
    } else {
      // Replacing an open file: it stays readable through its descriptors, as after an unlink.
      const target = await this.peek(dst, newName);
      if (target && this.inodes.byHandle(target.key)?.opens) {
        const source = await this.peek(src, name);
        // rename(2) between two names of one file does nothing.
        if (source?.key === target.key) return;
        // Only a rename that will replace the file may hide it (a folder cannot replace a file).
        if (source && source.attrs?.type !== FileType.DIR) await this.hideIfOpen(dst, newName, target);
      }
    }
    const res = await this.call('RENAME', async (repeat) => {
      try {
        return await this.client.rename(src.handle, name, dst.handle, newName);
      } catch (err) {
        // The first RENAME went through: the source is gone and the target exists.
        if (repeat && codeOf(err) === 'ENOENT') {
          await this.client.lookup(dst.handle, newName);
          return undefined;
        }
        throw err;
      }
    });
    this.afterDirChange(src, res?.fromDirWcc);
    this.afterDirChange(dst, res?.toDirWcc);
    this.inodes.namespaceChanged();
  }

  /** Flushes every file with data not yet committed (at shutdown). */
  async flushAll(): Promise<void> {
    if (this.commitTimer) clearTimeout(this.commitTimer);
    this.commitTimer = undefined;
    this.toCommit.clear();
    await Promise.all(
      [...this.writers.values()].map((w) =>
        w.commit().catch((err) => this.s.log('error', 'cannot commit a file at shutdown', { error: String((err as Error).message) })),
      ),
    );
  }

  /** The operation table a FuseSession serves. */
  ops(): FuseOps {
    return {
      lookup: (c, p, n) => this.lookup(c, p, n),
      forget: (id, k) => this.forget(id, k),
      getattr: (c, id) => this.getattr(c, id),
      setattr: (c, id, ch) => this.setattr(c, id, ch),
      readlink: (c, id) => this.readlink(c, id),
      symlink: (c, p, n, t) => this.symlink(c, p, n, t),
      mknod: (c, p, n, m, rdev) => this.mknod(c, p, n, m, rdev),
      mkdir: (c, p, n, m) => this.mkdir(c, p, n, m),
      unlink: (c, p, n) => this.unlink(c, p, n),
      rmdir: (c, p, n) => this.rmdir(c, p, n),
      rename: (c, p, n, np, nn, f) => this.rename(c, p, n, np, nn, f),
      link: (c, id, np, nn) => this.link(c, id, np, nn),
      open: (c, id, f) => this.open(c, id, f),
      create: (c, p, n, m, f) => this.create(c, p, n, m, f),
      read: (c, id, fh, o, s) => this.read(c, id, fh, o, s),
      write: (c, id, fh, o, d, giveBack, flags) => this.write(c, id, fh, o, d, giveBack, flags),
      flush: (c, id, fh) => this.flush(c, id, fh),
      fsync: (c, id, fh) => this.fsync(c, id, fh),
      release: (c, id, fh) => this.release(c, id, fh),
      opendir: (c, id) => this.opendir(c, id),
      readdir: (c, id, fh, o) => this.readdir(c, id, fh, o),
      releasedir: (c, id, fh) => this.releasedir(c, id, fh),
      statfs: () => this.statfs(),
    };
  }
}

/**
 * Whether an explicit time sent in a SETATTR is what the server now reports, to the server's
 * resolution (FSINFO time_delta; a second when it does not say).
 */
function applied(sent: NfsTime | 'server' | undefined, now: NfsTime, delta: NfsTime | undefined): boolean {
  if (sent === undefined || sent === 'server') return true;
  const ns = (t: NfsTime) => BigInt(t.seconds) * 1_000_000_000n + BigInt(t.nseconds);
  const step = delta && ns(delta) > 0n ? ns(delta) : 1_000_000_000n;
  return ns(sent) / step === ns(now) / step;
}

function removedDir(a: Attr): Attr {
  return { ...a, nlink: 0, size: 0, blocks: 0 };
}

function later(a: Timespec, b: Timespec): Timespec {
  return a.seconds > b.seconds || (a.seconds === b.seconds && a.nseconds >= b.nseconds) ? a : b;
}

function nowTime(): NfsTime {
  const ms = Date.now();
  return { seconds: Math.floor(ms / 1000), nseconds: (ms % 1000) * 1_000_000 };
}

/**
 * `mode` after a change that clears set-ID bits, as the kernel rules on a local disk:
 * set-user-ID always goes; set-group-ID when the group may execute, or when the caller is neither
 * in the file's group `gid` nor `privileged`.
 */
function withoutSetId(mode: number, gid: number, ctx: Context, privileged: boolean): number {
  let m = mode & ~S_ISUID;
  if (m & S_ISGID && (m & 0o010 || (!privileged && !inGroup(ctx, gid)))) m &= ~S_ISGID;
  return m;
}

/** Whether the calling process has group `gid` (its own or a supplementary one, from /proc). */
function inGroup(ctx: Context, gid: number): boolean {
  if (ctx.gid === gid) return true;
  try {
    const line = readFileSync(`/proc/${ctx.pid}/status`, 'utf8').match(/^Groups:(.*)$/m)?.[1] ?? '';
    return line.trim().split(/\s+/).filter(Boolean).map(Number).includes(gid);
  } catch {
    // The caller is gone: clearing is the safe answer.
    return false;
  }
}

function codeOf(err: unknown): string | undefined {
  const c = (err as { code?: unknown })?.code;
  return typeof c === 'string' ? c : undefined;
}
