import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { copyTree } from '../../src/quota';

/**
 * copyTree without a symlink's own attributes (the way onto an sshfs target, where lchown and
 * utimensat of a link reach its target): everything but links still gets its source's owner, mode
 * (setuid and setgid too) and times, folders theirs after their contents, and links stay links.
 */
let root: string;
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'netvol-copytree-'));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const OLD = new Date('2020-01-02T03:04:05.678Z');
const OLDER = new Date('2019-06-07T08:09:10.000Z');

async function describeTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const p = path.join(dir, rel);
    const st = await fs.lstat(p);
    if (st.isSymbolicLink()) out.push(`${rel} -> ${await fs.readlink(p)}`);
    else out.push(`${rel} ${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)} ${st.mtime.toISOString()} ${st.nlink}`);
    if (st.isDirectory()) for (const n of (await fs.readdir(p)).sort()) await walk(path.join(rel, n));
  };
  await walk('.');
  return out;
}

test('copyTree with symlinkAttributes false keeps owners, modes and times of everything but links, and the links themselves', async () => {
  const src = path.join(root, 'src');
  const dst = path.join(root, 'dst');
  await fs.mkdir(path.join(src, 'sub', 'deep'), { recursive: true });
  await fs.mkdir(dst);
  await fs.writeFile(path.join(src, 'a.txt'), 'hello\n');
  await fs.chown(path.join(src, 'a.txt'), 1234, 5678);
  await fs.chmod(path.join(src, 'a.txt'), 0o640);
  await fs.link(path.join(src, 'a.txt'), path.join(src, 'sub', 'hard.txt'));
  await fs.writeFile(path.join(src, 'sub', 'deep', 'tool'), '#!/bin/sh\n');
  await fs.chown(path.join(src, 'sub', 'deep', 'tool'), 42, 43);
  await fs.chmod(path.join(src, 'sub', 'deep', 'tool'), 0o6755);
  await fs.symlink('../a.txt', path.join(src, 'sub', 'link'));
  await fs.symlink('/nowhere/at/all', path.join(src, 'dangling'));
  await fs.chown(path.join(src, 'sub'), 7, 8);
  await fs.chmod(path.join(src, 'sub'), 0o2750);
  for (const f of ['a.txt', 'sub/deep/tool', 'sub/deep', 'sub', '.']) await fs.utimes(path.join(src, f), OLDER, OLD);

  await copyTree(src, dst, undefined, { symlinkAttributes: false });

  expect(await describeTree(dst)).toEqual(await describeTree(src));
  expect(await describeTree(dst)).toContain(`sub/deep/tool 42:43 6755 ${OLD.toISOString()} 1`);
  expect((await fs.stat(path.join(dst, 'a.txt'))).ino).toBe((await fs.stat(path.join(dst, 'sub', 'hard.txt'))).ino);
});

test('copyTree ends with a clear error when the copy cannot be made', async () => {
  await expect(copyTree(path.join(root, 'missing'), path.join(root, 'dst'), undefined, { symlinkAttributes: false })).rejects.toThrow(/cannot copy the files of .*missing/);
});
