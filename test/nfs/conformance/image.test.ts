/**
 * An image volume's semantics on the userspace NFS mount: an ext4 image stored on the mount and
 * loop-mounted, as the nfs backend does for `size` volumes, answers every case of the groups where
 * a folder on the mount differs most (special files, links, set-ID bits, times, owners, unlinked
 * files) exactly as a local folder does. No documented limit applies here: the image's own ext4
 * does the work, and the mount only carries its blocks.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GaneshaServer, startGanesha } from '../../harness/ganesha';
import { FuseMount, mountFolder } from '../fuse/support/fuse-mount';
import { chmodChownCases, setIdCases, timeCases } from './groups/attributes';
import { specialCases, unlinkedCases } from './groups/data';
import { linkCases } from './groups/namespace';
import { Case, runGroup, table } from './support/sweep';

let g: GaneshaServer;
let m: FuseMount;
let imageMount: string;
let localBase: string;

beforeAll(async () => {
  g = await startGanesha();
  m = await mountFolder(g, 'image');
  const img = path.join(m.mountpoint, 'data.img');
  execFileSync('truncate', ['-s', '256M', img]);
  execFileSync('mkfs.ext4', ['-q', '-F', img]);
  imageMount = fs.mkdtempSync(path.join(os.tmpdir(), 'nvsweep-img-'));
  // -o loop: the loop device is detached again by umount (autoclear).
  execFileSync('mount', ['-o', 'loop', img, imageMount]);
  fs.chmodSync(imageMount, 0o755);
  localBase = fs.mkdtempSync(path.join(os.tmpdir(), 'nvsweep-'));
  fs.chmodSync(localBase, 0o755);
}, 120_000);

afterAll(async () => {
  if (imageMount) {
    execFileSync('umount', [imageMount]);
    fs.rmSync(imageMount, { recursive: true, force: true });
  }
  await m?.unmount();
  await g?.stop();
  if (localBase) fs.rmSync(localBase, { recursive: true, force: true });
});

const groups: [string, () => Case[]][] = [
  ['FIFOs, sockets and device nodes', specialCases],
  ['hard links to every file type', linkCases],
  ['chmod and chown of every file type', chmodChownCases],
  ['set-ID bits after writes, truncation, chown and chmod', setIdCases],
  ['utimensat on every file type', timeCases],
  ['files used after they are unlinked', unlinkedCases],
];

test.each(groups)('an image volume on the userspace NFS mount answers as a local disk: %s', async (_title, cases) => {
  const r = await runGroup(localBase, imageMount, cases(), []);
  if (r.mismatches.length) throw new Error(table(r.mismatches));
  expect(r.steps).toBeGreaterThan(0);
});
