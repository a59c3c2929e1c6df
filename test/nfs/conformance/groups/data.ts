/**
 * Cases about contents: open flags (O_EXCL, O_TRUNC, O_APPEND, O_CREAT through symlinks,
 * O_TMPFILE), truncation up and down by path and by descriptor, files used after they are
 * unlinked, and FIFOs, sockets and device nodes working as on a local disk.
 */
import { Cases } from '../support/cases';
import { Case, FileType, make, settle, Step, TYPES, UserName } from '../support/sweep';

const CONTENT = 'hello world';

export function openFlagCases(): Case[] {
  const c = new Cases('open', 0o777);
  for (const type of TYPES) {
    const dir = c.fresh();
    const p = `${dir}/x`;
    c.add('O_CREAT|O_EXCL onto an existing', 'owner', type, [...make(dir, 'dir', { mode: 0o777 }), ...make(p, type, { owner: 'owner', target: 'missing' }), settle(dir)], [
      { user: 'owner', op: 'open', args: { path: p, flags: ['O_WRONLY', 'O_CREAT', 'O_EXCL'] }, observe: [p, dir] },
      { user: 'owner', op: 'open', args: { path: p, flags: ['O_WRONLY', 'O_CREAT', 'O_NONBLOCK'] }, observe: [p, `${dir}/missing`] },
    ]);
  }
  const d = c.fresh();
  const f = (n: string): string => `${d}/${n}`;
  const setup: Step[] = [...make(d, 'dir', { mode: 0o777 }), ...make(f('dangling'), 'symlink', { target: 'made-through-link' })];
  for (const n of ['trunc-owner', 'trunc-other-666', 'trunc-other-644', 'trunc-rdonly', 'append', 'append-pwrite', 'append-two', 'noatime']) {
    setup.push(...make(f(n), 'reg', { owner: 'owner', mode: n.endsWith('666') ? 0o666 : 0o644, content: CONTENT }));
  }
  setup.push(...make(f('empty'), 'reg', { owner: 'owner', content: '' }), ...make(f('sub'), 'dir', { mode: 0o777 }), settle(d));
  const o = (user: UserName, name: string, flags: string[], extra: Record<string, unknown> = {}, observe = [f(name)]): Step => ({
    user,
    op: 'open',
    args: { path: f(name), flags, ...extra },
    observe,
  });
  const steps: [string, UserName, Step[]][] = [
    ['O_CREAT|O_EXCL of a new name', 'owner', [o('owner', 'new-excl', ['O_WRONLY', 'O_CREAT', 'O_EXCL'], { mode: 0o640 })]],
    ['O_CREAT with mode 0777 (umask 022)', 'owner', [o('owner', 'new-777', ['O_WRONLY', 'O_CREAT'], { mode: 0o777 })]],
    ['O_CREAT|O_EXCL through a dangling symlink', 'owner', [o('owner', 'dangling', ['O_WRONLY', 'O_CREAT', 'O_EXCL'], {}, [f('dangling'), f('made-through-link')])]],
    ['O_CREAT through a dangling symlink', 'owner', [o('owner', 'dangling', ['O_WRONLY', 'O_CREAT'], {}, [f('dangling'), f('made-through-link')])]],
    ['O_CREAT of a folder', 'owner', [o('owner', 'sub', ['O_WRONLY', 'O_CREAT'])]],
    ['O_CREAT|O_EXCL of a name with a trailing slash', 'owner', [o('owner', 'slash/', ['O_WRONLY', 'O_CREAT', 'O_EXCL'], {}, [f('slash')])]],
    ['O_TRUNC by the owner', 'owner', [o('owner', 'trunc-owner', ['O_WRONLY', 'O_TRUNC'])]],
    ['O_TRUNC by another user with write permission', 'other', [o('other', 'trunc-other-666', ['O_WRONLY', 'O_TRUNC'])]],
    ['O_TRUNC by another user without write permission', 'other', [o('other', 'trunc-other-644', ['O_WRONLY', 'O_TRUNC'])]],
    ['O_TRUNC with O_RDONLY', 'owner', [o('owner', 'trunc-rdonly', ['O_RDONLY', 'O_TRUNC'])]],
    ['O_TRUNC of an empty file', 'owner', [o('owner', 'empty', ['O_WRONLY', 'O_TRUNC'])]],
    ['O_APPEND write', 'owner', [o('owner', 'append', ['O_WRONLY', 'O_APPEND'], { write: '+appended' })]],
    ['O_APPEND ignores the pwrite offset', 'owner', [
      o('owner', 'append-pwrite', ['O_RDWR', 'O_APPEND'], { fd: 'a' }, []),
      { user: 'owner', op: 'write', args: { fd: 'a', data: 'XY', offset: 0 }, observe: [f('append-pwrite')] },
      { user: 'owner', op: 'close', args: { fd: 'a' }, observe: [f('append-pwrite')] },
    ]],
    ['two O_APPEND descriptors take turns', 'owner', [
      o('owner', 'append-two', ['O_WRONLY', 'O_APPEND'], { fd: 'a' }, []),
      o('owner', 'append-two', ['O_WRONLY', 'O_APPEND'], { fd: 'b' }, []),
      { user: 'owner', op: 'write', args: { fd: 'a', data: '-one' } },
      { user: 'owner', op: 'write', args: { fd: 'b', data: '-two' } },
      { user: 'owner', op: 'write', args: { fd: 'a', data: '-three' } },
      { user: 'owner', op: 'close', args: { fd: 'a' } },
      { user: 'owner', op: 'close', args: { fd: 'b' }, observe: [f('append-two')] },
    ]],
    ['O_NOATIME by the owner', 'owner', [o('owner', 'noatime', ['O_RDONLY', 'O_NOATIME'])]],
    ['O_TMPFILE in a folder', 'owner', [o('owner', 'sub', ['O_RDWR', 'O_TMPFILE'], { mode: 0o600 })]],
  ];
  for (const [what, user, s] of steps) c.add(what, user, 'reg', setup.splice(0), s);
  // A write shows in stat() at once (size, mtime, ctime), while the descriptor is open and after close.
  for (const flags of [['O_WRONLY'], ['O_RDWR'], ['O_WRONLY', 'O_APPEND'], ['O_RDWR', 'O_APPEND']]) {
    const p = c.fresh();
    c.add(`stat after a write through ${flags.join('|')}`, 'owner', 'reg', make(p, 'reg', { owner: 'owner', content: CONTENT }), [
      { user: 'owner', op: 'open', args: { path: p, flags, fd: 'w' } },
      { user: 'owner', op: 'write', args: { fd: 'w', data: '12345678901234567890' }, observe: [p] },
      { user: 'owner', op: 'close', args: { fd: 'w' }, observe: [p] },
    ]);
  }
  return c.list;
}

