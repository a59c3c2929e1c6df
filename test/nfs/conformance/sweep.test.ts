/**
 * POSIX conformance of the userspace NFS mount (FUSE over the project's NFSv3 client, served by a
 * real nfs-ganesha): every case runs on a local folder and on the mount in the same test, and the
 * mount must give the local disk's outcome — errno or success, and the resulting type, mode, owner,
 * size, link count, content and times — except where a documented NFSv3 limit (limits.ts) allows
 * another answer. One test per group; a failure prints a table of the steps that differ.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GaneshaServer, startGanesha } from '../../harness/ganesha';
import { FuseMount, mountFolder } from '../fuse/support/fuse-mount';
import { LIMITS } from './limits';
import { chmodChownCases, setIdCases, timeCases } from './groups/attributes';
import { openFlagCases, specialCases, truncateCases, unlinkedCases } from './groups/data';
import { createCases, linkCases, nameCases, renameCases } from './groups/namespace';
import { errorCases, permissionCases, stickyCases } from './groups/permissions';
import { Case, runGroup, table } from './support/sweep';

let g: GaneshaServer;
let m: FuseMount;
let localBase: string;

beforeAll(async () => {
  g = await startGanesha();
  m = await mountFolder(g, 'sweep');
  // On the same filesystem as the export, so folder sizes and limits agree.
  localBase = fs.mkdtempSync(path.join(os.tmpdir(), 'nvsweep-'));
  fs.chmodSync(localBase, 0o755);
  fs.chmodSync(m.mountpoint, 0o755);
}, 120_000);

afterAll(async () => {
  await m?.unmount();
  await g?.stop();
  if (localBase) fs.rmSync(localBase, { recursive: true, force: true });
});

const groups: [string, () => Case[], string][] = [
  ['creating every file type as every user in plain, owned, sticky and set-group-ID folders', createCases, 'create'],
  ['rename of every file type onto nothing and onto every file type', renameCases, 'rename'],
  ['hard links to every file type, and protected hard links', linkCases, 'link'],
  ['long names, long paths, long symlink targets and unusual bytes in names', nameCases, 'names'],
  ['permission checks of every mode bit of files and folders, by the owner, a group member, another user and root', permissionCases, 'perm'],
  ['sticky folders: removing, moving and replacing another user\'s file of every type', stickyCases, 'sticky'],
  ['error codes of wrong types, loops, missing and existing names', errorCases, 'errors'],
  ['chmod and chown of every file type by the owner, another user and root', chmodChownCases, 'chmod-chown'],
  ['set-user-ID and set-group-ID bits after writes, truncation, chown and chmod', setIdCases, 'setid'],
  ['utimensat with explicit times, UTIME_NOW and UTIME_OMIT on every file type, by each kind of user', timeCases, 'times'],
  ['open flags: O_EXCL, O_TRUNC, O_APPEND, O_CREAT through symlinks, O_TMPFILE', openFlagCases, 'open'],
  ['truncate up and down, by path and by descriptor', truncateCases, 'truncate'],
  ['files used after they are unlinked, renamed over or removed', unlinkedCases, 'unlinked'],
  ['FIFOs, sockets and device nodes made and used', specialCases, 'special'],
];

test.each(groups)('the mount answers as a local disk: %s', async (_title, cases, id) => {
  const r = await runGroup(localBase, m.mountpoint, cases(), LIMITS);
  // SWEEP_REPORT=<folder>: every differing step of every group, untruncated, one file per group.
  const report = process.env.SWEEP_REPORT;
  if (report) fs.writeFileSync(path.join(report, `${id}.txt`), `${table(r.mismatches, Infinity)}\n\nlimits:\n${table(r.limited, Infinity)}\n`);
  if (r.limited.length) console.log(`documented NFSv3 limits seen:\n${table(r.limited)}`);
  if (r.mismatches.length) throw new Error(table(r.mismatches));
  expect(r.steps).toBeGreaterThan(0);
});
