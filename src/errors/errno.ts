import { ErrorCode } from './codes';
import { NetvolError } from './netvol-error';

/** Node errno codes → netvol codes, in one place (after Deno std's fs error mapping). */
const ERRNO: Record<string, ErrorCode> = {
  ENOENT: 'NOT_FOUND',
  EACCES: 'PERMISSION',
  EPERM: 'PERMISSION',
  ENOSPC: 'NO_SPACE',
  EDQUOT: 'NO_SPACE',
  ETIMEDOUT: 'TIMEOUT',
  ECONNREFUSED: 'BACKEND_UNAVAILABLE',
  EHOSTUNREACH: 'BACKEND_UNAVAILABLE',
  ENETUNREACH: 'BACKEND_UNAVAILABLE',
  ECONNRESET: 'BACKEND_UNAVAILABLE',
  ENOTCONN: 'BACKEND_UNAVAILABLE',
  EBUSY: 'IN_USE',
};

/** Turns a Node system error into a NetvolError whose text starts with `what` (e.g. "cannot create volume x"). */
export function fromErrno(err: unknown, what: string, volume?: string): NetvolError {
  if (err instanceof NetvolError) return err;
  const e = err as NodeJS.ErrnoException;
  const code: ErrorCode = (e && typeof e.code === 'string' && ERRNO[e.code]) || 'INTERNAL';
  const reason = e && e.code ? `${e.code}${e.syscall ? ` on ${e.syscall}` : ''}` : String((e as Error)?.message ?? e);
  return new NetvolError(code, `${what}: ${reason}`, { volume, cause: err });
}