export function truncateCases(): Case[] {
  const c = new Cases('trunc', 0o777);
  const sizes = [0, 5, CONTENT.length, 20, 1_048_579];
  for (const size of sizes) {
    for (const how of ['truncate(2)', 'ftruncate O_WRONLY', 'ftruncate O_RDWR']) {
      const p = c.fresh();
      const steps: Step[] =
        how === 'truncate(2)'
          ? [{ user: 'owner', op: 'truncate', args: { path: p, size }, observe: [p] }]
          : [
              { user: 'owner', op: 'open', args: { path: p, flags: [how.split(' ')[1]], fd: 't' } },
              { user: 'owner', op: 'ftruncate', args: { fd: 't', size } },
              { user: 'owner', op: 'fstat', args: { fd: 't' } },
              { user: 'owner', op: 'close', args: { fd: 't' }, observe: [p] },
            ];
      c.add(`${how} ${size > CONTENT.length ? 'up' : size < CONTENT.length ? 'down' : 'to the same size'} to ${size}`, 'owner', 'reg', make(p, 'reg', { owner: 'owner', content: CONTENT }), steps);
    }
  }
  const p = c.fresh();
  c.add('write, truncate down, write past the end, read back', 'owner', 'reg', make(p, 'reg', { owner: 'owner', content: CONTENT }), [
    { user: 'owner', op: 'open', args: { path: p, flags: ['O_RDWR'], fd: 't' } },
    { user: 'owner', op: 'write', args: { fd: 't', data: 'abcdefghijklmnop', offset: 0 } },
    { user: 'owner', op: 'ftruncate', args: { fd: 't', size: 3 } },
    { user: 'owner', op: 'pread', args: { fd: 't', offset: 0, size: 64 } },
    { user: 'owner', op: 'write', args: { fd: 't', data: 'Z', offset: 8 } },
    { user: 'owner', op: 'pread', args: { fd: 't', offset: 0, size: 64 } },
    { user: 'owner', op: 'close', args: { fd: 't' }, observe: [p] },
  ]);
  const edge: [string, FileType, UserName, number, number][] = [
    ['to a negative size', 'reg', 'owner', -1, 0o644],
    ['by another user with write permission', 'reg', 'other', 3, 0o666],
    ['by another user without write permission', 'reg', 'other', 3, 0o644],
    ['of a folder', 'dir', 'owner', 0, 0o755],
    ['of a FIFO', 'fifo', 'owner', 0, 0o644],
    ['through a symlink', 'symlink', 'owner', 2, 0o644],
  ];
  for (const [what, type, user, size, mode] of edge) {
    const dir = c.fresh();
    const q = `${dir}/x`;
    c.add(`truncate ${what}`, user, type, [...make(dir, 'dir', { mode: 0o777 }), ...make(`${dir}/tgt`, 'reg', { owner: 'owner', content: CONTENT }), ...make(q, type, { owner: 'owner', mode, target: 'tgt' })], [
      { user, op: 'truncate', args: { path: q, size }, observe: [q, `${dir}/tgt`] },
    ]);
  }
  const r = c.fresh();
  c.add('ftruncate of a read-only descriptor', 'owner', 'reg', make(r, 'reg', { owner: 'owner', content: CONTENT }), [
    { user: 'owner', op: 'open', args: { path: r, flags: ['O_RDONLY'], fd: 't' } },
    { user: 'owner', op: 'ftruncate', args: { fd: 't', size: 1 } },
    { user: 'owner', op: 'close', args: { fd: 't' }, observe: [r] },
  ]);
  return c.list;
}

