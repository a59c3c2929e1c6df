import { EventEmitter } from 'node:events';
import { read as fsRead, writeSync, writevSync } from 'node:fs';
import { constants } from 'node:os';
import type { Context, Entry, FuseOps, Opened } from './ops';
import { packDirents } from './dirents';
import {
  Attr,
  encodeAttrOut,
  encodeOpenOut,
  encodeStatfs,
  ENTRY_OUT_SIZE,
  Fattr,
  FOPEN_DIRECT_IO,
  FOPEN_KEEP_CACHE,
  FSYNC_FDATASYNC,
  GETATTR_FH,
  IN_HEADER_SIZE,
  INIT_OUT_SIZE,
  Init,
  KERNEL_MAJOR,
  KERNEL_MINOR,
  MIN_READ_BUFFER,
  Op,
  OUT_HEADER_SIZE,
  readInHeader,
  readName,
  Timespec,
  WRITE_IN_SIZE,
  WRITE_KILL_PRIV,
  writeEntryOut,
  writeOutHeader,
} from './protocol';

const ERRNO = constants.errno as Record<string, number>;

export interface SessionOptions {
  /** Largest WRITE the kernel may send (rounded to pages; up to 1 MiB with 256 pages). */
  maxWrite?: number;
  /** Kernel readahead, bytes. */
  maxReadahead?: number;
  /** Background requests (readahead, async direct I/O) the kernel keeps in flight. */
  maxBackground?: number;
  /** Cache lifetimes the kernel is given for names and attributes. */
  entryTtlMs?: number;
  attrTtlMs?: number;
  /** Requests read from the device at once (each holds a thread of libuv's pool while it waits). */
  readers?: number;
  /** Extra INIT flags to ask for, beyond the defaults (only those the kernel offers are kept). */
  wantFlags?: number;
  /** Maps an error thrown by an operation to a positive errno (default: its `code` as an errno name, else EIO). */
  errnoOf?: (err: unknown) => number;
  /** Told of each failed operation (not of the routine ones: ENOENT on lookup, ENOSYS). */
  onError?: (op: string, errno: number, err: unknown) => void;
}

export interface Negotiated {
  major: number;
  minor: number;
  flags: number;
  maxWrite: number;
  maxReadahead: number;
}

const DEFAULT_FLAGS =
  Init.ASYNC_READ |
  Init.BIG_WRITES |
  Init.MAX_PAGES |
  Init.DO_READDIRPLUS |
  Init.READDIRPLUS_AUTO |
  Init.PARALLEL_DIROPS |
  Init.ASYNC_DIO |
  Init.AUTO_INVAL_DATA |
  Init.HANDLE_KILLPRIV_V2;

const PAGE = 4096;
/** WRITEs at least this long keep the buffer they were read into (no copy). */
const HAND_OVER_BYTES = 256 * 1024;
/**
 * Request buffers kept for reuse. Write-behind lends them out until the server confirms their data
 * (a COMMIT every 64 MiB): reused, they cost no allocation and no garbage collection, which ran
 * 50 to 80 ms per GiB written when each 1 MiB WRITE came in fresh memory.
 */
const MAX_SPARE = 96;
/** Kept for reuse while requests come; after this long without one, only a few. */
const SPARE_IDLE_MS = 5000;
const IDLE_SPARE = 8;

/** The positive errno for an error: a numeric `errno`, a negative `code`, or a `code` naming one. */
export function defaultErrnoOf(err: unknown): number {
  const e = err as { code?: unknown; errno?: unknown };
  if (typeof e?.code === 'number') return Math.abs(e.code);
  if (typeof e?.code === 'string' && typeof ERRNO[e.code] === 'number') return ERRNO[e.code];
  if (typeof e?.errno === 'number') return Math.abs(e.errno);
  return ERRNO.EIO;
}

/** An error carrying an errno name, for an operation to throw. */
export class FuseError extends Error {
  constructor(
    readonly code: string,
    message: string = code,
  ) {
    super(message);
  }
}

/**
 * Serves one FUSE connection: reads requests from the /dev/fuse descriptor of a mount, hands them
 * to the filesystem's operations (many at once: every operation is async), and writes the
 * answers. Emits 'init' with what was negotiated, 'close' when the kernel ends the connection
 * (unmount), and 'error' for a device error it cannot go on from.
 */
