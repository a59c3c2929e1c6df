/**
 * Cases about attributes: chmod and chown of every file type by every kind of user, set-user-ID
 * and set-group-ID bits (cleared by writes, truncation and chown as a local disk clears them), and
 * utimensat with explicit times, UTIME_NOW and UTIME_OMIT on every file type.
 */
import { Cases } from '../support/cases';
import { Case, FileType, make, MEMBER, OTHER, SECOND_GID, Step, UserName } from '../support/sweep';

const TYPES_NO_BLK: FileType[] = ['reg', 'dir', 'symlink', 'fifo', 'sock', 'chr'];

export function chmodChownCases(): Case[] {
  const c = new Cases('owner', 0o777);
  for (const type of TYPES_NO_BLK) {
    for (const user of ['owner', 'other', 'root'] as UserName[]) {
      for (const mode of [0o7777, 0o1640, 0o000]) {
        const dir = c.fresh();
        const p = `${dir}/x`;
        c.add(`chmod ${mode.toString(8)}`, user, type, [...make(dir, 'dir', { mode: 0o777 }), ...make(`${dir}/tgt`, 'reg', { owner: 'owner' }), ...make(p, type, { owner: 'owner', target: 'tgt' })], [
          { user, op: 'chmod', args: { path: p, mode }, observe: [p, `${dir}/tgt`] },
        ]);
      }
    }
    const changes: [UserName, number, number, string][] = [
      ['root', OTHER, OTHER, 'to another user and group'],
      ['root', -1, SECOND_GID, 'group only'],
      ['root', OTHER, -1, 'user only'],
      ['owner', -1, SECOND_GID, 'group to one of the owner\'s groups'],
      ['owner', -1, OTHER, 'group to a group the owner is not in'],
      ['owner', OTHER, -1, 'user to another user'],
      ['owner', -1, -1, 'nothing'],
      ['other', -1, -1, 'nothing'],
      ['other', OTHER, OTHER, 'to itself'],
    ];
    for (const [user, uid, gid, what] of changes) {
      for (const follow of type === 'symlink' ? [false, true] : [false]) {
        const dir = c.fresh();
        const p = `${dir}/x`;
        c.add(`chown ${what}${follow ? ' (following the symlink)' : ''}`, user, type, [...make(dir, 'dir', { mode: 0o777 }), ...make(`${dir}/tgt`, 'reg', { owner: 'owner' }), ...make(p, type, { owner: 'owner', mode: type === 'dir' ? 0o755 : 0o644, target: 'tgt' })], [
          { user, op: 'chown', args: { path: p, uid, gid, follow }, observe: [p, `${dir}/tgt`] },
        ]);
      }
    }
  }
  return c.list;
}

/** Set-ID bits: what writes by each user, truncation, chown and chmod leave of them. */
export function setIdCases(): Case[] {
  const c = new Cases('setid', 0o777);
  const writes: [string, (p: string, user: UserName) => Step][] = [
    ['write through O_WRONLY', (p, user) => ({ user, op: 'open', args: { path: p, flags: ['O_WRONLY'], write: 'w' } })],
    ['write through O_RDWR', (p, user) => ({ user, op: 'open', args: { path: p, flags: ['O_RDWR'], write: 'w' } })],
    ['write through O_APPEND', (p, user) => ({ user, op: 'open', args: { path: p, flags: ['O_WRONLY', 'O_APPEND'], write: 'w' } })],
    ['open with O_TRUNC', (p, user) => ({ user, op: 'open', args: { path: p, flags: ['O_WRONLY', 'O_TRUNC'] } })],
    ['truncate(2)', (p, user) => ({ user, op: 'truncate', args: { path: p, size: 2 } })],
  ];
  for (const mode of [0o4777, 0o2777, 0o6777, 0o2767]) {
    for (const user of ['owner', 'member', 'other', 'root'] as UserName[]) {
      for (const [what, step] of writes) {
        const p = `${c.fresh()}`;
        c.add(`${what} of a ${mode.toString(8)} file`, user, 'reg', make(p, 'reg', { owner: 'owner', mode }), [{ ...step(p, user), observe: [p] }]);
      }
    }
  }
  for (const type of ['reg', 'dir'] as FileType[]) {
    for (const mode of [0o4755, 0o2755, 0o6755, 0o2745, 0o6711]) {
      const p = c.fresh();
      c.add(`chown by root of a ${mode.toString(8)} ${type}`, 'root', type, make(p, type, { owner: 'owner', mode }), [
        { user: 'root', op: 'chown', args: { path: p, uid: OTHER, gid: -1 }, observe: [p] },
      ]);
      const q = c.fresh();
      c.add(`chgrp by the owner of a ${mode.toString(8)} ${type}`, 'owner', type, make(q, type, { owner: 'owner', mode }), [
        { user: 'owner', op: 'chown', args: { path: q, uid: -1, gid: SECOND_GID }, observe: [q] },
      ]);
    }
    // chmod g+s by an owner who is not in the file's group: the bit is dropped.
    const p = c.fresh();
    c.add('chmod 2755 by an owner outside the group', 'owner', type, make(p, type, { owner: 'owner', group: MEMBER, mode: 0o755 }), [
      { user: 'owner', op: 'chmod', args: { path: p, mode: 0o2755 }, observe: [p] },
    ]);
  }
  const p = c.fresh();
  c.add('fchmod 2755 by an owner outside the group', 'owner', 'reg', make(p, 'reg', { owner: 'owner', group: MEMBER, mode: 0o644 }), [
    { user: 'owner', op: 'open', args: { path: p, flags: ['O_RDONLY'], fd: 'f' } },
    { user: 'owner', op: 'fchmod', args: { fd: 'f', mode: 0o2755 }, observe: [p] },
    { user: 'owner', op: 'close', args: { fd: 'f' } },
  ]);
  return c.list;
}

