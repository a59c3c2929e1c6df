import { constants } from 'node:os';

const ERRNO = constants.errno as Record<string, number>;

/**
 * Library codes that are not Linux errno names, as the errno an application should see.
 * (NFS-only statuses have no errno of their own; the kernel's NFS client maps them the same way.)
 */
const SPECIAL: Record<string, string> = {
  EBADHANDLE: 'ESTALE',
  ENOTSUP: 'EOPNOTSUPP',
  ENOTSYNC: 'EIO',
  EBADCOOKIE: 'EIO',
  ETOOSMALL: 'EIO',
  ESERVERFAULT: 'EIO',
  EBADTYPE: 'EINVAL',
  EJUKEBOX: 'EAGAIN',
  EVERIFIER: 'EIO',
  ECLOSED: 'ENOTCONN',
  EPROGUNAVAIL: 'EIO',
  EPROTO: 'EIO',
};

/** The negative errno FUSE expects for an error thrown by the NFS library (EIO when unknown). */
export function toErrno(err: unknown): number {
  const code = (err as { code?: unknown })?.code;
  if (typeof code === 'number' && code < 0) return code;
  if (typeof code === 'string') {
    const name = SPECIAL[code] ?? code;
    const n = ERRNO[name];
    if (typeof n === 'number') return -n;
  }
  return -ERRNO.EIO;
}

/** An error carrying a Linux errno name, for failures the FUSE server decides itself. */
export class FsError extends Error {
  constructor(
    readonly code: string,
    message = code,
  ) {
    super(message);
  }
}
