/**
 * Cases about names: creating every file type as every user in plain, owned, sticky and
 * set-group-ID folders (with set-ID mode bits asked for), rename over every file type, hard links
 * to every file type, and long or unusual names and paths.
 */
import { Cases, create } from '../support/cases';
import { Case, FileType, make, OWNER, SECOND_GID, settle, Step, TYPES, UserName } from '../support/sweep';

const ALL_USERS: UserName[] = ['root', 'owner', 'member', 'other'];

export function createCases(): Case[] {
  const c = new Cases('create');
  const parents: [string, number, UserName, number?][] = [
    ['open', 0o777, 'root'],
    ['owned', 0o755, 'owner'],
    ['sticky', 0o1777, 'root'],
    ['sgid', 0o2775, 'owner', OWNER],
    ['sgid-open', 0o2777, 'root', SECOND_GID],
  ];
  for (const [name, mode, owner, group] of parents) {
    const dir = `create/${name}`;
    c.add('make parent', 'root', 'dir', [...make(dir, 'dir', { mode, owner, group })], []);
    for (const user of ALL_USERS) {
      for (const type of TYPES) {
        const p = `${dir}/${type}-${user}`;
        c.add(`create in ${name} ${mode.toString(8)}`, user, type, [], [{ ...create(user, p, type), observe: [p, dir] }]);
      }
    }
  }
  // Set-ID and sticky bits asked for at creation: kept, dropped or inherited as the local disk does.
  for (const dir of ['create/open', 'create/sgid-open']) {
    for (const user of ['root', 'owner', 'other'] as UserName[]) {
      for (const [type, mode] of [['reg', 0o7777], ['reg', 0o4755], ['reg', 0o2755], ['dir', 0o7777], ['dir', 0o2755], ['fifo', 0o7777]] as [FileType, number][]) {
        const p = `${dir}/${type}-${mode.toString(8)}-${user}`;
        c.add(`create with mode ${mode.toString(8)} in ${dir.slice(7)}`, user, type, [], [{ ...create(user, p, type, mode), observe: [p] }]);
      }
    }
  }
  return c.list;
}

/** Rename of every file type onto nothing and onto every file type, as root and as the owner. */
export function renameCases(): Case[] {
  const c = new Cases('rename', 0o777);
  for (const user of ['root', 'owner'] as UserName[]) {
    for (const src of TYPES) {
      for (const dst of ['absent', ...TYPES] as (FileType | 'absent')[]) {
        const dir = c.fresh();
        const a = `${dir}/a`;
        const b = `${dir}/b`;
        const setup = [...make(dir, 'dir', { owner: 'owner' }), ...make(a, src, { owner: 'owner' })];
        if (dst !== 'absent') setup.push(...make(b, dst, { owner: 'owner' }));
        setup.push(settle(dir));
        c.add(`rename ${src} over ${dst}`, user, src, setup, [
          { user: 'root', op: 'stat', args: { path: a, follow: false }, observe: [a, b] },
          { user, op: 'rename', args: { src: a, dst: b }, observe: [a, b, dir] },
        ]);
      }
    }
  }
  // A non-empty folder cannot be replaced; a folder cannot move into itself; the two names of one file.
  const extras: [string, FileType, (a: string, b: string) => Step[], Step][] = [
    ['folder over a non-empty folder', 'dir', (a, b) => [...make(a, 'dir'), ...make(b, 'dir'), ...make(`${b}/x`, 'reg')], { user: 'root', op: 'rename', args: { src: 'A', dst: 'B' } }],
    ['folder into its own sub-folder', 'dir', (a) => [...make(a, 'dir'), ...make(`${a}/sub`, 'dir')], { user: 'root', op: 'rename', args: { src: 'A', dst: 'A/sub/x' } }],
    ['a name onto another name of the same file', 'reg', (a, b) => [...make(a, 'reg'), { user: 'root', op: 'link', args: { src: a, dst: b } }], { user: 'root', op: 'rename', args: { src: 'A', dst: 'B' } }],
    ['a name onto itself', 'reg', (a) => make(a, 'reg'), { user: 'root', op: 'rename', args: { src: 'A', dst: 'A' } }],
    ['a folder to another parent', 'dir', (a, b) => [...make(a, 'dir'), ...make(b, 'dir')], { user: 'root', op: 'rename', args: { src: 'A', dst: 'B/moved' } }],
    ['RENAME_NOREPLACE onto a file', 'reg', (a, b) => [...make(a, 'reg'), ...make(b, 'reg')], { user: 'root', op: 'rename', args: { src: 'A', dst: 'B', flags: 'noreplace' } }],
    ['RENAME_NOREPLACE onto nothing', 'reg', (a) => make(a, 'reg'), { user: 'root', op: 'rename', args: { src: 'A', dst: 'B', flags: 'noreplace' } }],
    ['RENAME_EXCHANGE of a file and a folder', 'reg', (a, b) => [...make(a, 'reg'), ...make(b, 'dir')], { user: 'root', op: 'rename', args: { src: 'A', dst: 'B', flags: 'exchange' } }],
    ['a missing name', 'reg', () => [], { user: 'root', op: 'rename', args: { src: 'A', dst: 'B' } }],
    ['a file over a folder', 'reg', (a, b) => [...make(a, 'reg'), ...make(b, 'dir')], { user: 'root', op: 'rename', args: { src: 'A', dst: 'B' } }],
    ['a folder over a file', 'dir', (a, b) => [...make(a, 'dir'), ...make(b, 'reg')], { user: 'root', op: 'rename', args: { src: 'A', dst: 'B' } }],
  ];
  for (const [what, type, setup, step] of extras) {
    const dir = c.fresh();
    const a = `${dir}/a`;
    const b = `${dir}/b`;
    const fix = (s: unknown): string => String(s).replace(/^A/, a).replace(/^B/, b);
    const args = { ...step.args, src: fix(step.args!.src), dst: fix(step.args!.dst) };
    c.add(`rename ${what}`, 'root', type, [...make(dir, 'dir'), ...setup(a, b), settle(dir)], [
      { user: 'root', op: 'stat', args: { path: a, follow: false }, observe: [a, b] },
      { ...step, args, observe: [a, b, args.dst, dir] },
    ]);
  }
  return c.list;
}

