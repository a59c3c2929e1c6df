import type { FuseOps, FuseStat } from 'fuse-native';
import { Fattr, NfsClient, Sattr, WccData, readdirIterate } from '../nfs';
import { FsError, toErrno } from './errno';
import { baseName, Node, NodeCache, parentOf } from './nodes';
import { hard, RetryPolicy } from './retry';
import { toStat, toStatfs } from './stat';
import { FileWriter } from './write-back';

export interface FilesystemSettings {
  /** Seconds the kernel may trust attributes and names (FUSE attr_timeout/entry_timeout use the same). */
  attrTtlMs: number;
  nameTtlMs: number;
  /** WRITEs in flight per file. */
  maxWritesInFlight: number;
  /** Unstable bytes per file before a COMMIT is forced. */
  commitEvery: number;
  retry: RetryPolicy;
  log: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

interface OpenFile {
  handle: Buffer;
  writer: FileWriter | undefined;
}

/** fuse-native's UTIME_NOW/UTIME_OMIT both arrive as this many milliseconds (it drops the nanosecond marker). */
const UTIME_SPECIAL_MS = 1073;

/**
 * The FUSE operations, served from an NFSv3 export over the project's client library. Runs in its
 * own process (fuse-nfs/main.ts) and never touches its own mountpoint.
 */
export class NfsFilesystem {
  private readonly nodes: NodeCache;
  private readonly files = new Map<number, OpenFile>();
  private readonly writers = new Map<string, FileWriter>();
  private nextFd = 1;

  constructor(
    private readonly client: NfsClient,
    root: { handle: Buffer; attrs?: Fattr },
    private readonly s: FilesystemSettings,
  ) {
    this.nodes = new NodeCache({ handle: root.handle, attrs: root.attrs, attrsAt: Date.now(), namedAt: Infinity }, s.nameTtlMs, s.attrTtlMs);
  }

  /** One server call, retried through outages. */
  private call<T>(what: string, fn: (repeat: boolean) => Promise<T>): Promise<T> {
    return hard(what, this.s.retry, fn);
  }

  // ---------------------------------------------------------------------------------------------
  // paths → handles

  private async lookup(path: string): Promise<Node> {
    const hit = this.nodes.named(path);
    if (hit) return hit;
    const parent = await this.lookup(parentOf(path));
    const name = baseName(path);
    const r = await this.call('LOOKUP', () => this.client.lookup(parent.handle, name));
    this.nodes.setAttrs(parentOf(path), r.dirAttrs);
    return this.nodes.set(path, r.handle, r.attrs);
  }

  /**
   * Runs `fn` on a path's node. A stale handle (the file was replaced behind our back, or the
   * server lost its handle table) is forgotten and the path looked up again from the root, once.
   */
  private async withNode<T>(path: string, fn: (n: Node) => Promise<T>): Promise<T> {
    try {
      return await fn(await this.lookup(path));
    } catch (err) {
      if (!isStale(err) || path === '/') throw err;
      this.s.log('info', 'stale file handle; looking the path up again', { path });
      for (let p = path; p !== '/'; p = parentOf(p)) this.nodes.drop(p);
      return fn(await this.lookup(path));
    }
  }

  private async attrs(path: string): Promise<Fattr> {
    const fresh = this.nodes.freshAttrs(path);
    if (fresh) return fresh;
    return this.withNode(path, async (n) => {
      if (n.attrs && this.nodes.attrsValid(n)) return n.attrs;
      const a = await this.call('GETATTR', () => this.client.getattr(n.handle));
      this.nodes.setAttrs(path, a);
      return a;
    });
  }

  private afterChange(path: string, wcc: WccData | undefined): void {
    if (wcc?.after) this.nodes.setAttrs(path, wcc.after);
    else this.nodes.staleAttrs(path);
  }

  private writerFor(handle: Buffer, create: boolean): FileWriter | undefined {
    const key = handle.toString('hex');
    let w = this.writers.get(key);
    if (!w && create) {
      w = new FileWriter(this.client, handle, {
        writeSize: this.client.writeSize,
        maxInFlight: this.s.maxWritesInFlight,
        commitEvery: this.s.commitEvery,
        call: (what, fn) => this.call(what, fn),
        onResend: (bytes, writes) => this.s.log('warn', 'the write verifier changed (the server restarted): sending uncommitted data again', { bytes, writes }),
      });
      this.writers.set(key, w);
    }
    return w;
  }

  private statOf(a: Fattr, handle: Buffer): FuseStat {
    // While a writer exists (until the last release) its end is authoritative for the size: a
    // GETATTR answered before its WRITEs landed must not shrink the file the kernel sees.
    const w = this.writerFor(handle, false);
    return toStat(a, w ? w.end : 0);
  }

