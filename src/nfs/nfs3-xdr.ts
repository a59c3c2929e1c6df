// Encoders and decoders for the NFSv3 structures shared by many procedures.

import { XdrReader, XdrWriter } from './xdr';
import { Fattr, FileType, NfsName, NfsTime, Sattr, WccAttr, WccData } from './nfs3-types';
import { NfsClientError } from './errors';

export const NFS3_FHSIZE = 64;
export const NFS3_COOKIEVERFSIZE = 8;
export const NFS3_WRITEVERFSIZE = 8;

export function readTime(r: XdrReader): NfsTime {
  return { seconds: r.uint32(), nseconds: r.uint32() };
}

/** The last second an nfstime3 can name (2106-02-07T06:28:15Z); nothing before 1970 either. */
export const NFS3_MAX_SECONDS = 0xffff_ffff;

export function writeTime(w: XdrWriter, t: NfsTime): void {
  if (!Number.isInteger(t.seconds) || t.seconds < 0 || t.seconds > NFS3_MAX_SECONDS) {
    throw new NfsClientError('EOVERFLOW', `cannot send the time ${t.seconds} s: NFSv3 times are whole seconds from 1970 to 2106 (0 to 2^32-1)`);
  }
  if (!Number.isInteger(t.nseconds) || t.nseconds < 0 || t.nseconds > 999_999_999) {
    throw new NfsClientError('EINVAL', `cannot send ${t.nseconds} nanoseconds: they must be 0 to 999999999`);
  }
  w.uint32(t.seconds).uint32(t.nseconds);
}

export function readFattr(r: XdrReader): Fattr {
  return {
    type: r.uint32() as FileType,
    mode: r.uint32(),
    nlink: r.uint32(),
    uid: r.uint32(),
    gid: r.uint32(),
    size: r.uint64Number(),
    used: r.uint64Number(),
    rdev: { major: r.uint32(), minor: r.uint32() },
    fsid: r.uint64(),
    fileid: r.uint64(),
    atime: readTime(r),
    mtime: readTime(r),
    ctime: readTime(r),
  };
}

export function readPostOpAttr(r: XdrReader): Fattr | undefined {
  return r.optional(readFattr);
}

function readWccAttr(r: XdrReader): WccAttr {
  return { size: r.uint64Number(), mtime: readTime(r), ctime: readTime(r) };
}

export function readWcc(r: XdrReader): WccData {
  return { before: r.optional(readWccAttr), after: readPostOpAttr(r) };
}

export function readHandle(r: XdrReader): Buffer {
  // Copied: handles outlive the record they arrived in.
  return Buffer.from(r.opaque(NFS3_FHSIZE));
}

export function readPostOpFh(r: XdrReader): Buffer | undefined {
  return r.optional(readHandle);
}

export function writeHandle(w: XdrWriter, fh: Buffer): void {
  if (fh.length > NFS3_FHSIZE) throw new RangeError(`file handle longer than ${NFS3_FHSIZE} bytes`);
  w.opaque(fh);
}

export function writeDirOp(w: XdrWriter, dir: Buffer, name: NfsName): void {
  writeHandle(w, dir);
  writeName(w, name);
}

/** A filename3 or nfspath3: a string as UTF-8, a Buffer byte for byte. */
export function writeName(w: XdrWriter, name: NfsName): void {
  w.opaque(typeof name === 'string' ? Buffer.from(name, 'utf8') : name);
}

function writeSetTime(w: XdrWriter, t: NfsTime | 'server' | undefined): void {
  if (t === undefined) w.uint32(0);
  else if (t === 'server') w.uint32(1);
  else {
    w.uint32(2);
    writeTime(w, t);
  }
}

export function writeSattr(w: XdrWriter, a: Sattr = {}): void {
  w.optional(a.mode, (x, v) => x.uint32(v));
  w.optional(a.uid, (x, v) => x.uint32(v));
  w.optional(a.gid, (x, v) => x.uint32(v));
  w.optional(a.size, (x, v) => x.uint64(v));
  writeSetTime(w, a.atime);
  writeSetTime(w, a.mtime);
}
