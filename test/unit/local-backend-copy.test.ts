/**
 * The local backend's server-side copy (Backend.copyWithin, for clone) in a temporary folder of this
 * host. Whether the folder's filesystem has reflinks decides the answer; each test reads it from a
 * probe and checks the behaviour that goes with it.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Backend } from '../../src/backends';
import { localBackendType } from '../../src/backends/local/local-backend';
import { createLogger } from '../../src/log';

let root: string;
let backend: Backend;
let reflinks: boolean;

beforeEach(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'nvcopy-'));
  backend = localBackendType.create({ path: root }, { name: 'local', hostId: 'host-a', workDir: root, timeoutMs: 5000, logger: createLogger('error') });
  await backend.open();
  fs.writeFileSync(path.join(root, 'probe-a'), 'x');
  try {
    execFileSync('cp', ['--reflink=always', path.join(root, 'probe-a'), path.join(root, 'probe-b')], { stdio: 'ignore' });
    reflinks = true;
  } catch {
    reflinks = false;
  }
  fs.rmSync(path.join(root, 'probe-a'), { force: true });
  fs.rmSync(path.join(root, 'probe-b'), { force: true });
});

afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

/** A sparse 64 MiB image holding 1 MiB of data at 16 MiB. */
function makeImage(file: string): Buffer {
  const data = Buffer.alloc(1024 * 1024, 7);
  const fd = fs.openSync(file, 'w');
  fs.ftruncateSync(fd, 64 * 1024 * 1024);
  fs.writeSync(fd, data, 0, data.length, 16 * 1024 * 1024);
  fs.closeSync(fd);
  return data;
}

test('copyWithin() of an image: a reflink where the filesystem has them; with cheapOnly, otherwise nothing', async () => {
  await backend.makeFolder('src', false);
  await backend.makeFolder('dst', false);
  makeImage(path.join(root, 'src', 'data.img'));
  const answer = await backend.copyWithin!({ from: 'src', to: 'dst', entry: 'data.img', cheapOnly: true });
  if (reflinks) {
    expect(answer).toBe('reflink');
    expect(fs.statSync(path.join(root, 'dst', 'data.img')).size).toBe(64 * 1024 * 1024);
  } else {
    expect(answer).toBeUndefined();
    expect(fs.existsSync(path.join(root, 'dst', 'data.img'))).toBe(false);
  }
});

test('copyWithin() of an image without cheapOnly copies it, keeping its holes', async () => {
  await backend.makeFolder('src', false);
  await backend.makeFolder('dst', false);
  const data = makeImage(path.join(root, 'src', 'data.img'));
  const answer = await backend.copyWithin!({ from: 'src', to: 'dst', entry: 'data.img', cheapOnly: false });
  expect(answer).toBe(reflinks ? 'reflink' : 'server');
  const copy = path.join(root, 'dst', 'data.img');
  expect(fs.statSync(copy).size).toBe(64 * 1024 * 1024);
  expect(fs.statSync(copy).blocks * 512).toBeLessThan(8 * 1024 * 1024);
  const fd = fs.openSync(copy, 'r');
  const back = Buffer.alloc(data.length);
  fs.readSync(fd, back, 0, back.length, 16 * 1024 * 1024);
  fs.closeSync(fd);
  expect(back.equals(data)).toBe(true);
});

test('copyWithin() of a data folder keeps modes, owners, symlinks and hard links, and the folder\'s own mode', async () => {
  await backend.makeFolder('src', true);
  await backend.makeFolder('dst', true);
  const src = path.join(root, 'src', 'data');
  fs.chmodSync(src, 0o750);
  fs.mkdirSync(path.join(src, 'sub'));
  fs.writeFileSync(path.join(src, 'sub', 'f'), 'hello');
  fs.chmodSync(path.join(src, 'sub', 'f'), 0o604);
  fs.chownSync(path.join(src, 'sub', 'f'), 123, 45);
  fs.symlinkSync('sub/f', path.join(src, 'link'));
  fs.linkSync(path.join(src, 'sub', 'f'), path.join(src, 'hard'));
  const answer = await backend.copyWithin!({ from: 'src', to: 'dst', entry: 'data', cheapOnly: false });
  expect(answer).toBe(reflinks ? 'reflink' : 'server');
  const dst = path.join(root, 'dst', 'data');
  expect(fs.statSync(dst).mode & 0o7777).toBe(0o750);
  const st = fs.statSync(path.join(dst, 'sub', 'f'));
  expect([st.mode & 0o7777, st.uid, st.gid, st.nlink]).toEqual([0o604, 123, 45, 2]);
  expect(fs.readlinkSync(path.join(dst, 'link'))).toBe('sub/f');
  // Independent of the source.
  fs.writeFileSync(path.join(dst, 'sub', 'f'), 'changed');
  expect(fs.readFileSync(path.join(src, 'sub', 'f'), 'utf8')).toBe('hello');
});

test('copyWithin() with a request deadline already passed fails and leaves no copy behind', async () => {
  await backend.makeFolder('src', false);
  await backend.makeFolder('dst', false);
  makeImage(path.join(root, 'src', 'data.img'));
  const aborted = AbortSignal.abort(new Error('stopped'));
  await expect(backend.copyWithin!({ from: 'src', to: 'dst', entry: 'data.img', cheapOnly: false, signal: aborted })).rejects.toBeTruthy();
  expect(fs.existsSync(path.join(root, 'dst', 'data.img'))).toBe(false);
});