/** Open, then unlink (or rename over, or rmdir): the open descriptor keeps working until closed. */
export function unlinkedCases(): Case[] {
  const c = new Cases('unlinked', 0o777);
  const dir = (): [string, (n: string) => string] => {
    const d = c.fresh();
    return [d, (n) => `${d}/${n}`];
  };
  {
    const [d, f] = dir();
    c.add('read, write, truncate, chmod and fsync after unlink', 'owner', 'reg', [...make(d, 'dir', { owner: 'owner' }), ...make(f('a'), 'reg', { owner: 'owner', content: CONTENT })], [
      { user: 'owner', op: 'open', args: { path: f('a'), flags: ['O_RDWR'], fd: 'a' } },
      { user: 'owner', op: 'write', args: { fd: 'a', data: 'HELLO', offset: 0 } },
      { user: 'owner', op: 'unlink', args: { path: f('a') }, observe: [f('a'), d] },
      { user: 'owner', op: 'fstat', args: { fd: 'a' } },
      { user: 'owner', op: 'pread', args: { fd: 'a', offset: 0, size: 64 } },
      { user: 'owner', op: 'write', args: { fd: 'a', data: '+more', offset: 11 } },
      { user: 'owner', op: 'pread', args: { fd: 'a', offset: 0, size: 64 } },
      { user: 'owner', op: 'ftruncate', args: { fd: 'a', size: 4 } },
      { user: 'owner', op: 'pread', args: { fd: 'a', offset: 0, size: 64 } },
      { user: 'owner', op: 'fchmod', args: { fd: 'a', mode: 0o600 } },
      { user: 'owner', op: 'fstat', args: { fd: 'a' } },
      { user: 'owner', op: 'fsync', args: { fd: 'a' } },
      { user: 'owner', op: 'list', args: { path: d } },
      { user: 'owner', op: 'close', args: { fd: 'a' }, observe: [d] },
      { user: 'owner', op: 'rmdir', args: { path: d }, observe: [d] },
    ]);
  }
  {
    const [d, f] = dir();
    c.add('unlinked while another user reads it', 'other', 'reg', [...make(d, 'dir', { owner: 'owner' }), ...make(f('a'), 'reg', { owner: 'owner', content: CONTENT })], [
      { user: 'other', op: 'open', args: { path: f('a'), flags: ['O_RDONLY'], fd: 'r' } },
      { user: 'owner', op: 'unlink', args: { path: f('a') } },
      { user: 'other', op: 'pread', args: { fd: 'r', offset: 0, size: 64 } },
      { user: 'other', op: 'fstat', args: { fd: 'r' } },
      { user: 'other', op: 'close', args: { fd: 'r' } },
      { user: 'owner', op: 'list', args: { path: d } },
    ]);
  }
  {
    const [d, f] = dir();
    c.add('written write-only, unlinked, then closed', 'owner', 'reg', [...make(d, 'dir', { owner: 'owner' })], [
      { user: 'owner', op: 'open', args: { path: f('w'), flags: ['O_WRONLY', 'O_CREAT'], fd: 'w' } },
      { user: 'owner', op: 'write', args: { fd: 'w', data: 'x'.repeat(100) } },
      { user: 'owner', op: 'unlink', args: { path: f('w') } },
      { user: 'owner', op: 'write', args: { fd: 'w', data: 'y'.repeat(100) } },
      { user: 'owner', op: 'fstat', args: { fd: 'w' } },
      { user: 'owner', op: 'close', args: { fd: 'w' } },
      { user: 'owner', op: 'list', args: { path: d } },
    ]);
  }
  {
    const [d, f] = dir();
    c.add('renamed over while open', 'owner', 'reg', [...make(d, 'dir', { owner: 'owner' }), ...make(f('a'), 'reg', { owner: 'owner', content: 'old' }), ...make(f('b'), 'reg', { owner: 'owner', content: 'new' })], [
      { user: 'owner', op: 'open', args: { path: f('a'), flags: ['O_RDWR'], fd: 'a' } },
      { user: 'owner', op: 'rename', args: { src: f('b'), dst: f('a') }, observe: [f('a'), f('b')] },
      { user: 'owner', op: 'pread', args: { fd: 'a', offset: 0, size: 64 } },
      { user: 'owner', op: 'write', args: { fd: 'a', data: 'OLD', offset: 0 } },
      { user: 'owner', op: 'pread', args: { fd: 'a', offset: 0, size: 64 } },
      { user: 'owner', op: 'fstat', args: { fd: 'a' } },
      { user: 'owner', op: 'close', args: { fd: 'a' }, observe: [f('a')] },
      { user: 'owner', op: 'list', args: { path: d } },
    ]);
  }
  {
    const [d, f] = dir();
    c.add('two descriptors, unlink, close one, use the other', 'owner', 'reg', [...make(d, 'dir', { owner: 'owner' }), ...make(f('a'), 'reg', { owner: 'owner', content: CONTENT })], [
      { user: 'owner', op: 'open', args: { path: f('a'), flags: ['O_RDONLY'], fd: 'r' } },
      { user: 'owner', op: 'open', args: { path: f('a'), flags: ['O_WRONLY'], fd: 'w' } },
      { user: 'owner', op: 'unlink', args: { path: f('a') } },
      { user: 'owner', op: 'write', args: { fd: 'w', data: 'J', offset: 0 } },
      { user: 'owner', op: 'close', args: { fd: 'w' } },
      { user: 'owner', op: 'pread', args: { fd: 'r', offset: 0, size: 64 } },
      { user: 'owner', op: 'close', args: { fd: 'r' } },
      { user: 'owner', op: 'list', args: { path: d } },
    ]);
  }
  {
    const [d, f] = dir();
    c.add('one of two hard links unlinked while open', 'owner', 'reg', [...make(d, 'dir', { owner: 'owner' }), ...make(f('a'), 'reg', { owner: 'owner', content: CONTENT })], [
      { user: 'owner', op: 'open', args: { path: f('a'), flags: ['O_RDWR'], fd: 'a' } },
      { user: 'owner', op: 'link', args: { src: f('a'), dst: f('b') } },
      { user: 'owner', op: 'unlink', args: { path: f('a') }, observe: [f('b')] },
      { user: 'owner', op: 'write', args: { fd: 'a', data: 'via-a', offset: 0 } },
      { user: 'owner', op: 'fstat', args: { fd: 'a' } },
      { user: 'owner', op: 'close', args: { fd: 'a' }, observe: [f('b')] },
    ]);
  }
  {
    const [d, f] = dir();
    c.add('a folder open while it is removed', 'owner', 'dir', [...make(d, 'dir', { owner: 'owner' }), ...make(f('sub'), 'dir', { owner: 'owner' })], [
      { user: 'owner', op: 'open', args: { path: f('sub'), flags: ['O_RDONLY', 'O_DIRECTORY'], fd: 'd' } },
      { user: 'owner', op: 'rmdir', args: { path: f('sub') }, observe: [f('sub')] },
      { user: 'owner', op: 'fstat', args: { fd: 'd' } },
      { user: 'owner', op: 'close', args: { fd: 'd' } },
    ]);
  }
  return c.list;
}

