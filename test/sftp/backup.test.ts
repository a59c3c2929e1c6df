/** netvolctl backup and restore of sftp volumes through a real dockerd, sshd and the real daemon. */
import * as fs from 'node:fs';
import { sftpOptions, startSshd, Sshd } from '../harness/sshd';
import { startWorld, stopWorld, World } from '../e2e/support/world';
import { FILL_SIMPLE, FILL_TREE, FINGERPRINT, FINGERPRINT_SIMPLE, roundTrip } from '../e2e/support/backup';

jest.setTimeout(180_000);

let sshd: Sshd;
let w: World;
let work: string;

beforeAll(async () => {
  work = fs.mkdtempSync('/tmp/nvbsftp-');
  sshd = await startSshd();
  w = await startWorld({ backends: { remote: { type: 'sftp', ...sftpOptions(sshd, { knownHostsFile: undefined, hostKeyFingerprint: sshd.hostKeyFingerprint }) } } });
}, 180_000);

afterAll(async () => {
  await stopWorld(w);
  await sshd?.cleanup();
  if (work) fs.rmSync(work, { recursive: true, force: true });
}, 300_000);

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
