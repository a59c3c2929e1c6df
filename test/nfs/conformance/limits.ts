/**
 * The documented NFSv3 limits: the only places where the mount may answer differently from a local
 * disk. Each says which steps it covers, what the mount may answer instead, and why. The README's
 * section on volume types lists the same entries; keep the two in step.
 */
import { FIELD, shortName, type Outcome, type Step } from './support/sweep';

export interface Limit {
  id: string;
  reason: string;
  /** The steps this limit covers. */
  applies(step: Step): boolean;
  /** What the mount may answer instead of the local disk's outcome. */
  mountMay(mount: Outcome, local: Outcome, step: Step): boolean;
}

const TWO_TO_32 = 2 ** 32;

function outOfNfsTime(spec: unknown): boolean {
  return Array.isArray(spec) && (Number(spec[0]) < 0 || Number(spec[0]) >= TWO_TO_32);
}

/** Refused with one of `codes`, and no observed time changed. */
function refusedWith(codes: string[]): (mount: Outcome) => boolean {
  const isTime = (key: string): boolean => ['atime', 'mtime', 'ctime'].includes(key.split(FIELD)[1]);
  return (mount) => codes.includes(mount.get('r') ?? '') && [...mount].every(([k, v]) => !isTime(k) || v === 'same' || v === 'old');
}

export const LIMITS: Limit[] = [
  {
    id: 'times-outside-32-bit-seconds',
    reason:
      'NFSv3 carries a time as unsigned 32-bit seconds since 1970 (nfstime3): times before 1970 or at or after 2^32 s (2106-02-07) cannot be sent, so the mount refuses them (EINVAL or EOVERFLOW) and changes nothing',
    applies: (s) => s.op === 'utimens' && (outOfNfsTime(s.args?.atime) || outOfNfsTime(s.args?.mtime)),
    mountMay: refusedWith(['EINVAL', 'EOVERFLOW']),
  },
  {
    id: 'server-keeps-symlink-times',
    reason:
      "a server limit, not NFSv3's: nfs-ganesha's VFS backend (the test server) answers OK to setting a symlink's own times but keeps the old ones, so the mount, which checks the answer, refuses with EOPNOTSUPP and changes nothing rather than pretend (a server that applies them, such as the Linux kernel's, gives the local disk's answer)",
    applies: (s) => s.op === 'utimens' && s.args?.follow === false,
    mountMay: (m, l, s) => l.get(`${shortName(String(s.args?.path))}${FIELD}type`) === 'symlink' && refusedWith(['EOPNOTSUPP', 'ENOTSUP'])(m),
  },
  {
    id: 'no-rename-exchange',
    reason: 'NFSv3 RENAME replaces the target; it cannot swap two names atomically, so renameat2(RENAME_EXCHANGE) is refused with EINVAL, as the kernel NFS client does',
    applies: (s) => s.op === 'rename' && s.args?.flags === 'exchange',
    mountMay: (m) => m.get('r') === 'EINVAL',
  },
  {
    id: 'no-anonymous-files',
    reason: 'NFSv3 has no file without a name: open(O_TMPFILE) is refused with EOPNOTSUPP, as on the kernel NFS client; tmpfile() and similar fall back to create-then-unlink, which works',
    applies: (s) => s.op === 'open' && Array.isArray(s.args?.flags) && (s.args.flags as string[]).includes('O_TMPFILE'),
    mountMay: (m) => m.get('r') === 'EOPNOTSUPP' || m.get('r') === 'ENOTSUP', // one errno on Linux, two names
  },
];
