/**
 * Set-user-ID and set-group-ID bits through the userspace mount: a write or truncate by a process
 * without CAP_FSETID clears them on every write path, as on a local disk. Each case runs on a
 * local folder and on the mount, and the mount must end with the mode the local disk ends with.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GaneshaServer, startGanesha } from '../../harness/ganesha';
import { FuseMount, mountFolder, sh } from './support/fuse-mount';

let g: GaneshaServer;
let m: FuseMount;
let local: string;

beforeAll(async () => {
  g = await startGanesha();
  m = await mountFolder(g, 'vol');
  local = fs.mkdtempSync(path.join(os.tmpdir(), 'nvsetid-'));
  for (const dir of [local, m.mountpoint]) fs.chmodSync(dir, 0o1777);
});

afterAll(async () => {
  await m?.unmount();
  await g?.stop();
  if (local) fs.rmSync(local, { recursive: true, force: true });
});

const WRITERS: Record<string, (file: string, by: number) => string[]> = {
  // O_WRONLY: the mount serves it with direct I/O.
  'a write-only descriptor': (f) => ['dd', 'if=/dev/zero', `of=${f}`, 'bs=1', 'count=1', 'conv=notrunc', 'status=none'],
  // O_RDWR: through the kernel's page cache.
  'a read-write descriptor': (f) => ['perl', '-e', 'open(my $f, "+<", $ARGV[0]) or die $!; syswrite($f, "x") or die $!', f],
  'an append': (f) => ['sh', '-c', `printf x >> ${f}`],
  truncate: (f) => ['truncate', '-s', '0', f],
  'a chgrp to the caller\'s group': (f, by) => ['chgrp', String(by), f],
};

const CASES: Array<{ mode: number; owner: number; by: number }> = [
  { mode: 0o4777, owner: 0, by: 65534 }, // someone else's set-user-ID file
  { mode: 0o4755, owner: 1000, by: 1000 }, // the owner, who is not root
  { mode: 0o6777, owner: 0, by: 65534 },
  { mode: 0o2777, owner: 0, by: 65534 }, // set-group-ID with group execute: cleared
  { mode: 0o2666, owner: 0, by: 65534 }, // set-group-ID without group execute (a locking mark): kept
  { mode: 0o6755, owner: 0, by: 0 }, // root keeps them
];

let n = 0;
async function outcome(dir: string, c: (typeof CASES)[number], writer: (f: string, by: number) => string[]): Promise<string> {
  const file = path.join(dir, `f${n++}`);
  fs.writeFileSync(file, 'data');
  fs.chownSync(file, c.owner, c.owner);
  fs.chmodSync(file, c.mode);
  const argv = writer(file, c.by);
  try {
    if (c.by === 0) await sh(argv[0], argv.slice(1));
    else await sh('setpriv', [`--reuid=${c.by}`, `--regid=${c.by}`, '--clear-groups', ...argv]);
  } catch {
    return 'refused';
  }
  return (fs.statSync(file).mode & 0o7777).toString(8);
}

for (const [how, writer] of Object.entries(WRITERS)) {
  test(`${how} clears set-ID bits as on a local disk`, async () => {
    const got: string[] = [];
    const want: string[] = [];
    for (const c of CASES) {
      const label = `mode ${c.mode.toString(8)} owner ${c.owner} by ${c.by}`;
      want.push(`${label}: ${await outcome(local, c, writer)}`);
      got.push(`${label}: ${await outcome(m.mountpoint, c, writer)}`);
    }
    expect(got).toEqual(want);
  });
}