type TimeSpec = [number, number] | 'now' | 'omit';
const E: [number, number] = [1_234_567_890, 123_456_789];
const E2: [number, number] = [1_500_000_000, 987_654_321];
const SPECS: [string, TimeSpec | null, TimeSpec | null][] = [
  ['explicit, explicit', E, E2],
  ['now, now', 'now', 'now'],
  ['omit, omit', 'omit', 'omit'],
  ['explicit, omit', E, 'omit'],
  ['omit, explicit', 'omit', E2],
  ['now, omit', 'now', 'omit'],
  ['omit, now', 'omit', 'now'],
  ['explicit, now', E, 'now'],
  ['now, explicit', 'now', E2],
  ['NULL (both now)', null, null],
];

function utimens(user: UserName, p: string, atime: TimeSpec | null, mtime: TimeSpec | null, follow = false, observe: string[] = [p]): Step {
  const args = atime === null ? { path: p, null: true, follow } : { path: p, atime, mtime, follow };
  return { user, op: 'utimens', args, observe, atime: true };
}

export function timeCases(): Case[] {
  const c = new Cases('times', 0o777);
  for (const type of TYPES_NO_BLK) {
    for (const [what, a, m] of SPECS) {
      const dir = c.fresh();
      const p = `${dir}/x`;
      c.add(`utimensat ${what}`, 'owner', type, [...make(dir, 'dir', { mode: 0o777 }), ...make(`${dir}/tgt`, 'reg', { owner: 'owner' }), ...make(p, type, { owner: 'owner', target: 'tgt' })], [
        utimens('owner', p, a, m, false, [p, `${dir}/tgt`]),
      ]);
    }
  }
  for (const [what, a, m] of SPECS) {
    const dir = c.fresh();
    c.add(`utimensat ${what} following a symlink`, 'owner', 'symlink', [...make(dir, 'dir', { mode: 0o777 }), ...make(`${dir}/tgt`, 'reg', { owner: 'owner' }), ...make(`${dir}/x`, 'symlink', { owner: 'owner', target: 'tgt' })], [
      utimens('owner', `${dir}/x`, a, m, true, [`${dir}/tgt`]),
    ]);
    // Who may set times: the owner and root any; another user "now" only with write permission.
    for (const [user, mode] of [['other', 0o666], ['other', 0o644], ['member', 0o664], ['root', 0o600]] as [UserName, number][]) {
      const p = c.fresh();
      c.add(`utimensat ${what} on a ${mode.toString(8)} file`, user, 'reg', make(p, 'reg', { owner: 'owner', mode }), [utimens(user, p, a, m)]);
    }
  }
  // Edges of the range: nanoseconds, 2038, the last second NFSv3 can carry, and beyond.
  const edges: [number, number][] = [[0, 0], [0, 1], [2 ** 31 - 1, 999_999_999], [2 ** 31, 0], [2 ** 32 - 1, 999_999_999], [2 ** 32, 0], [10_000_000_000, 0], [-1, 500_000_000], [-(2 ** 31), 0]];
  for (const t of edges) {
    const p = c.fresh();
    c.add(`utimensat to ${t[0]}.${String(t[1]).padStart(9, '0')} s`, 'owner', 'reg', make(p, 'reg', { owner: 'owner' }), [utimens('owner', p, t, t)]);
  }
  return c.list;
}
