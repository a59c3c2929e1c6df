// The NFSv3 procedures (RFC 1813 §3), one method each, over an RpcClient.
// Each method sends one call and returns typed results or throws NfsError.

import { ArgsEncoder, RpcClient } from './rpc-client';
import { NfsError, RpcError } from './errors';
import { XdrReader } from './xdr';
import {
  AccessResult,
  CommitResult,
  CreateHow,
  CreateResult,
  Fattr,
  FileType,
  FsInfo,
  FsStat,
  LookupResult,
  MknodWhat,
  NFS_PROGRAM,
  NFS_VERSION,
  NfsName,
  NfsTime,
  PathConf,
  ReadResult,
  LentReadResult,
  ReaddirPlusPage,
  DirEntryPlus,
  Sattr,
  StableHow,
  WccData,
  WriteResult,
} from './nfs3-types';
import {
  NFS3_COOKIEVERFSIZE,
  NFS3_WRITEVERFSIZE,
  readFattr,
  readHandle,
  readPostOpAttr,
  readPostOpFh,
  readTime,
  readWcc,
  writeDirOp,
  writeName,
  writeHandle,
  writeSattr,
  writeTime,
} from './nfs3-xdr';

enum Proc {
  NULL = 0,
  GETATTR = 1,
  SETATTR = 2,
  LOOKUP = 3,
  ACCESS = 4,
  READLINK = 5,
  READ = 6,
  WRITE = 7,
  CREATE = 8,
  MKDIR = 9,
  SYMLINK = 10,
  MKNOD = 11,
  REMOVE = 12,
  RMDIR = 13,
  RENAME = 14,
  LINK = 15,
  READDIRPLUS = 17,
  FSSTAT = 18,
  FSINFO = 19,
  PATHCONF = 20,
  COMMIT = 21,
}

const JUKEBOX = 10008;
const JUKEBOX_RETRIES = 6;

const ZERO_VERF = Buffer.alloc(NFS3_COOKIEVERFSIZE);

export interface ReaddirPlusOptions {
  cookie?: bigint;
  cookieverf?: Buffer;
  /** Bytes of names and cookies the server may return (RFC 1813 dircount). Default 32 KiB. */
  dircount?: number;
  /** Bytes of the whole reply, attributes and handles included. Default 128 KiB. */
  maxcount?: number;
}

export interface RenameResult {
  fromDirWcc: WccData;
  toDirWcc: WccData;
}

/**
 * Whether the RPC layer may resend a CREATE on a new connection when the old
 * one dropped before the reply, i.e. when the first send may already have run
 * (and, before the resend arrives, the file may have been written to):
 *
 * - EXCLUSIVE: yes. The server keeps the verifier with the file and answers a
 *   resend with the same verifier as a success, leaving the file alone.
 * - GUARDED: no. If the first send ran, the resend fails with EEXIST and a file
 *   this call made would be reported as someone else's.
 * - UNCHECKED with `attrs.size` set: no. On a file that exists the server
 *   applies the size (knfsd any size, ganesha a size of 0), so the resend would
 *   truncate the file and destroy data written since the first send ran. The
 *   caller gets ECONNRESET and decides (e.g. looks the file up and checks it).
 * - UNCHECKED without a size: yes. On a file that exists neither knfsd nor
 *   ganesha changes anything else (knfsd applies only the size, ganesha only a
 *   size of 0); a server that re-applied mode, owner or times would do no more
 *   than a resent SETATTR, and no data is touched.
 */
function createIsResendable(how: CreateHow): boolean {
  if (how.mode === 'exclusive') return true;
  if (how.mode === 'guarded') return false;
  return how.attrs?.size === undefined;
}

/** FNV-1a over a file handle's bytes: the same file always picks the same connection. */
function handleHash(fh: Buffer): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < fh.length; i++) h = Math.imul(h ^ fh[i], 0x01000193);
  return h >>> 0;
}

export class Nfs3 {
  private next = 0;

  /**
   * `rpc` carries every call; `dataRpcs`, when given, add TCP connections for data (as Linux's
   * nconnect): READs take all of them in turn, so the server decodes and answers them in
   * parallel; the WRITEs of one file always take the same one, chosen by its handle, so the
   * server gets them in order and does not run them against each other (measured on ganesha:
   * a file's WRITEs spread over two connections cost the server up to three times the CPU and ran
   * at 0.7 of the speed of one connection).
   */
  constructor(
    readonly rpc: RpcClient,
    protected readonly dataRpcs: RpcClient[] = [],
  ) {}

  /** Set on a view made by withSignal(): every call of the view carries it. */
  protected signal?: AbortSignal;

