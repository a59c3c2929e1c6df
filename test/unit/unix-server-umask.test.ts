import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { listenOnSocket } from '../../src/system';

/**
 * The daemon listens on its plugin socket (0660) and its admin socket (0600) at the same time. Each
 * socket gets its mode from a umask set around its bind; the process's umask must be the same
 * afterwards, or every folder and file netvol makes later (mountpoints, data folders) gets the
 * socket's restrictive mode.
 */
test('two sockets listened on at once get their own modes, and the process umask is as it was', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'netvol-umask-'));
  const before = process.umask();
  process.umask(before);
  const handler = () => undefined;
  const servers = await Promise.all([listenOnSocket(path.join(dir, 'plugin.sock'), handler, 0o660), listenOnSocket(path.join(dir, 'admin.sock'), handler, 0o600)]);
  try {
    const now = process.umask();
    process.umask(now);
    expect(now.toString(8)).toBe(before.toString(8));
    expect(((await fs.lstat(path.join(dir, 'plugin.sock'))).mode & 0o777).toString(8)).toBe('660');
    expect(((await fs.lstat(path.join(dir, 'admin.sock'))).mode & 0o777).toString(8)).toBe('600');
  } finally {
    for (const s of servers) await s.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});