export class FuseSession extends EventEmitter {
  private readonly maxWrite: number;
  private readonly entryTtlMs: number;
  private readonly attrTtlMs: number;
  private readonly errnoOf: (err: unknown) => number;
  private closed = false;
  private negotiated: Negotiated | undefined;
  private readonly spare: Buffer[] = [];
  private trimTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly fd: number,
    private readonly ops: FuseOps,
    private readonly opts: SessionOptions = {},
  ) {
    super();
    this.maxWrite = Math.max(PAGE, Math.min(opts.maxWrite ?? 1024 * 1024, 256 * PAGE));
    this.entryTtlMs = opts.entryTtlMs ?? 1000;
    this.attrTtlMs = opts.attrTtlMs ?? 1000;
    this.errnoOf = opts.errnoOf ?? defaultErrnoOf;
  }

  get info(): Negotiated | undefined {
    return this.negotiated;
  }

  /** Starts reading requests. Call once the mount exists (the device refuses reads before). */
  start(): void {
    const readers = Math.max(1, this.opts.readers ?? 4);
    for (let i = 0; i < readers; i++) this.readNext();
  }

  private bufferSize(): number {
    return Math.max(MIN_READ_BUFFER, IN_HEADER_SIZE + WRITE_IN_SIZE + this.maxWrite + PAGE);
  }

  private readNext(): void {
    if (this.closed) return;
    const buf = this.spare.pop() ?? Buffer.allocUnsafe(this.bufferSize());
    fsRead(this.fd, buf, 0, buf.length, null, (err, n) => {
      if (err) {
        const code = (err as NodeJS.ErrnoException).code;
        this.spare.push(buf);
        // ENOENT: the request was interrupted before we read it; EINTR/EAGAIN: try again.
        if (code === 'ENOENT' || code === 'EINTR' || code === 'EAGAIN') return this.readNext();
        this.close(code === 'ENODEV' ? undefined : err);
        return;
      }
      let keep = false;
      try {
        keep = this.dispatch(buf, n);
      } catch (e) {
        this.emit('error', e);
      }
      // A WRITE's data now belongs to the filesystem; any other request was decoded already.
      if (!keep) this.reuse(buf);
      this.readNext();
    });
  }

  /** Keeps a request buffer for a later read; trims the spares once requests stop for a while. */
  private reuse(buf: Buffer): void {
    if (this.closed || this.spare.length >= MAX_SPARE) return;
    this.spare.push(buf);
    if (this.spare.length <= IDLE_SPARE) return;
    this.trimTimer?.refresh();
    this.trimTimer ??= setTimeout(() => {
      this.trimTimer = undefined;
      this.spare.length = Math.min(this.spare.length, IDLE_SPARE);
    }, SPARE_IDLE_MS).unref();
  }

  private close(err?: unknown): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.trimTimer);
    this.spare.length = 0;
    try {
      this.ops.destroy?.();
    } finally {
      if (err) this.emit('error', err);
      this.emit('close');
    }
  }

  // ---------------------------------------------------------------------------------------------
  // answers

  /** `sent`, when given, is called once nothing reads `data` any more (the kernel copied it, or never will). */
  private send(unique: bigint, error: number, body?: Buffer, data?: Buffer, sent?: () => void): void {
    if (this.closed) {
      sent?.();
      return;
    }
    const h = Buffer.allocUnsafe(OUT_HEADER_SIZE);
    const len = OUT_HEADER_SIZE + (body?.length ?? 0) + (data?.length ?? 0);
    writeOutHeader(h, len, error, unique);
    const parts = data && data.length > 0 ? (body ? [h, body, data] : [h, data]) : body && body.length > 0 ? [h, body] : [h];
    // Written from the event loop, large READ answers included: handing each to libuv's pool cost
    // more (thread wake-ups, the pool's lock) than the kernel's copy of 1 MiB takes (measured: a
    // cold 1 GiB read through the NFS mount used 15 % less CPU and ran 6 % faster).
    try {
      if (parts.length === 1) writeSync(this.fd, h);
      else writevSync(this.fd, parts);
    } catch (err) {
      this.writeFailed(err);
    } finally {
      sent?.();
    }
  }

  private writeFailed(err: unknown): void {
    const code = (err as NodeJS.ErrnoException).code;
    // ENOENT: the request was interrupted and the kernel no longer waits for it.
    if (code === 'ENODEV') this.close();
    else if (code !== 'ENOENT') this.emit('error', err);
  }

  private fail(unique: bigint, op: string, err: unknown): void {
    const errno = this.errnoOf(err);
    if (errno !== ERRNO.ENOSYS && !(errno === ERRNO.ENOENT && op === 'LOOKUP')) this.opts.onError?.(op, errno, err);
    this.send(unique, -errno);
  }

  private answer<T>(
    unique: bigint,
    op: string,
    work: Promise<T> | undefined,
    encode: (v: T) => Buffer | undefined | [Buffer | undefined, Buffer, (() => void)?],
  ): void {
    if (!work) {
      this.send(unique, -ERRNO.ENOSYS);
      return;
    }
    work.then(
      (v) => {
        let out;
        try {
          out = encode(v);
        } catch (err) {
          this.fail(unique, op, err);
          return;
        }
        if (Array.isArray(out)) this.send(unique, 0, out[0], out[1], out[2]);
        else this.send(unique, 0, out);
      },
      (err) => this.fail(unique, op, err),
    );
  }

  private entry(e: Entry): Buffer {
    const b = Buffer.alloc(ENTRY_OUT_SIZE);
    writeEntryOut(b, 0, e.nodeid, e.generation ?? 0, e.entryTtlMs ?? this.entryTtlMs, e.attrTtlMs ?? this.attrTtlMs, e.attr);
    return b;
  }

  private attrOut(a: Attr): Buffer {
    return encodeAttrOut(a, this.attrTtlMs);
  }

  private static openFlags(o: Opened): number {
    return (o.keepCache ? FOPEN_KEEP_CACHE : 0) | (o.directIo ? FOPEN_DIRECT_IO : 0);
  }

  // ---------------------------------------------------------------------------------------------
  // requests

  /** Decodes one request and starts its operation. Returns true when the buffer was handed over. */
  private dispatch(b: Buffer, n: number): boolean {
    const h = readInHeader(b);
    const ctx: Context = { uid: h.uid, gid: h.gid, pid: h.pid };
    const u = h.unique;
    const node = h.nodeid;
    const B = IN_HEADER_SIZE;
    const ops = this.ops;
    switch (h.opcode as Op) {
      case Op.INIT:
        this.init(u, b);
        return false;
      case Op.DESTROY:
        this.send(u, 0);
        this.close();
        return false;
      case Op.FORGET:
        ops.forget?.(node, Number(b.readBigUInt64LE(B)));
        return false;
      case Op.BATCH_FORGET: {
        const count = b.readUInt32LE(B);
        for (let i = 0; i < count; i++) {
          const off = B + 8 + i * 16;
          ops.forget?.(Number(b.readBigUInt64LE(off)), Number(b.readBigUInt64LE(off + 8)));
        }
        return false;
      }
      case Op.INTERRUPT:
        // Operations run to completion; the kernel gets their answer (or has stopped waiting).
        return false;
      case Op.LOOKUP: {
        const { name } = readName(b, B);
        this.answer(u, 'LOOKUP', ops.lookup?.(ctx, node, name), (e) => this.entry(e));
        return false;
      }
      case Op.GETATTR: {
        const flags = b.readUInt32LE(B);
        const fh = flags & GETATTR_FH ? Number(b.readBigUInt64LE(B + 8)) : undefined;
        this.answer(u, 'GETATTR', ops.getattr?.(ctx, node, fh), (a) => this.attrOut(a));
        return false;
      }
      case Op.SETATTR: {
        const valid = b.readUInt32LE(B);
        const time = (sOff: number, nsOff: number): Timespec => ({ seconds: Number(b.readBigUInt64LE(B + sOff)), nseconds: b.readUInt32LE(B + nsOff) });
        const changes: Parameters<NonNullable<FuseOps['setattr']>>[2] = {};
        if (valid & Fattr.FH) changes.fh = Number(b.readBigUInt64LE(B + 8));
        if (valid & Fattr.SIZE) changes.size = Number(b.readBigUInt64LE(B + 16));
        if (valid & Fattr.ATIME) changes.atime = valid & Fattr.ATIME_NOW ? 'now' : time(32, 56);
        if (valid & Fattr.MTIME) changes.mtime = valid & Fattr.MTIME_NOW ? 'now' : time(40, 60);
        if (valid & Fattr.MODE) changes.mode = b.readUInt32LE(B + 68);
        if (valid & Fattr.UID) changes.uid = b.readUInt32LE(B + 76);
        if (valid & Fattr.GID) changes.gid = b.readUInt32LE(B + 80);
        if (valid & Fattr.KILL_SUIDGID) changes.killSuidgid = true;
        this.answer(u, 'SETATTR', ops.setattr?.(ctx, node, changes), (a) => this.attrOut(a));
        return false;
      }
      case Op.READLINK:
        this.answer(u, 'READLINK', ops.readlink?.(ctx, node), (t) => (typeof t === 'string' ? Buffer.from(t) : t));
        return false;
      case Op.SYMLINK: {
        const a = readName(b, B);
        const target = readName(b, a.next);
        this.answer(u, 'SYMLINK', ops.symlink?.(ctx, node, a.name, target.name), (e) => this.entry(e));
        return false;
      }
      case Op.MKNOD: {
        const mode = b.readUInt32LE(B);
        const rdev = b.readUInt32LE(B + 4);
        const { name } = readName(b, B + 16);
        this.answer(u, 'MKNOD', ops.mknod?.(ctx, node, name, mode, rdev), (e) => this.entry(e));
        return false;
      }
      case Op.MKDIR: {
        const mode = b.readUInt32LE(B);
        const { name } = readName(b, B + 8);
        this.answer(u, 'MKDIR', ops.mkdir?.(ctx, node, name, mode), (e) => this.entry(e));
        return false;
      }
      case Op.UNLINK:
        this.answer(u, 'UNLINK', ops.unlink?.(ctx, node, readName(b, B).name), () => undefined);
        return false;
      case Op.RMDIR:
        this.answer(u, 'RMDIR', ops.rmdir?.(ctx, node, readName(b, B).name), () => undefined);
        return false;
      case Op.RENAME:
      case Op.RENAME2: {
        const newDir = Number(b.readBigUInt64LE(B));
        const flags = h.opcode === Op.RENAME2 ? b.readUInt32LE(B + 8) : 0;
        const from = readName(b, B + (h.opcode === Op.RENAME2 ? 16 : 8));
        const to = readName(b, from.next);
        this.answer(u, 'RENAME', ops.rename?.(ctx, node, from.name, newDir, to.name, flags), () => undefined);
        return false;
      }
      case Op.LINK: {
        const old = Number(b.readBigUInt64LE(B));
        const { name } = readName(b, B + 8);
        this.answer(u, 'LINK', ops.link?.(ctx, old, node, name), (e) => this.entry(e));
        return false;
      }
      case Op.OPEN: {
        const flags = b.readUInt32LE(B);
        this.answer(u, 'OPEN', ops.open?.(ctx, node, flags), (o) => encodeOpenOut(o.fh, FuseSession.openFlags(o)));
        return false;
      }
      case Op.CREATE: {
        const flags = b.readUInt32LE(B);
        const mode = b.readUInt32LE(B + 4);
        const { name } = readName(b, B + 16);
        this.answer(u, 'CREATE', ops.create?.(ctx, node, name, mode, flags), (r) =>
          Buffer.concat([this.entry(r.entry), encodeOpenOut(r.opened.fh, FuseSession.openFlags(r.opened))]),
        );
        return false;
      }
      case Op.READ: {
        const fh = Number(b.readBigUInt64LE(B));
        const offset = Number(b.readBigUInt64LE(B + 8));
        const size = b.readUInt32LE(B + 16);
        this.answer(u, 'READ', ops.read?.(ctx, node, fh, offset, size), (got): [undefined, Buffer, (() => void)?] => {
          const [data, giveBack] = Buffer.isBuffer(got) ? [got, undefined] : [got.data, () => got.giveBack()];
          return [undefined, data.length > size ? data.subarray(0, size) : data, giveBack];
        });
        return false;
      }
      case Op.WRITE: {
        const fh = Number(b.readBigUInt64LE(B));
        const offset = Number(b.readBigUInt64LE(B + 8));
        const size = b.readUInt32LE(B + 16);
        const start = B + WRITE_IN_SIZE;
        const view = b.subarray(start, Math.min(n, start + size));
        // A large WRITE hands the read buffer over; a small one is copied so the buffer is reused.
        const handOver = view.length >= HAND_OVER_BYTES;
        const data = handOver ? view : Buffer.from(view);
        const giveBack = handOver ? () => this.reuse(b) : undefined;
        const flags = { killPriv: (b.readUInt32LE(B + 20) & WRITE_KILL_PRIV) !== 0 };
        this.answer(u, 'WRITE', ops.write?.(ctx, node, fh, offset, data, giveBack, flags), (count) => {
          const o = Buffer.alloc(8);
          o.writeUInt32LE(count, 0);
          return o;
        });
        return handOver;
      }
      case Op.STATFS:
        this.answer(u, 'STATFS', ops.statfs?.(ctx, node), (s) => encodeStatfs(s));
        return false;
      case Op.FLUSH:
        this.answer(u, 'FLUSH', ops.flush?.(ctx, node, Number(b.readBigUInt64LE(B))), () => undefined);
        return false;
      case Op.FSYNC:
      case Op.FSYNCDIR: {
        const fh = Number(b.readBigUInt64LE(B));
        const datasync = (b.readUInt32LE(B + 8) & FSYNC_FDATASYNC) !== 0;
        const work = h.opcode === Op.FSYNC ? ops.fsync?.(ctx, node, fh, datasync) : Promise.resolve();
        this.answer(u, 'FSYNC', work, () => undefined);
        return false;
      }
      case Op.RELEASE:
        this.answer(u, 'RELEASE', ops.release?.(ctx, node, Number(b.readBigUInt64LE(B))) ?? Promise.resolve(), () => undefined);
        return false;
      case Op.OPENDIR:
        this.answer(u, 'OPENDIR', ops.opendir?.(ctx, node) ?? Promise.resolve({ fh: 0 }), (o) => encodeOpenOut(o.fh, FuseSession.openFlags(o)));
        return false;
      case Op.READDIR:
      case Op.READDIRPLUS: {
        const fh = Number(b.readBigUInt64LE(B));
        const offset = Number(b.readBigUInt64LE(B + 8));
        const size = b.readUInt32LE(B + 16);
        const plus = h.opcode === Op.READDIRPLUS;
        this.answer(u, plus ? 'READDIRPLUS' : 'READDIR', ops.readdir?.(ctx, node, fh, offset, plus), (list) => packDirents(list, size, plus, this.entryTtlMs, this.attrTtlMs));
        return false;
      }
      case Op.RELEASEDIR:
        this.answer(u, 'RELEASEDIR', ops.releasedir?.(ctx, node, Number(b.readBigUInt64LE(B))) ?? Promise.resolve(), () => undefined);
        return false;
      default:
        // xattrs, locks (the kernel then keeps them locally), fallocate, lseek, ioctl, poll…
        this.send(u, -ERRNO.ENOSYS);
        return false;
    }
  }

  private init(unique: bigint, b: Buffer): void {
    const B = IN_HEADER_SIZE;
    const major = b.readUInt32LE(B);
    const minor = b.readUInt32LE(B + 4);
    const kernelReadahead = b.readUInt32LE(B + 8);
    const offered = b.readUInt32LE(B + 12);
    const o = Buffer.alloc(INIT_OUT_SIZE);
    o.writeUInt32LE(KERNEL_MAJOR, 0);
    o.writeUInt32LE(KERNEL_MINOR, 4);
    if (major !== KERNEL_MAJOR || minor < 23) {
      // Older than Linux 3.15, or a protocol this library does not know.
      this.send(unique, -ERRNO.EPROTO);
      this.close(new Error(`the kernel speaks FUSE ${major}.${minor}; 7.23 or later is needed`));
      return;
    }
    const flags = (DEFAULT_FLAGS | (this.opts.wantFlags ?? 0)) & offered;
    const maxPages = flags & Init.MAX_PAGES ? Math.ceil(this.maxWrite / PAGE) : 32;
    const maxWrite = Math.min(this.maxWrite, maxPages * PAGE);
    const maxReadahead = Math.min(kernelReadahead, this.opts.maxReadahead ?? 1024 * 1024);
    const maxBackground = this.opts.maxBackground ?? 64;
    o.writeUInt32LE(maxReadahead, 8);
    o.writeUInt32LE(flags >>> 0, 12);
    o.writeUInt16LE(maxBackground, 16);
    o.writeUInt16LE(Math.floor((maxBackground * 3) / 4), 18);
    o.writeUInt32LE(maxWrite, 20);
    o.writeUInt32LE(1, 24); // timestamps to the nanosecond
    o.writeUInt16LE(maxPages, 28);
    this.negotiated = { major, minor: Math.min(minor, KERNEL_MINOR), flags, maxWrite, maxReadahead };
    this.send(unique, 0, o);
    this.emit('init', this.negotiated);
  }
}
