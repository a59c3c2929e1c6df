/**
 * Files removed while open stay usable through their descriptors until the last close, as on a
 * local disk: the userspace mount renames them to a hidden folder (the kernel NFS client's "silly
 * rename") and removes them there at the last close, or at the next mount after a crash.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GaneshaServer, startGanesha } from '../../harness/ganesha';
import { FuseMount, mountFolder, sleep } from './support/fuse-mount';

const HIDDEN = '.netvol-unlinked';
let g: GaneshaServer;
let m: FuseMount;
const at = (...p: string[]) => path.join(m.mountpoint, ...p);
const onServer = (...p: string[]) => path.join(m.serverDir, ...p);

/** Files under the server's hidden folder (the removed-while-open files still kept). */
function keptOnServer(): string[] {
  const top = onServer(HIDDEN);
  if (!fs.existsSync(top)) return [];
  return fs.readdirSync(top).flatMap((d) => fs.readdirSync(path.join(top, d)).map((f) => `${d}/${f}`));
}

async function waitFor(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

beforeAll(async () => {
  g = await startGanesha();
  m = await mountFolder(g, 'vol');
});

afterAll(async () => {
  await m?.unmount();
  await g?.stop();
});

test('an open file stays readable and writable after its unlink, reports no links, and is gone after close', async () => {
  fs.writeFileSync(at('tmp'), 'hello ');
  const fd = fs.openSync(at('tmp'), 'r+');
  fs.unlinkSync(at('tmp'));
  expect(fs.existsSync(at('tmp'))).toBe(false);
  expect(fs.readdirSync(m.mountpoint)).not.toContain('tmp');
  const st = fs.fstatSync(fd);
  expect([st.size, st.nlink]).toEqual([6, 0]);
  expect(fs.writeSync(fd, 'world', 6)).toBe(5);
  const buf = Buffer.alloc(11);
  expect(fs.readSync(fd, buf, 0, 11, 0)).toBe(11);
  expect(buf.toString()).toBe('hello world');
  expect(fs.fstatSync(fd).size).toBe(11);
  expect(keptOnServer()).toHaveLength(1);
  fs.closeSync(fd);
  await waitFor('the hidden file to go', () => keptOnServer().length === 0);
  expect(fs.readdirSync(m.serverDir)).not.toContain('tmp');
});

test('a write-only descriptor (direct I/O) keeps writing after the unlink, and close reports no error', async () => {
  const fd = fs.openSync(at('wo'), 'w');
  fs.writeSync(fd, Buffer.alloc(3 * 1024 * 1024, 1));
  fs.unlinkSync(at('wo'));
  fs.writeSync(fd, Buffer.alloc(1024 * 1024, 2));
  fs.fsyncSync(fd);
  expect(fs.fstatSync(fd).size).toBe(4 * 1024 * 1024);
  fs.closeSync(fd);
  await waitFor('the hidden file to go', () => keptOnServer().length === 0);
});

test('a file with another name is simply unlinked: the other name keeps it', () => {
  fs.writeFileSync(at('one'), 'shared');
  fs.linkSync(at('one'), at('two'));
  const fd = fs.openSync(at('one'), 'r');
  fs.unlinkSync(at('one'));
  expect(keptOnServer()).toHaveLength(0);
  expect(fs.fstatSync(fd).nlink).toBe(1);
  expect(fs.readFileSync(fd, 'utf8')).toBe('shared');
  fs.closeSync(fd);
  expect(fs.readFileSync(at('two'), 'utf8')).toBe('shared');
});

test('a file replaced by rename stays readable through a descriptor opened before', async () => {
  fs.writeFileSync(at('config'), 'old');
  fs.writeFileSync(at('config.new'), 'new');
  const fd = fs.openSync(at('config'), 'r');
  fs.renameSync(at('config.new'), at('config'));
  expect(fs.readFileSync(at('config'), 'utf8')).toBe('new');
  const buf = Buffer.alloc(3);
  fs.readSync(fd, buf, 0, 3, 0);
  expect(buf.toString()).toBe('old');
  fs.closeSync(fd);
  await waitFor('the hidden file to go', () => keptOnServer().length === 0);
  expect(fs.readFileSync(onServer('config'), 'utf8')).toBe('new');
});

test('a rename that cannot replace an open file leaves it in place', () => {
  fs.writeFileSync(at('kept'), 'still here');
  fs.mkdirSync(at('adir'));
  const fd = fs.openSync(at('kept'), 'r');
  try {
    expect(() => fs.renameSync(at('adir'), at('kept'))).toThrow(expect.objectContaining({ code: 'ENOTDIR' }));
    expect(() => fs.renameSync(at('missing'), at('kept'))).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect(fs.readFileSync(at('kept'), 'utf8')).toBe('still here');
    expect(keptOnServer()).toHaveLength(0);
  } finally {
    fs.closeSync(fd);
  }
});

test('the hidden folder cannot be seen, made or removed through the mount', () => {
  const fd = fs.openSync(at('held'), 'w');
  fs.unlinkSync(at('held'));
  try {
    expect(fs.existsSync(onServer(HIDDEN))).toBe(true);
    expect(fs.readdirSync(m.mountpoint)).not.toContain(HIDDEN);
    expect(() => fs.statSync(at(HIDDEN))).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect(() => fs.mkdirSync(at(HIDDEN))).toThrow(expect.objectContaining({ code: 'EPERM' }));
    expect(() => fs.rmdirSync(at(HIDDEN))).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  } finally {
    fs.closeSync(fd);
  }
});

test('files kept open at unlink by a server that crashed are removed by the next mount', async () => {
  const fd = fs.openSync(at('orphan'), 'w');
  fs.writeSync(fd, 'left behind');
  fs.unlinkSync(at('orphan'));
  expect(keptOnServer()).toHaveLength(1);
  const old = m;
  old.child.kill('SIGKILL');
  await waitFor('the server to die', () => old.child.exitCode !== null || old.child.signalCode !== null);
  try {
    fs.closeSync(fd);
  } catch {
    /* the mount's server is gone: ENOTCONN */
  }
  await old.unmount();
  expect(keptOnServer()).toHaveLength(1);
  m = await mountFolder(g, 'vol');
  expect(keptOnServer()).toHaveLength(0);
  expect(m.output.join('\n')).toMatch(/removed files left open at unlink/);
});