/** Hard links to every file type, by root and by the owner; what protected hard links refuse other users. */
export function linkCases(): Case[] {
  const c = new Cases('link', 0o777);
  for (const user of ['root', 'owner'] as UserName[]) {
    for (const type of TYPES) {
      for (const follow of type === 'symlink' ? [false, true] : [false]) {
        const dir = c.fresh();
        const a = `${dir}/a`;
        const b = `${dir}/b`;
        const setup = [...make(dir, 'dir', { owner: 'owner' }), ...make(`${dir}/tgt`, 'reg', { owner: 'owner' }), ...make(a, type, { owner: 'owner', target: 'tgt' }), settle(dir)];
        c.add(`link to a ${type}${follow ? ' (following it)' : ''}`, user, type, setup, [
          { user: 'root', op: 'stat', args: { path: a, follow: false }, observe: [a, `${dir}/tgt`] },
          { user, op: 'link', args: { src: a, dst: b, follow }, observe: [a, b, `${dir}/tgt`, dir] },
          { user, op: 'unlink', args: { path: a }, observe: [a, b] },
        ]);
      }
    }
  }
  // Protected hard links: another user may link only a regular file it can read and write, not set-ID.
  for (const mode of [0o600, 0o644, 0o666, 0o4777, 0o2777, 0o2767]) {
    const dir = c.fresh();
    c.add(`link another user's file of mode ${mode.toString(8)}`, 'other', 'reg', [...make(dir, 'dir', { mode: 0o777 }), ...make(`${dir}/a`, 'reg', { owner: 'owner', mode })], [
      { user: 'other', op: 'link', args: { src: `${dir}/a`, dst: `${dir}/b` }, observe: [`${dir}/a`, `${dir}/b`] },
    ]);
  }
  for (const [what, setup, src, dst] of [
    ['onto an existing name', (d: string) => [...make(`${d}/a`, 'reg'), ...make(`${d}/b`, 'reg')], 'a', 'b'],
    ['from a missing name', () => [], 'a', 'b'],
    ['into a missing folder', (d: string) => make(`${d}/a`, 'reg'), 'a', 'nodir/b'],
  ] as [string, (d: string) => Step[], string, string][]) {
    const dir = c.fresh();
    c.add(`link ${what}`, 'root', 'reg', [...make(dir, 'dir'), ...setup(dir)], [
      { user: 'root', op: 'link', args: { src: `${dir}/${src}`, dst: `${dir}/${dst}` }, observe: [`${dir}/${src}`, `${dir}/${dst}`] },
    ]);
  }
  return c.list;
}