  // ---------------------------------------------------------------------------------------------
  // operations

  async getattr(path: string): Promise<FuseStat> {
    const a = await this.attrs(path);
    const n = await this.lookup(path);
    return this.statOf(a, n.handle);
  }

  async statfs(): Promise<ReturnType<typeof toStatfs>> {
    const st = await this.call('FSSTAT', () => this.client.fsstat(this.nodes.rootNode.handle));
    return toStatfs(st);
  }

  async readdir(path: string): Promise<{ names: string[]; stats: FuseStat[] }> {
    return this.withNode(path, async (dir) => {
      const names = ['.', '..'];
      const dirAttrs = await this.attrs(path);
      const stats: FuseStat[] = [toStat(dirAttrs), toStat(dirAttrs)];
      const entries = await this.call('READDIRPLUS', async () => {
        const out = [];
        for await (const e of readdirIterate(this.client, dir.handle)) out.push(e);
        return out;
      });
      const prefix = path === '/' ? '/' : `${path}/`;
      for (const e of entries) {
        names.push(e.name);
        if (e.handle) this.nodes.set(prefix + e.name, e.handle, e.attrs);
        stats.push(e.attrs ? this.statOf(e.attrs, e.handle ?? Buffer.alloc(0)) : { mode: 0, uid: 0, gid: 0, size: 0, nlink: 1, ino: Number(e.fileid & 0xffffffffn), atime: 0, mtime: 0, ctime: 0 });
      }
      return { names, stats };
    });
  }

  async open(path: string): Promise<number> {
    const n = await this.lookup(path);
    return this.addFile(n.handle);
  }

  private addFile(handle: Buffer): number {
    const fd = this.nextFd;
    this.nextFd = this.nextFd >= 0x7fff_ffff ? 1 : this.nextFd + 1;
    this.files.set(fd, { handle, writer: undefined });
    return fd;
  }

  private file(fd: number): OpenFile {
    const f = this.files.get(fd);
    if (!f) throw new FsError('EBADF');
    return f;
  }

  async create(path: string, mode: number): Promise<number> {
    const parentPath = parentOf(path);
    const name = baseName(path);
    const res = await this.withNode(parentPath, (dir) =>
      this.call('CREATE', async (repeat) => {
        try {
          return await this.client.create(dir.handle, name, { mode: 'guarded', attrs: { mode: mode & 0o7777 } });
        } catch (err) {
          // A CREATE the server carried out before the connection dropped: the file is ours.
          if (repeat && codeOf(err) === 'EEXIST') return { ...(await this.client.lookup(dir.handle, name)), dirWcc: {} as WccData };
          throw err;
        }
      }),
    );
    this.afterChange(parentPath, res.dirWcc);
    this.nodes.set(path, res.handle, res.attrs);
    return this.addFile(res.handle);
  }

  async read(fd: number, buf: Buffer, len: number, pos: number): Promise<number> {
    const f = this.file(fd);
    const w = this.writerFor(f.handle, false);
    if (w?.busy) await w.drain();
    let done = 0;
    while (done < len) {
      const res = await this.call('READ', () => this.client.read(f.handle, pos + done, Math.min(len - done, this.client.readSize)));
      res.data.copy(buf, done);
      done += res.data.length;
      if (res.eof || res.data.length === 0) break;
    }
    return done;
  }

  async write(fd: number, buf: Buffer, len: number, pos: number): Promise<number> {
    const f = this.file(fd);
    if (!f.writer) {
      f.writer = this.writerFor(f.handle, true) as FileWriter;
      f.writer.refs++;
    }
    this.nodes.staleAttrsOf(f.handle);
    return f.writer.write(pos, len === buf.length ? buf : buf.subarray(0, len));
  }

  async flush(fd: number): Promise<void> {
    const f = this.files.get(fd);
    if (f?.writer) await f.writer.drain();
  }

  async fsync(fd: number): Promise<void> {
    const f = this.file(fd);
    const w = f.writer ?? this.writerFor(f.handle, false);
    if (w) await w.commit();
    else await this.call('COMMIT', () => this.client.commit(f.handle, 0, 0));
  }

  async release(fd: number): Promise<void> {
    const f = this.files.get(fd);
    if (!f) return;
    this.files.delete(fd);
    const w = f.writer;
    if (!w) return;
    try {
      await w.commit();
    } finally {
      if (--w.refs <= 0 && !w.dirty) this.writers.delete(w.handle.toString('hex'));
    }
  }