/** FIFOs, sockets and device nodes: made by mkfifo, mknod and bind, and working between ends. */
export function specialCases(): Case[] {
  const c = new Cases('special', 0o777);
  for (const user of ['root', 'owner', 'other'] as UserName[]) {
    const d = c.fresh();
    c.add('FIFO and socket made and used', user, 'fifo', make(d, 'dir', { mode: 0o777 }), [
      { user, op: 'mkfifo', args: { path: `${d}/fifo`, mode: 0o640 }, observe: [`${d}/fifo`] },
      { user, op: 'fifo-talk', args: { path: `${d}/fifo` } },
      { user, op: 'socket-talk', args: { path: `${d}/sock` }, observe: [`${d}/sock`] },
      { user, op: 'mknod', args: { path: `${d}/fifo-by-mknod`, type: 'fifo', mode: 0o600 }, observe: [`${d}/fifo-by-mknod`] },
      { user, op: 'mknod', args: { path: `${d}/sock-by-mknod`, type: 'sock', mode: 0o600 }, observe: [`${d}/sock-by-mknod`] },
      { user, op: 'mknod', args: { path: `${d}/reg-by-mknod`, type: 'reg', mode: 0o600 }, observe: [`${d}/reg-by-mknod`] },
      { user, op: 'mknod', args: { path: `${d}/chr`, type: 'chr', mode: 0o600, major: 1, minor: 3 }, observe: [`${d}/chr`] },
      { user, op: 'mknod', args: { path: `${d}/blk`, type: 'blk', mode: 0o600, major: 7, minor: 200 }, observe: [`${d}/blk`] },
      { user, op: 'mknod', args: { path: `${d}/chr-big`, type: 'chr', mode: 0o600, major: 4095, minor: 1048575 }, observe: [`${d}/chr-big`] },
      { user, op: 'mkfifo', args: { path: `${d}/fifo` } },
      { user, op: 'list', args: { path: d } },
    ]);
  }
  const d = c.fresh();
  c.add('a device node made by root, opened and written', 'root', 'chr', [...make(d, 'dir', { mode: 0o777 }), ...make(`${d}/null`, 'chr', { mode: 0o666 })], [
    { user: 'other', op: 'open', args: { path: `${d}/null`, flags: ['O_WRONLY'], write: 'discarded' }, observe: [`${d}/null`] },
    { user: 'other', op: 'read', args: { path: `${d}/null` } },
  ]);
  return c.list;
}
