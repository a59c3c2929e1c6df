/** netvolctl backup and restore of sftp volumes through a real dockerd, sshd and the real daemon. */
import * as fs from 'node:fs';
import { withSftpWorld } from '../e2e/support/server-worlds';
import type { World } from '../e2e/support/world';
import { FILL_SIMPLE, FILL_TREE, FINGERPRINT, FINGERPRINT_SIMPLE, roundTrip } from '../e2e/support/backup';

jest.setTimeout(180_000);

let w: World;
let work: string;

beforeAll(() => {
  work = fs.mkdtempSync('/tmp/nvbsftp-');
});
withSftpWorld((rig) => (w = rig.world));

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

test('an sftp image volume goes through backup → rm → restore --create --verify with owners, modes, links and holes', async () => {
  const r = await roundTrip(w, work, 'bk-sftp-img', ['-o', 'size=64M'], FILL_TREE, FINGERPRINT);
  expect(r.backup.stderr).toContain('not point in time'); // no constant-time copy over sftp
  expect(r.restore.stderr).toContain('verified');
  expect(r.after).toBe(r.before);
});

test('an sftp directory volume, symlink included, goes through backup → rm → restore --create --verify', async () => {
  const r = await roundTrip(w, work, 'bk-sftp-dir', [], FILL_SIMPLE, FINGERPRINT_SIMPLE);
  expect(r.backup).toMatchObject({ code: 0 });
  expect(r.restore).toMatchObject({ code: 0 });
  expect(r.after).toBe(r.before);
});