  /**
   * A view of this client whose calls end when `signal` aborts (RpcError ECANCELED), for a
   * caller with a deadline of its own. It shares the connections; the client itself is unchanged.
   */
  withSignal(signal: AbortSignal): this {
    const view = Object.create(this) as this;
    view.signal = signal;
    return view;
  }

  private rpcFor(proc: Proc, fh?: Buffer): RpcClient {
    const n = this.dataRpcs.length + 1;
    if (n === 1) return this.rpc;
    let i: number;
    if (proc === Proc.READ) i = this.next = (this.next + 1) % n;
    else if (proc === Proc.WRITE && fh) i = handleHash(fh) % n;
    else return this.rpc;
    return i === 0 ? this.rpc : this.dataRpcs[i - 1];
  }

  /**
   * Sends one NFS call; returns a reader past the OK status. A JUKEBOX answer
   * (server busy, e.g. recalling a file from tape) is retried after a pause.
   */
  protected async proc(proc: Proc, args: ArgsEncoder, idempotent: boolean, releasable = false, fh?: Buffer): Promise<XdrReader> {
    const name = `NFS3.${Proc[proc]}`;
    for (let attempt = 0; ; attempt++) {
      const r = await this.rpcFor(proc, fh).call(NFS_PROGRAM, NFS_VERSION, proc, args, { name, idempotent, releasable, signal: this.signal });
      const status = r.uint32();
      if (status === 0) return r;
      r.release();
      if (status === JUKEBOX && attempt < JUKEBOX_RETRIES) {
        await new Promise((res) => setTimeout(res, 100 * 2 ** attempt));
        if (this.signal?.aborted) throw new RpcError('ECANCELED', `${name}: cancelled by the caller`, { procedure: name });
        continue;
      }
      throw new NfsError(status, name);
    }
  }

  async null(timeoutMs?: number): Promise<void> {
    await this.rpc.call(NFS_PROGRAM, NFS_VERSION, Proc.NULL, undefined, { name: 'NFS3.NULL', timeoutMs });
  }

  async getattr(fh: Buffer): Promise<Fattr> {
    const r = await this.proc(Proc.GETATTR, (w) => writeHandle(w, fh), true);
    return readFattr(r);
  }

  /** Sets attributes; with `guardCtime` the server refuses (ENOTSYNC) if ctime differs. */
  async setattr(fh: Buffer, attrs: Sattr, guardCtime?: NfsTime): Promise<WccData> {
    const r = await this.proc(
      Proc.SETATTR,
      (w) => {
        writeHandle(w, fh);
        writeSattr(w, attrs);
        w.optional(guardCtime, writeTime);
      },
      true,
    );
    return readWcc(r);
  }

  async lookup(dir: Buffer, name: NfsName): Promise<LookupResult> {
    const r = await this.proc(Proc.LOOKUP, (w) => writeDirOp(w, dir, name), true);
    const handle = readHandle(r);
    return { handle, attrs: readPostOpAttr(r), dirAttrs: readPostOpAttr(r) };
  }

  async access(fh: Buffer, mask: number): Promise<AccessResult> {
    const r = await this.proc(
      Proc.ACCESS,
      (w) => {
        writeHandle(w, fh);
        w.uint32(mask);
      },
      true,
    );
    const attrs = readPostOpAttr(r);
    return { attrs, access: r.uint32() };
  }

  async readlink(fh: Buffer): Promise<string> {
    return (await this.readlinkRaw(fh)).toString('utf8');
  }

  /** The symlink's target as the bytes the server keeps (a target need not be UTF-8). */
  async readlinkRaw(fh: Buffer): Promise<Buffer> {
    const r = await this.proc(Proc.READLINK, (w) => writeHandle(w, fh), true);
    readPostOpAttr(r);
    return Buffer.from(r.opaque());
  }

  /** One READ call; `count` should not exceed the server's rtmax. */
  async read(fh: Buffer, offset: number, count: number): Promise<ReadResult> {
    return this.readCall(fh, offset, count, false);
  }

  /**
   * One READ call whose data is not copied: it is a view of the received record, which goes back
   * to the connection's buffer pool at `release()` (the fast path to hand data on to a device).
   */
  async readLent(fh: Buffer, offset: number, count: number): Promise<LentReadResult> {
    return this.readCall(fh, offset, count, true);
  }

  /**
   * One READ call that copies the data into `dest` (reading at most
   * dest.length bytes) and recycles the reply buffer: the fast path for bulk
   * reads, with no allocation per call.
   */
  async readInto(fh: Buffer, offset: number, dest: Buffer): Promise<{ count: number; eof: boolean; attrs?: Fattr }> {
    const res = await this.readCall(fh, offset, dest.length, true);
    try {
      res.data.copy(dest);
      return { count: res.data.length, eof: res.eof, attrs: res.attrs };
    } finally {
      res.release();
    }
  }

