// NFS version 3 data types (RFC 1813 §2.5–2.6) as TypeScript shapes.
// Sizes and offsets are numbers (exact up to 2^53 bytes); file ids, cookies
// and fsids are bigints because servers use the whole 64 bits.

export const NFS_PROGRAM = 100003;
export const NFS_VERSION = 3;

export enum FileType {
  REG = 1,
  DIR = 2,
  BLK = 3,
  CHR = 4,
  LNK = 5,
  SOCK = 6,
  FIFO = 7,
}

export enum StableHow {
  UNSTABLE = 0,
  DATA_SYNC = 1,
  FILE_SYNC = 2,
}

/** ACCESS bits (RFC 1813 §3.3.4). */
export const ACCESS_READ = 0x01;
export const ACCESS_LOOKUP = 0x02;
export const ACCESS_MODIFY = 0x04;
export const ACCESS_EXTEND = 0x08;
export const ACCESS_DELETE = 0x10;
export const ACCESS_EXECUTE = 0x20;

/** FSINFO properties bits. */
export const FSF_LINK = 0x01;
export const FSF_SYMLINK = 0x02;
export const FSF_HOMOGENEOUS = 0x08;
export const FSF_CANSETTIME = 0x10;

export interface NfsTime {
  seconds: number;
  nseconds: number;
}

export interface Fattr {
  type: FileType;
  /** Permission bits only (no file type bits). */
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  used: number;
  rdev: { major: number; minor: number };
  fsid: bigint;
  fileid: bigint;
  atime: NfsTime;
  mtime: NfsTime;
  ctime: NfsTime;
}

/** Attributes before an operation, for weak cache consistency. */
export interface WccAttr {
  size: number;
  mtime: NfsTime;
  ctime: NfsTime;
}

export interface WccData {
  before?: WccAttr;
  after?: Fattr;
}

/** Attributes to set; fields left undefined are not changed. */
export interface Sattr {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  /** 'server' sets the server's current time. */
  atime?: NfsTime | 'server';
  mtime?: NfsTime | 'server';
}

export type CreateHow =
  | { mode: 'unchecked'; attrs?: Sattr }
  | { mode: 'guarded'; attrs?: Sattr }
  /** verifier: 8 bytes that identify this create attempt, so a resend succeeds. */
  | { mode: 'exclusive'; verifier: Buffer };

/**
 * What MKNOD makes: a device with its major and minor numbers, or a socket or FIFO. (Regular
 * files, folders and symlinks have procedures of their own; a server answers other types with
 * NFS3ERR_BADTYPE.)
 */
export type MknodWhat =
  | { type: FileType.CHR | FileType.BLK; rdev: { major: number; minor: number }; attrs?: Sattr }
  | { type: FileType.SOCK | FileType.FIFO; attrs?: Sattr };

export interface LookupResult {
  handle: Buffer;
  attrs?: Fattr;
  dirAttrs?: Fattr;
}

export interface CreateResult {
  handle: Buffer;
  attrs?: Fattr;
  dirWcc: WccData;
}

export interface AccessResult {
  /** Granted ACCESS_* bits among the ones asked for. */
  access: number;
  attrs?: Fattr;
}

export interface ReadResult {
  /** A view of the received record; copy it if you keep it long. */
  data: Buffer;
  eof: boolean;
  attrs?: Fattr;
}

/** A READ whose data stays in the received record until `release()` hands it back to the pool. */
export interface LentReadResult extends ReadResult {
  /** Nothing may read `data` afterwards. Not calling it is safe (the memory is then collected). */
  release(): void;
}

export interface WriteResult {
  count: number;
  committed: StableHow;
  /** 8-byte write verifier; compare with COMMIT's to detect a server restart. */
  verifier: Buffer;
  wcc: WccData;
}

export interface CommitResult {
  verifier: Buffer;
  wcc: WccData;
}

/**
 * A name in a directory (filename3) or a symlink target (nfspath3): opaque bytes on the wire. A
 * string is sent as UTF-8; a Buffer as it is, for names that are not UTF-8.
 */
export type NfsName = string | Buffer;

export interface DirEntryPlus {
  fileid: bigint;
  /** The name decoded as UTF-8, for display and plain names (bytes that are not UTF-8 become U+FFFD). */
  name: string;
  /** The name's bytes as the server sent them: use these to name the entry back to the server. */
  rawName: Buffer;
  cookie: bigint;
  attrs?: Fattr;
  handle?: Buffer;
}

export interface ReaddirPlusPage {
  entries: DirEntryPlus[];
  eof: boolean;
  cookieverf: Buffer;
  dirAttrs?: Fattr;
}

export interface FsStat {
  totalBytes: number;
  freeBytes: number;
  availBytes: number;
  totalFiles: number;
  freeFiles: number;
  availFiles: number;
  invarsec: number;
  attrs?: Fattr;
}

export interface FsInfo {
  rtmax: number;
  rtpref: number;
  rtmult: number;
  wtmax: number;
  wtpref: number;
  wtmult: number;
  dtpref: number;
  maxFileSize: number;
  timeDelta: NfsTime;
  properties: number;
  attrs?: Fattr;
}

export interface PathConf {
  linkMax: number;
  nameMax: number;
  noTrunc: boolean;
  chownRestricted: boolean;
  caseInsensitive: boolean;
  casePreserving: boolean;
  attrs?: Fattr;
}
