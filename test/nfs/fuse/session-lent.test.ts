/**
 * The FUSE library's lent READ answers (src/fuse): a filesystem may answer a READ with memory it
 * wants back (netvol's NFS client hands over the received record), and the session gives it back
 * only once the kernel has copied the data. Served in this process by a tiny filesystem holding one
 * file; the file is read by a child process (a FUSE server must not do I/O on its own mount).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { Attr, FuseError, FuseOps, FuseSession, Lent, mountFuse, ROOT_ID, unmountFuse } from '../../../src/fuse';
import { patternBytes } from '../fixture';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const FILE_ID = 2;
const content = patternBytes(8 * MiB + 12_345, 3);

let dir: string;
let mountpoint: string;
let session: FuseSession | undefined;
const lent = { out: 0, given: 0, poisoned: 0 };

function attr(nodeid: number): Attr {
  const t = { seconds: 1_700_000_000, nseconds: 0 };
  const common = { atime: t, mtime: t, ctime: t, uid: 0, gid: 0, rdev: 0, blksize: MiB };
  if (nodeid === ROOT_ID) return { ino: ROOT_ID, size: 4096, blocks: 8, mode: 0o040755, nlink: 2, ...common };
  if (nodeid === FILE_ID) return { ino: FILE_ID, size: content.length, blocks: Math.ceil(content.length / 512), mode: 0o100644, nlink: 1, ...common };
  throw new FuseError('ENOENT');
}

const ops: FuseOps = {
  lookup: async (_c, parent, name) => {
    if (parent !== ROOT_ID || name.toString() !== 'f') throw new FuseError('ENOENT');
    return { nodeid: FILE_ID, attr: attr(FILE_ID) };
  },
  getattr: async (_c, nodeid) => attr(nodeid),
  open: async () => ({ fh: 1 }),
  release: async () => undefined,
  // Each answer is a copy the session must give back; given back, it is overwritten at once, so a
  // give-back before the kernel copied the data would show as wrong bytes in the file.
  read: async (_c, _n, _fh, offset, size): Promise<Lent> => {
    const data = Buffer.from(content.subarray(offset, Math.min(content.length, offset + size)));
    lent.out++;
    let back = false;
    return {
      data,
      giveBack: () => {
        if (back) throw new Error('given back twice');
        back = true;
        lent.given++;
        data.fill(0xee);
        lent.poisoned++;
      },
    };
  },
};

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'netvol-fuse-lent-'));
  mountpoint = path.join(dir, 'mnt');
  fs.mkdirSync(mountpoint);
  const fd = await mountFuse(mountpoint, { fsname: 'netvol-test-lent', subtype: 'netvol-test', maxRead: MiB });
  // One request reader: it waits in one of the test process's four libuv threads, and the answers'
  // device writes need the others.
  session = new FuseSession(fd, ops, { maxWrite: MiB, maxReadahead: MiB, entryTtlMs: 1000, attrTtlMs: 1000, readers: 1 });
  const started = new Promise((resolve) => session!.once('init', resolve));
  session.start();
  await started;
});

afterAll(async () => {
  if (session) await unmountFuse(mountpoint).catch(() => undefined);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('lent READ answers reach the reader whole and are each given back once, after the kernel has copied them', async () => {
  const expected = createHash('sha256').update(content).digest('hex');
  const { stdout } = await run('sha256sum', [path.join(mountpoint, 'f')], { timeout: 60_000 });
  expect(stdout.split(' ')[0]).toBe(expected);
  // Direct I/O: every byte is a READ answered now, none from the page cache.
  const direct = await run('sh', ['-c', `dd if='${path.join(mountpoint, 'f')}' iflag=direct bs=1M status=none | sha256sum`], { timeout: 60_000 });
  expect(direct.stdout.split(' ')[0]).toBe(expected);
  expect(lent.out).toBeGreaterThanOrEqual(9);
  expect(lent.given).toBe(lent.out);
  expect(lent.poisoned).toBe(lent.out);
}, 120_000);