  /** READ; with `pooled`, the reply's record goes back to the pool at release() (else release() does nothing). */
  private async readCall(fh: Buffer, offset: number, count: number, pooled: boolean): Promise<LentReadResult> {
    const r = await this.proc(
      Proc.READ,
      (w) => {
        writeHandle(w, fh);
        w.uint64(offset);
        w.uint32(count);
      },
      true,
      pooled,
    );
    try {
      const attrs = readPostOpAttr(r);
      r.uint32(); // count, repeated as the opaque length
      const eof = r.bool();
      return { attrs, eof, data: r.opaque(count), release: () => r.release() };
    } catch (err) {
      r.release();
      throw err;
    }
  }

  /**
   * One WRITE call; `data` should not exceed the server's wtmax. The buffer is
   * sent without copying: do not change it until the promise settles.
   */
  async write(fh: Buffer, offset: number, data: Buffer, stable: StableHow = StableHow.UNSTABLE): Promise<WriteResult> {
    const r = await this.proc(
      Proc.WRITE,
      (w) => {
        writeHandle(w, fh);
        w.uint64(offset);
        w.uint32(data.length);
        w.uint32(stable);
        w.opaqueRef(data);
      },
      true,
      false,
      fh,
    );
    const wcc = readWcc(r);
    const count = r.uint32();
    const committed = r.uint32() as StableHow;
    const verifier = Buffer.from(r.fixedOpaque(NFS3_WRITEVERFSIZE));
    return { wcc, count, committed, verifier };
  }

  /** Flushes unstable writes in [offset, offset+count) (count 0: to the end of file). */
  async commit(fh: Buffer, offset = 0, count = 0): Promise<CommitResult> {
    const r = await this.proc(
      Proc.COMMIT,
      (w) => {
        writeHandle(w, fh);
        w.uint64(offset);
        w.uint32(count);
      },
      true,
    );
    const wcc = readWcc(r);
    return { wcc, verifier: Buffer.from(r.fixedOpaque(NFS3_WRITEVERFSIZE)) };
  }

  async create(dir: Buffer, name: NfsName, how: CreateHow = { mode: 'guarded' }): Promise<CreateResult> {
    const r = await this.proc(
      Proc.CREATE,
      (w) => {
        writeDirOp(w, dir, name);
        if (how.mode === 'exclusive') {
          w.uint32(2);
          w.fixedOpaque(how.verifier, 8);
        } else {
          w.uint32(how.mode === 'unchecked' ? 0 : 1);
          writeSattr(w, how.attrs);
        }
      },
      createIsResendable(how),
    );
    return this.finishCreate(r, dir, name);
  }

  async mkdir(dir: Buffer, name: NfsName, attrs: Sattr = { mode: 0o755 }): Promise<CreateResult> {
    const r = await this.proc(
      Proc.MKDIR,
      (w) => {
        writeDirOp(w, dir, name);
        writeSattr(w, attrs);
      },
      false,
    );
    return this.finishCreate(r, dir, name);
  }

  async symlink(dir: Buffer, name: NfsName, target: NfsName, attrs: Sattr = {}): Promise<CreateResult> {
    const r = await this.proc(
      Proc.SYMLINK,
      (w) => {
        writeDirOp(w, dir, name);
        writeSattr(w, attrs);
        writeName(w, target);
      },
      false,
    );
    return this.finishCreate(r, dir, name);
  }

  /**
   * Makes a special file: a character or block device (with its major and minor numbers), a
   * Unix socket or a FIFO. Not resent after a lost connection (a resend of one that ran would
   * fail with EEXIST), like MKDIR.
   */
  async mknod(dir: Buffer, name: NfsName, what: MknodWhat): Promise<CreateResult> {
    const r = await this.proc(
      Proc.MKNOD,
      (w) => {
        writeDirOp(w, dir, name);
        w.uint32(what.type);
        if (what.type === FileType.CHR || what.type === FileType.BLK) {
          writeSattr(w, what.attrs);
          w.uint32(what.rdev.major).uint32(what.rdev.minor);
        } else if (what.type === FileType.SOCK || what.type === FileType.FIFO) {
          writeSattr(w, what.attrs);
        }
      },
      false,
    );
    return this.finishCreate(r, dir, name);
  }