  private async setattr(path: string, attrs: Sattr, handle?: Buffer): Promise<void> {
    const run = async (fh: Buffer) => {
      const wcc = await this.call('SETATTR', () => this.client.setattr(fh, attrs));
      this.nodes.staleAttrsOf(fh);
      if (wcc.after) this.nodes.setAttrs(path, wcc.after);
    };
    if (handle) await run(handle);
    else await this.withNode(path, (n) => run(n.handle));
  }

  async truncate(path: string, size: number, fd?: number): Promise<void> {
    const handle = fd !== undefined ? this.files.get(fd)?.handle : undefined;
    const fh = handle ?? (await this.lookup(path)).handle;
    const w = this.writerFor(fh, false);
    if (w) await w.commit();
    await this.setattr(path, { size }, handle);
    if (w) w.end = size;
  }

  async chmod(path: string, mode: number): Promise<void> {
    await this.setattr(path, { mode: mode & 0o7777 });
  }

  async chown(path: string, uid: number, gid: number): Promise<void> {
    const attrs: Sattr = {};
    if (uid !== 0xffffffff && uid !== -1) attrs.uid = uid;
    if (gid !== 0xffffffff && gid !== -1) attrs.gid = gid;
    await this.setattr(path, attrs);
  }

  async utimens(path: string, atimeMs: number, mtimeMs: number): Promise<void> {
    const t = (v: number): Sattr['atime'] => (v === UTIME_SPECIAL_MS ? 'server' : { seconds: Math.floor(v / 1000), nseconds: (v % 1000) * 1e6 });
    await this.setattr(path, { atime: t(atimeMs), mtime: t(mtimeMs) });
  }

  async mkdir(path: string, mode: number): Promise<void> {
    const parentPath = parentOf(path);
    const name = baseName(path);
    const res = await this.withNode(parentPath, (dir) =>
      this.call('MKDIR', async (repeat) => {
        try {
          return await this.client.mkdir(dir.handle, name, { mode: mode & 0o7777 });
        } catch (err) {
          if (repeat && codeOf(err) === 'EEXIST') return { ...(await this.client.lookup(dir.handle, name)), dirWcc: {} as WccData };
          throw err;
        }
      }),
    );
    this.afterChange(parentPath, res.dirWcc);
    this.nodes.set(path, res.handle, res.attrs);
  }

  async symlink(target: string, path: string): Promise<void> {
    const parentPath = parentOf(path);
    const name = baseName(path);
    const res = await this.withNode(parentPath, (dir) =>
      this.call('SYMLINK', async (repeat) => {
        try {
          return await this.client.symlink(dir.handle, name, target);
        } catch (err) {
          if (repeat && codeOf(err) === 'EEXIST') return { ...(await this.client.lookup(dir.handle, name)), dirWcc: {} as WccData };
          throw err;
        }
      }),
    );
    this.afterChange(parentPath, res.dirWcc);
    this.nodes.set(path, res.handle, res.attrs);
  }

  async readlink(path: string): Promise<string> {
    return this.withNode(path, (n) => this.call('READLINK', () => this.client.readlink(n.handle)));
  }

  async link(existing: string, path: string): Promise<void> {
    const parentPath = parentOf(path);
    const name = baseName(path);
    const target = await this.lookup(existing);
    const res = await this.withNode(parentPath, (dir) =>
      this.call('LINK', async (repeat) => {
        try {
          return await this.client.link(target.handle, dir.handle, name);
        } catch (err) {
          if (repeat && codeOf(err) === 'EEXIST') return { attrs: undefined, dirWcc: {} as WccData };
          throw err;
        }
      }),
    );
    this.afterChange(parentPath, res.dirWcc);
    this.nodes.staleAttrsOf(target.handle);
    this.nodes.set(path, target.handle, res.attrs);
  }

  async unlink(path: string): Promise<void> {
    await this.removeEntry(path, 'REMOVE');
  }

  async rmdir(path: string): Promise<void> {
    await this.removeEntry(path, 'RMDIR');
  }

  private async removeEntry(path: string, proc: 'REMOVE' | 'RMDIR'): Promise<void> {
    const parentPath = parentOf(path);
    const name = baseName(path);
    const victim = this.nodes.named(path);
    const wcc = await this.withNode(parentPath, (dir) =>
      this.call(proc, async (repeat) => {
        try {
          return await (proc === 'REMOVE' ? this.client.remove(dir.handle, name) : this.client.rmdir(dir.handle, name));
        } catch (err) {
          if (repeat && codeOf(err) === 'ENOENT') return undefined;
          throw err;
        }
      }),
    );
    this.afterChange(parentPath, wcc);
    if (victim) this.nodes.staleAttrsOf(victim.handle);
    this.nodes.drop(path);
  }

