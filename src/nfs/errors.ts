// Typed errors. Every error this library throws is an NfsClientError with an
// errno-style `code`; server status codes (nfsstat3, mountstat3) come as the
// subclass NfsError, which also carries the raw `nfsStatus` number.

export class NfsClientError extends Error {
  readonly code: string;
  /** The call that failed, e.g. "NFS3.LOOKUP" or "MOUNT3.MNT". */
  readonly procedure?: string;

  constructor(code: string, message: string, options: { procedure?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'NfsClientError';
    this.code = code;
    this.procedure = options.procedure;
  }
}

/** The server answered the call with a status other than OK. */
export class NfsError extends NfsClientError {
  readonly nfsStatus: number;

  constructor(nfsStatus: number, procedure: string, detail?: string) {
    const entry = NFS3_STATUS[nfsStatus];
    const code = entry?.code ?? 'EIO';
    const text = entry?.text ?? `unknown status ${nfsStatus}`;
    super(code, `${procedure} failed: ${text}${detail ? ` (${detail})` : ''}`, { procedure });
    this.name = 'NfsError';
    this.nfsStatus = nfsStatus;
  }
}

/**
 * The RPC layer failed: timeout, connection lost, or the server refused the
 * call itself (program/procedure unavailable, authentication error…).
 */
export class RpcError extends NfsClientError {
  constructor(code: string, message: string, options: { procedure?: string; cause?: unknown } = {}) {
    super(code, message, options);
    this.name = 'RpcError';
  }
}

/**
 * The write verifier changed between unstable WRITEs and their COMMIT: the
 * server restarted and may have lost the data. Resend the range, then commit.
 */
export class WriteVerifierError extends NfsClientError {
  constructor(
    readonly offset: number,
    readonly count: number,
    readonly expected: Buffer,
    readonly actual: Buffer,
  ) {
    super(
      'EVERIFIER',
      `write verifier changed from ${expected.toString('hex')} to ${actual.toString('hex')}: ` +
        `the server may have lost unstable data in [${offset}, ${offset + count}); resend it`,
      { procedure: 'NFS3.COMMIT' },
    );
    this.name = 'WriteVerifierError';
  }
}

export interface StatusEntry {
  readonly name: string;
  readonly code: string;
  readonly text: string;
}

/** nfsstat3 (RFC 1813 §2.6) → errno-style code. */
export const NFS3_STATUS: Readonly<Record<number, StatusEntry>> = Object.freeze({
  1: { name: 'NFS3ERR_PERM', code: 'EPERM', text: 'not owner' },
  2: { name: 'NFS3ERR_NOENT', code: 'ENOENT', text: 'no such file or directory' },
  5: { name: 'NFS3ERR_IO', code: 'EIO', text: 'I/O error' },
  6: { name: 'NFS3ERR_NXIO', code: 'ENXIO', text: 'no such device or address' },
  13: { name: 'NFS3ERR_ACCES', code: 'EACCES', text: 'permission denied' },
  17: { name: 'NFS3ERR_EXIST', code: 'EEXIST', text: 'file exists' },
  18: { name: 'NFS3ERR_XDEV', code: 'EXDEV', text: 'cross-device link' },
  19: { name: 'NFS3ERR_NODEV', code: 'ENODEV', text: 'no such device' },
  20: { name: 'NFS3ERR_NOTDIR', code: 'ENOTDIR', text: 'not a directory' },
  21: { name: 'NFS3ERR_ISDIR', code: 'EISDIR', text: 'is a directory' },
  22: { name: 'NFS3ERR_INVAL', code: 'EINVAL', text: 'invalid argument' },
  27: { name: 'NFS3ERR_FBIG', code: 'EFBIG', text: 'file too large' },
  28: { name: 'NFS3ERR_NOSPC', code: 'ENOSPC', text: 'no space left on device' },
  30: { name: 'NFS3ERR_ROFS', code: 'EROFS', text: 'read-only file system' },
  31: { name: 'NFS3ERR_MLINK', code: 'EMLINK', text: 'too many links' },
  63: { name: 'NFS3ERR_NAMETOOLONG', code: 'ENAMETOOLONG', text: 'file name too long' },
  66: { name: 'NFS3ERR_NOTEMPTY', code: 'ENOTEMPTY', text: 'directory not empty' },
  69: { name: 'NFS3ERR_DQUOT', code: 'EDQUOT', text: 'disk quota exceeded' },
  70: { name: 'NFS3ERR_STALE', code: 'ESTALE', text: 'stale file handle' },
  71: { name: 'NFS3ERR_REMOTE', code: 'EREMOTE', text: 'too many levels of remote in path' },
  10001: { name: 'NFS3ERR_BADHANDLE', code: 'EBADHANDLE', text: 'illegal file handle' },
  10002: { name: 'NFS3ERR_NOT_SYNC', code: 'ENOTSYNC', text: 'update synchronization mismatch' },
  10003: { name: 'NFS3ERR_BAD_COOKIE', code: 'EBADCOOKIE', text: 'readdir cookie is stale' },
  10004: { name: 'NFS3ERR_NOTSUPP', code: 'ENOTSUP', text: 'operation not supported' },
  10005: { name: 'NFS3ERR_TOOSMALL', code: 'ETOOSMALL', text: 'buffer or request too small' },
  10006: { name: 'NFS3ERR_SERVERFAULT', code: 'ESERVERFAULT', text: 'server fault' },
  10007: { name: 'NFS3ERR_BADTYPE', code: 'EBADTYPE', text: 'type not supported by server' },
  10008: { name: 'NFS3ERR_JUKEBOX', code: 'EJUKEBOX', text: 'server busy, try again later' },
});

/** mountstat3 values share numbers (and so codes) with nfsstat3. */
export const MOUNT3_STATUS_CODES: readonly number[] = [1, 2, 5, 13, 20, 22, 63, 10004, 10006];

export function nfsStatusCode(status: number): string {
  return NFS3_STATUS[status]?.code ?? 'EIO';
}

export function isNfsError(err: unknown, code?: string): err is NfsClientError {
  return err instanceof NfsClientError && (code === undefined || err.code === code);
}

/** Transport failures: no connection could be made, it broke, or a call got no answer in time. */
const TRANSPORT_CODES: ReadonlySet<string> = new Set(['ETIMEDOUT', 'ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE']);

/** Beyond those: the server's name does not resolve, the client was closed, or nothing serves NFS/MOUNT there. */
const UNREACHABLE_CODES: ReadonlySet<string> = new Set([...TRANSPORT_CODES, 'ENOTFOUND', 'EAI_AGAIN', 'ECLOSED', 'EPROGUNAVAIL', 'EPROGMISMATCH']);

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * The server could not be reached or did not answer, so nothing is known about the request
 * itself: whoever holds a connection should drop it and report the server unavailable.
 */
export function isUnreachableError(err: unknown): boolean {
  const code = codeOf(err);
  return code !== undefined && UNREACHABLE_CODES.has(code);
}

/**
 * The same call may simply be sent again once the server answers: a transport failure of the RPC
 * layer, or the server's "busy, try again later" (NFS3ERR_JUKEBOX). Narrower than
 * isUnreachableError: a closed client or a missing service is not worth resending to.
 */
export function isTransportError(err: unknown): boolean {
  const code = codeOf(err);
  if (code === 'EJUKEBOX') return true;
  return err instanceof RpcError && code !== undefined && TRANSPORT_CODES.has(code);
}
