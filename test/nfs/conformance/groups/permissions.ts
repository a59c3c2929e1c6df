/**
 * Cases about who may do what: every mode bit of files and folders tried by the owner, a member of
 * the owner's group, another user and root; sticky folders; and the error codes a local disk gives
 * for wrong types, loops, missing names and existing names.
 */
import { Cases, create, remove } from '../support/cases';
import { Case, make, settle, Step, TYPES, UserName } from '../support/sweep';

const USERS: UserName[] = ['owner', 'member', 'other', 'root'];
const FILE_MODES = [0o000, 0o400, 0o200, 0o100, 0o040, 0o020, 0o010, 0o004, 0o002, 0o001, 0o604, 0o060];
const DIR_MODES = [0o000, 0o700, 0o500, 0o300, 0o100, 0o070, 0o050, 0o030, 0o010, 0o007, 0o005, 0o003, 0o001, 0o077];

export function permissionCases(): Case[] {
  const c = new Cases('perm');
  for (const mode of FILE_MODES) {
    const f = `perm/f${mode.toString(8)}`;
    c.add('file fixture', 'root', 'reg', make(f, 'reg', { owner: 'owner', mode }), []);
    for (const user of USERS) {
      c.add(`file ${mode.toString(8).padStart(3, '0')}: open, access`, user, 'reg', [], [
        { user, op: 'open', args: { path: f, flags: ['O_RDONLY'] } },
        { user, op: 'open', args: { path: f, flags: ['O_WRONLY'] } },
        { user, op: 'open', args: { path: f, flags: ['O_RDWR'] } },
        { user, op: 'access', args: { path: f, mode: 'x' } },
        { user, op: 'access', args: { path: f, mode: 'r' } },
        { user, op: 'access', args: { path: f, mode: 'w' } },
      ]);
    }
  }
  for (const mode of DIR_MODES) {
    const d = `perm/d${mode.toString(8)}`;
    // Made open, filled, then given its mode (root can fill any folder, but this keeps the steps plain).
    const setup: Step[] = [...make(d, 'dir', { owner: 'owner', mode: 0o777 }), ...make(`${d}/f`, 'reg', { owner: 'owner', mode: 0o666 })];
    for (const user of USERS) {
      setup.push(...make(`${d}/u-${user}`, 'reg', { owner: user, mode: 0o666 }));
      setup.push(...make(`${d}/r-${user}`, 'reg', { owner: user, mode: 0o666 }));
      setup.push(...make(`${d}/e-${user}`, 'dir', { owner: user, mode: 0o777 }));
    }
    setup.push({ user: 'root', op: 'chmod', args: { path: d, mode } }, settle(d));
    c.add('folder fixture', 'root', 'dir', setup, []);
    for (const user of USERS) {
      c.add(`folder ${mode.toString(8).padStart(3, '0')}: list, look up, create, remove, rename`, user, 'dir', [], [
        { user, op: 'list', args: { path: d } },
        { user, op: 'stat', args: { path: `${d}/f` } },
        { user, op: 'open', args: { path: `${d}/f`, flags: ['O_RDONLY'] } },
        { ...create(user, `${d}/n-${user}`, 'reg'), observe: [`${d}/n-${user}`] },
        { ...create(user, `${d}/m-${user}`, 'dir'), observe: [`${d}/m-${user}`] },
        { user, op: 'unlink', args: { path: `${d}/u-${user}` }, observe: [`${d}/u-${user}`] },
        { user, op: 'rename', args: { src: `${d}/r-${user}`, dst: `${d}/r-${user}-moved` }, observe: [`${d}/r-${user}-moved`] },
        { user, op: 'rmdir', args: { path: `${d}/e-${user}` }, observe: [`${d}/e-${user}`] },
      ]);
    }
  }
  // Renaming a folder needs write permission in it (its ".." changes); a file does not.
  const mv = c.fresh();
  c.add('rename a folder without write permission in it', 'other', 'dir', [
    ...make(mv, 'dir', { mode: 0o777 }),
    ...make(`${mv}/d`, 'dir', { owner: 'owner', mode: 0o755 }),
    ...make(`${mv}/sub`, 'dir', { mode: 0o777 }),
  ], [{ user: 'other', op: 'rename', args: { src: `${mv}/d`, dst: `${mv}/sub/d` }, observe: [`${mv}/d`, `${mv}/sub/d`] }]);
  return c.list;
}

/** Sticky folders: who may remove, move away or replace another user's file of every type. */
export function stickyCases(): Case[] {
  const c = new Cases('sticky');
  for (const [dir, owner] of [['sticky/by-root', 'root'], ['sticky/by-member', 'member']] as [string, UserName][]) {
    c.add('sticky folder', 'root', 'dir', make(dir, 'dir', { owner, mode: 0o1777 }), []);
    for (const type of TYPES) {
      for (const user of USERS) {
        const victim = (op: string): string => `${dir}/${type}-${user}-${op}`;
        const src = `${dir}/src-${type}-${user}`;
        const setup = [
          ...make(victim('rm'), type, { owner: 'owner', mode: type === 'dir' ? 0o777 : 0o666 }),
          ...make(victim('mv'), type, { owner: 'owner', mode: type === 'dir' ? 0o777 : 0o666 }),
          ...make(victim('over'), type, { owner: 'owner', mode: type === 'dir' ? 0o777 : 0o666 }),
          ...make(src, type, { owner: user }),
        ];
        c.add(`sticky folder owned by ${owner}: another's file`, user, type, setup, [
          remove(user, victim('rm'), type, [victim('rm')]),
          { user, op: 'rename', args: { src: victim('mv'), dst: `${victim('mv')}-moved` }, observe: [victim('mv'), `${victim('mv')}-moved`] },
          { user, op: 'rename', args: { src, dst: victim('over') }, observe: [src, victim('over')] },
        ]);
      }
    }
    // Opening another user's existing file with O_CREAT in a sticky folder (fs.protected_regular).
    const theirs = `${dir}/theirs`;
    c.add('O_CREAT of an existing file of another user', 'other', 'reg', make(theirs, 'reg', { owner: 'owner', mode: 0o666 }), [
      { user: 'other', op: 'open', args: { path: theirs, flags: ['O_WRONLY', 'O_CREAT'] }, observe: [theirs] },
    ]);
  }
  return c.list;
}

