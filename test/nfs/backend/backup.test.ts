/** netvolctl backup and restore of nfs volumes through a real dockerd, nfs-ganesha and the real daemon. */
import * as fs from 'node:fs';
import { withNfsWorld } from '../../e2e/support/server-worlds';
import type { World } from '../../e2e/support/world';
import { FILL_SIMPLE, FILL_TREE, FINGERPRINT, FINGERPRINT_SIMPLE, roundTrip } from '../../e2e/support/backup';

jest.setTimeout(240_000);

let w: World;
let work: string;

beforeAll(() => {
  work = fs.mkdtempSync('/tmp/nvbnfs-');
});
withNfsWorld((rig) => (w = rig.world));

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

test('an nfs image volume goes through backup → rm → restore --create --verify with owners, modes, links and holes', async () => {
  const r = await roundTrip(w, work, 'bk-nfs-img', ['-o', 'size=64M'], FILL_TREE, FINGERPRINT);
  expect(r.backup.stderr).toContain('not point in time');
  expect(r.restore.stderr).toContain('verified');
  expect(r.after).toBe(r.before);
});

test('an nfs directory volume goes through backup → rm → restore --create with contents, modes, sizes and links', async () => {
  const r = await roundTrip(w, work, 'bk-nfs-dir', [], FILL_SIMPLE, FINGERPRINT_SIMPLE, false);
  expect(r.after).toBe(r.before);
});

test('an nfs directory volume restored with --verify keeps every mtime (the mount lands queued WRITEs before it sets times)', async () => {
  const r = await roundTrip(w, work, 'bk-nfs-mtime', [], FILL_SIMPLE, FINGERPRINT_SIMPLE, true);
  expect(r.after).toBe(r.before);
});