  /** CREATE/MKDIR/SYMLINK/MKNOD results; looks the name up if the server sent no handle. */
  private async finishCreate(r: XdrReader, dir: Buffer, name: NfsName): Promise<CreateResult> {
    const handle = readPostOpFh(r);
    const attrs = readPostOpAttr(r);
    const dirWcc = readWcc(r);
    if (handle) return { handle, attrs, dirWcc };
    const found = await this.lookup(dir, name);
    return { handle: found.handle, attrs: found.attrs ?? attrs, dirWcc };
  }

  async remove(dir: Buffer, name: NfsName): Promise<WccData> {
    return readWcc(await this.proc(Proc.REMOVE, (w) => writeDirOp(w, dir, name), false));
  }

  async rmdir(dir: Buffer, name: NfsName): Promise<WccData> {
    return readWcc(await this.proc(Proc.RMDIR, (w) => writeDirOp(w, dir, name), false));
  }

  /** Renames, replacing an existing target file (POSIX rename semantics). */
  async rename(fromDir: Buffer, fromName: NfsName, toDir: Buffer, toName: NfsName): Promise<RenameResult> {
    const r = await this.proc(
      Proc.RENAME,
      (w) => {
        writeDirOp(w, fromDir, fromName);
        writeDirOp(w, toDir, toName);
      },
      false,
    );
    return { fromDirWcc: readWcc(r), toDirWcc: readWcc(r) };
  }

  /** Makes a hard link `dir/name` to `fh`; returns the file's new attributes. */
  async link(fh: Buffer, dir: Buffer, name: NfsName): Promise<{ attrs?: Fattr; dirWcc: WccData }> {
    const r = await this.proc(
      Proc.LINK,
      (w) => {
        writeHandle(w, fh);
        writeDirOp(w, dir, name);
      },
      false,
    );
    return { attrs: readPostOpAttr(r), dirWcc: readWcc(r) };
  }

  /** One READDIRPLUS page. Pass the last entry's cookie and the returned cookieverf to continue. */
  async readdirplus(dir: Buffer, opts: ReaddirPlusOptions = {}): Promise<ReaddirPlusPage> {
    const r = await this.proc(
      Proc.READDIRPLUS,
      (w) => {
        writeHandle(w, dir);
        w.uint64(opts.cookie ?? 0n);
        w.fixedOpaque(opts.cookieverf ?? ZERO_VERF, NFS3_COOKIEVERFSIZE);
        w.uint32(opts.dircount ?? 32 * 1024);
        w.uint32(opts.maxcount ?? 128 * 1024);
      },
      true,
    );
    const dirAttrs = readPostOpAttr(r);
    const cookieverf = Buffer.from(r.fixedOpaque(NFS3_COOKIEVERFSIZE));
    const entries: DirEntryPlus[] = [];
    while (r.bool()) {
      const fileid = r.uint64();
      const rawName = Buffer.from(r.opaque());
      const name = rawName.toString('utf8');
      const cookie = r.uint64();
      const attrs = readPostOpAttr(r);
      const handle = readPostOpFh(r);
      entries.push({ fileid, name, rawName, cookie, attrs, handle });
    }
    return { dirAttrs, cookieverf, entries, eof: r.bool() };
  }

  async fsstat(fh: Buffer): Promise<FsStat> {
    const r = await this.proc(Proc.FSSTAT, (w) => writeHandle(w, fh), true);
    return {
      attrs: readPostOpAttr(r),
      totalBytes: r.uint64Number(),
      freeBytes: r.uint64Number(),
      availBytes: r.uint64Number(),
      totalFiles: r.uint64Number(),
      freeFiles: r.uint64Number(),
      availFiles: r.uint64Number(),
      invarsec: r.uint32(),
    };
  }

  async fsinfo(fh: Buffer): Promise<FsInfo> {
    const r = await this.proc(Proc.FSINFO, (w) => writeHandle(w, fh), true);
    return {
      attrs: readPostOpAttr(r),
      rtmax: r.uint32(),
      rtpref: r.uint32(),
      rtmult: r.uint32(),
      wtmax: r.uint32(),
      wtpref: r.uint32(),
      wtmult: r.uint32(),
      dtpref: r.uint32(),
      maxFileSize: r.uint64Number(),
      timeDelta: readTime(r),
      properties: r.uint32(),
    };
  }

  async pathconf(fh: Buffer): Promise<PathConf> {
    const r = await this.proc(Proc.PATHCONF, (w) => writeHandle(w, fh), true);
    return {
      attrs: readPostOpAttr(r),
      linkMax: r.uint32(),
      nameMax: r.uint32(),
      noTrunc: r.bool(),
      chownRestricted: r.bool(),
      caseInsensitive: r.bool(),
      casePreserving: r.bool(),
    };
  }
}