/** The error codes of wrong types, loops, missing and existing names, as root and as another user. */
export function errorCases(): Case[] {
  const c = new Cases('errors', 0o777);
  const d = c.fresh();
  const setup: Step[] = [
    ...make(d, 'dir', { mode: 0o777 }),
    ...make(`${d}/file`, 'reg', { mode: 0o666 }),
    ...make(`${d}/dir`, 'dir', { mode: 0o777 }),
    ...make(`${d}/full`, 'dir', { mode: 0o777 }),
    ...make(`${d}/full/x`, 'reg'),
    ...make(`${d}/link`, 'symlink', { target: 'file' }),
    ...make(`${d}/dangling`, 'symlink', { target: 'missing' }),
    ...make(`${d}/loop1`, 'symlink', { target: 'loop2' }),
    ...make(`${d}/loop2`, 'symlink', { target: 'loop1' }),
    ...make(`${d}/fifo`, 'fifo', { mode: 0o666 }),
    ...make(`${d}/sock`, 'sock', { mode: 0o666 }),
  ];
  c.add('error fixtures', 'root', 'dir', setup, []);
  const f = (name: string): string => `${d}/${name}`;
  for (const user of ['root', 'other'] as UserName[]) {
    const steps: [string, Step][] = [
      ['a file as a folder', { user, op: 'stat', args: { path: f('file/x') } }],
      ['a file with a trailing slash', { user, op: 'open', args: { path: f('file/'), flags: ['O_RDONLY'] } }],
      ['a folder for writing', { user, op: 'open', args: { path: f('dir'), flags: ['O_WRONLY'] } }],
      ['a folder for reading and writing', { user, op: 'open', args: { path: f('dir'), flags: ['O_RDWR'] } }],
      ['a file with O_DIRECTORY', { user, op: 'open', args: { path: f('file'), flags: ['O_RDONLY', 'O_DIRECTORY'] } }],
      ['a symlink with O_NOFOLLOW', { user, op: 'open', args: { path: f('link'), flags: ['O_RDONLY', 'O_NOFOLLOW'] } }],
      ['a symlink loop', { user, op: 'open', args: { path: f('loop1'), flags: ['O_RDONLY'] } }],
      ['a dangling symlink', { user, op: 'open', args: { path: f('dangling'), flags: ['O_RDONLY'] } }],
      ['a missing name', { user, op: 'stat', args: { path: f('missing') } }],
      ['a FIFO without a reader, write-only non-blocking', { user, op: 'open', args: { path: f('fifo'), flags: ['O_WRONLY', 'O_NONBLOCK'] } }],
      ['a FIFO read-only non-blocking', { user, op: 'open', args: { path: f('fifo'), flags: ['O_RDONLY', 'O_NONBLOCK'] } }],
      ['a socket', { user, op: 'open', args: { path: f('sock'), flags: ['O_RDONLY'] } }],
      ['readlink of a file', { user, op: 'readlink', args: { path: f('file') } }],
      ['unlink of a folder', { user, op: 'unlink', args: { path: f('dir') } }],
      ['rmdir of a file', { user, op: 'rmdir', args: { path: f('file') } }],
      ['rmdir of a non-empty folder', { user, op: 'rmdir', args: { path: f('full') } }],
      ['rmdir of "."', { user, op: 'rmdir', args: { path: f('dir/.') } }],
      ['rmdir of ".."', { user, op: 'rmdir', args: { path: f('dir/..') } }],
      ['mkdir of an existing name', { user, op: 'mkdir', args: { path: f('file') } }],
      ['mkdir through a dangling symlink', { user, op: 'mkdir', args: { path: f('dangling') } }],
      ['symlink onto an existing name', { user, op: 'symlink', args: { path: f('file'), target: 'x' } }],
      ['mkfifo onto an existing name', { user, op: 'mkfifo', args: { path: f('dir') } }],
      ['O_NOATIME on a file of another user', { user, op: 'open', args: { path: f('file'), flags: ['O_RDONLY', 'O_NOATIME'] } }],
    ];
    for (const [what, step] of steps) c.add(what, user, 'mixed', [], [step]);
  }
  // Each type refuses what it is not: rmdir and unlink and open for writing on every type.
  for (const type of TYPES) {
    const p = c.fresh('t');
    c.add('wrong-type calls on', 'root', type, make(p, type, { mode: 0o666 }), [
      { user: 'root', op: type === 'dir' ? 'unlink' : 'rmdir', args: { path: p }, observe: [p] },
      { user: 'root', op: 'open', args: { path: p, flags: ['O_WRONLY', 'O_NONBLOCK'] } },
      { user: 'root', op: 'truncate', args: { path: p, size: 0 } },
    ]);
  }
  return c.list;
}
