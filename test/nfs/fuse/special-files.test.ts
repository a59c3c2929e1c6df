/**
 * Special files through the userspace mount (NFSv3 MKNOD): FIFOs and Unix sockets work between
 * processes of the host as on a local disk (their data never goes to the server), device nodes
 * keep their major and minor numbers, and each belongs to its creator like any new file.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { GaneshaServer, startGanesha } from '../../harness/ganesha';
import { FuseMount, mountFolder, sh } from './support/fuse-mount';

let g: GaneshaServer;
let m: FuseMount;
const at = (...p: string[]) => path.join(m.mountpoint, ...p);
const onServer = (...p: string[]) => path.join(m.serverDir, ...p);
const asUser = (uid: number, gid: number, ...argv: string[]) => sh('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', ...argv]);
/** Major and minor of a Linux dev_t as Node reports it. */
const majorMinor = (rdev: number) => [(rdev >> 8) & 0xfff, (rdev & 0xff) | ((rdev >> 12) & 0xfff00)];

beforeAll(async () => {
  g = await startGanesha();
  m = await mountFolder(g, 'vol');
  fs.mkdirSync(at('shared'));
  fs.chmodSync(at('shared'), 0o1777);
});

afterAll(async () => {
  await m?.unmount();
  await g?.stop();
});

test('a FIFO made on the mount carries data from one process to another, and the server holds only the node', async () => {
  await sh('mkfifo', ['-m', '0640', at('pipe')]);
  const st = fs.statSync(at('pipe'));
  expect(st.isFIFO()).toBe(true);
  expect(st.mode & 0o7777).toBe(0o640);
  expect(fs.statSync(onServer('pipe')).isFIFO()).toBe(true);
  const reader = sh('cat', [at('pipe')], { timeoutMs: 10_000 });
  await sh('sh', ['-c', `printf 'through the pipe' > ${at('pipe')}`], { timeoutMs: 10_000 });
  expect((await reader).stdout).toBe('through the pipe');
  expect(fs.statSync(onServer('pipe')).size).toBe(0);
});

test('a Unix socket bound on the mount accepts a connection from another process', async () => {
  const file = at('app.sock');
  const server = net.createServer((c) => c.end('hello from the socket'));
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(file, resolve));
  try {
    expect(fs.statSync(file).isSocket()).toBe(true);
    expect(fs.statSync(onServer('app.sock')).isSocket()).toBe(true);
    const client = spawn(process.execPath, ['-e', `require('net').connect(${JSON.stringify(file)}).on('data', (d) => process.stdout.write(d))`]);
    let out = '';
    client.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const code = await new Promise((resolve) => client.on('exit', resolve));
    expect([code, out]).toEqual([0, 'hello from the socket']);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test('character and block devices keep their major and minor numbers', async () => {
  await sh('mknod', ['-m', '0620', at('tty9'), 'c', '4', '9']);
  await sh('mknod', [at('loopy'), 'b', '7', '300']);
  const c = fs.statSync(at('tty9'));
  expect(c.isCharacterDevice()).toBe(true);
  expect(c.mode & 0o7777).toBe(0o620);
  expect(majorMinor(c.rdev)).toEqual([4, 9]);
  expect(majorMinor(fs.statSync(onServer('tty9')).rdev)).toEqual([4, 9]);
  const b = fs.statSync(at('loopy'));
  expect(b.isBlockDevice()).toBe(true);
  expect(majorMinor(b.rdev)).toEqual([7, 300]);
  expect(majorMinor(fs.statSync(onServer('loopy')).rdev)).toEqual([7, 300]);
});

test('a special file made by a caller who is not root belongs to the caller, with the umask applied', async () => {
  await asUser(1000, 1001, 'sh', '-c', `umask 027 && mkfifo ${at('shared', 'theirs')}`);
  const st = fs.statSync(onServer('shared', 'theirs'));
  expect([st.isFIFO(), st.uid, st.gid, st.mode & 0o7777]).toEqual([true, 1000, 1001, 0o640]);
  await asUser(1000, 1001, 'rm', at('shared', 'theirs'));
  expect(fs.existsSync(onServer('shared', 'theirs'))).toBe(false);
});

test('special files can be renamed, hard-linked and removed like any file', async () => {
  await sh('mkfifo', [at('p1')]);
  fs.linkSync(at('p1'), at('p2'));
  expect(fs.statSync(at('p2')).nlink).toBe(2);
  fs.renameSync(at('p1'), at('p3'));
  expect(fs.statSync(onServer('p3')).isFIFO()).toBe(true);
  fs.unlinkSync(at('p2'));
  fs.unlinkSync(at('p3'));
  expect(fs.readdirSync(m.serverDir)).not.toContain('p3');
});