/** 255-byte names, paths up to PATH_MAX, long symlink targets, and names with unusual bytes. */
export function nameCases(): Case[] {
  const c = new Cases('names', 0o777);
  const dir = c.fresh();
  c.add('names folder', 'root', 'dir', make(dir, 'dir', { mode: 0o777 }), []);
  for (const type of ['reg', 'dir', 'symlink', 'fifo', 'sock', 'chr'] as FileType[]) {
    for (const len of [255, 256]) {
      const p = `${dir}/${type[0].repeat(len)}`;
      c.add(`create a name of ${len} bytes`, 'owner', type, [], [{ ...create(type === 'chr' ? 'root' : 'owner', p, type), observe: [p] }]);
    }
  }
  const ren = c.fresh();
  c.add('rename and link to a 255-byte name', 'owner', 'reg', [...make(ren, 'dir', { owner: 'owner' }), ...make(`${ren}/a`, 'reg', { owner: 'owner' })], [
    { user: 'owner', op: 'rename', args: { src: `${ren}/a`, dst: `${ren}/${'r'.repeat(255)}` }, observe: [`${ren}/${'r'.repeat(255)}`] },
    { user: 'owner', op: 'link', args: { src: `${ren}/${'r'.repeat(255)}`, dst: `${ren}/${'l'.repeat(255)}` }, observe: [`${ren}/${'l'.repeat(255)}`] },
    { user: 'owner', op: 'rename', args: { src: `${ren}/${'r'.repeat(255)}`, dst: `${ren}/${'x'.repeat(256)}` } },
    { user: 'owner', op: 'list', args: { path: ren } },
  ]);
  for (const len of [1000, 4095, 4096]) {
    const p = `${dir}/target-${len}`;
    c.add(`symlink with a target of ${len} bytes`, 'owner', 'symlink', [], [
      { user: 'owner', op: 'symlink', args: { path: p, target: 't/'.repeat(len / 2) + (len % 2 ? 't' : '') }, observe: [p] },
      { user: 'owner', op: 'readlink', args: { path: p } },
    ]);
  }
  // Deep paths: folders of 250-byte names, then files whose whole relative path is 4095 and 4096 bytes.
  const deep = c.fresh();
  const setup: Step[] = [];
  let p = deep;
  setup.push(...make(p, 'dir', { mode: 0o777 }));
  while (p.length + 251 < 3900) {
    p = `${p}/${'d'.repeat(250)}`;
    setup.push(...make(p, 'dir', { mode: 0o777 }));
  }
  for (const total of [4095, 4096]) {
    const file = `${p}/${'f'.repeat(total - p.length - 1)}`;
    c.add(`a path of ${total} bytes`, 'owner', 'reg', total === 4095 ? setup : [], [
      { user: 'owner', op: 'open', args: { path: file, flags: ['O_WRONLY', 'O_CREAT'], write: 'deep' } },
      { user: 'owner', op: 'read', args: { path: file } },
      { user: 'owner', op: 'stat', args: { path: file } },
    ]);
  }
  const odd = c.fresh();
  const names = ['with space', 'new\nline', 'tab\there', 'ünïcødé-名前', 'back\\slash', '-dash', '.hidden', '..dots', 'del\x7f', 'quote"\'', 'star*?[', 'not-utf8-\udcff\udcfe', 'bad-\udcff', 'bad-\udcfe'];
  c.add('unusual names', 'owner', 'reg', make(odd, 'dir', { owner: 'owner', mode: 0o755 }), [
    ...names.map((n): Step => ({ user: 'owner', op: 'open', args: { path: `${odd}/${n}`, flags: ['O_WRONLY', 'O_CREAT', 'O_EXCL'], write: 'x' } })),
    ...names.map((n): Step => ({ user: 'owner', op: 'read', args: { path: `${odd}/${n}` } })),
    { user: 'owner', op: 'list', args: { path: odd } },
    { user: 'owner', op: 'rename', args: { src: `${odd}/${names[1]}`, dst: `${odd}/${names[11]}-2` } },
    { user: 'owner', op: 'list', args: { path: odd } },
    // Symlink targets are bytes too (Python hands lone surrogates over as the raw bytes).
    { user: 'owner', op: 'symlink', args: { target: 'to-\udcff', path: `${odd}/link-\udcfe` } },
    { user: 'owner', op: 'readlink', args: { path: `${odd}/link-\udcfe` } },
    { user: 'owner', op: 'unlink', args: { path: `${odd}/bad-\udcff` } },
    { user: 'owner', op: 'list', args: { path: odd } },
  ]);
  return c.list;
}