  async rename(from: string, to: string): Promise<void> {
    const fromParent = parentOf(from);
    const toParent = parentOf(to);
    const replaced = this.nodes.named(to);
    const res = await this.withNode(fromParent, async (src) => {
      const dst = await this.lookup(toParent);
      return this.call('RENAME', async (repeat) => {
        try {
          return await this.client.rename(src.handle, baseName(from), dst.handle, baseName(to));
        } catch (err) {
          // The first RENAME went through: the source is gone and the target exists.
          if (repeat && codeOf(err) === 'ENOENT') {
            await this.client.lookup(dst.handle, baseName(to));
            return undefined;
          }
          throw err;
        }
      });
    });
    this.afterChange(fromParent, res?.fromDirWcc);
    this.afterChange(toParent, res?.toDirWcc);
    if (replaced) this.nodes.staleAttrsOf(replaced.handle);
    this.nodes.move(from, to);
  }

  /** Flushes every file with data not yet committed (at shutdown). */
  async flushAll(): Promise<void> {
    await Promise.all(
      [...this.writers.values()].map((w) =>
        w.commit().catch((err) => this.s.log('error', 'cannot commit a file at shutdown', { error: String((err as Error).message) })),
      ),
    );
  }

  // ---------------------------------------------------------------------------------------------
  // the fuse-native callback table

  ops(): FuseOps {
    const reply = <T>(op: string, p: Promise<T>, ok: (v: T) => void, fail: (errno: number) => void) => {
      p.then(ok, (err) => {
        const errno = toErrno(err);
        if (errno !== -2 && errno !== -17 && errno !== -39 && errno !== -13) this.s.log('warn', `${op} failed`, { errno, error: String((err as Error)?.message ?? err) });
        fail(errno);
      });
    };
    const done = (op: string, p: Promise<unknown>, cb: (code: number) => void) => reply(op, p, () => cb(0), cb);
    return {
      init: (cb) => cb(0),
      statfs: (_path, cb) => reply('statfs', this.statfs(), (st) => cb(0, st), (e) => cb(e)),
      getattr: (path, cb) => reply('getattr', this.getattr(path), (st) => cb(0, st), (e) => cb(e)),
      readdir: (path, cb) => reply('readdir', this.readdir(path), (r) => cb(0, r.names, r.stats), (e) => cb(e)),
      open: (path, _flags, cb) => reply('open', this.open(path), (fd) => cb(0, fd), (e) => cb(e)),
      create: (path, mode, cb) => reply('create', this.create(path, mode), (fd) => cb(0, fd), (e) => cb(e)),
      read: (_path, fd, buf, len, pos, cb) => reply('read', this.read(fd, buf, len, pos), cb, cb),
      write: (_path, fd, buf, len, pos, cb) => reply('write', this.write(fd, buf, len, pos), cb, cb),
      flush: (_path, fd, cb) => done('flush', this.flush(fd), cb),
      fsync: (_path, _datasync, fd, cb) => done('fsync', this.fsync(fd), cb),
      release: (_path, fd, cb) => done('release', this.release(fd), cb),
      truncate: (path, size, cb) => done('truncate', this.truncate(path, size), cb),
      ftruncate: (path, fd, size, cb) => done('ftruncate', this.truncate(path, size, fd), cb),
      unlink: (path, cb) => done('unlink', this.unlink(path), cb),
      rmdir: (path, cb) => done('rmdir', this.rmdir(path), cb),
      mkdir: (path, mode, cb) => done('mkdir', this.mkdir(path, mode), cb),
      rename: (from, to, cb) => done('rename', this.rename(from, to), cb),
      link: (existing, path, cb) => done('link', this.link(existing, path), cb),
      symlink: (target, path, cb) => done('symlink', this.symlink(target, path), cb),
      readlink: (path, cb) => reply('readlink', this.readlink(path), (t) => cb(0, t), (e) => cb(e)),
      chmod: (path, mode, cb) => done('chmod', this.chmod(path, mode), cb),
      chown: (path, uid, gid, cb) => done('chown', this.chown(path, uid, gid), cb),
      utimens: (path, atime, mtime, cb) => done('utimens', this.utimens(path, atime, mtime), cb),
    };
  }
}

function codeOf(err: unknown): string | undefined {
  const c = (err as { code?: unknown })?.code;
  return typeof c === 'string' ? c : undefined;
}

function isStale(err: unknown): boolean {
  const c = codeOf(err);
  return c === 'ESTALE' || c === 'EBADHANDLE';
}

