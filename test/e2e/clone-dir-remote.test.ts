/**
 * Clones of *directory* volumes into and out of the remote backends: sftp (a real OpenSSH sshd,
 * sshfs) and nfs (a real nfs-ganesha, the userspace mounter), from and to each other and the local
 * backend, made with `docker volume create -o from=SRC -o backend=DST` through a real dockerd. A
 * directory volume is streamed file by file (cp -a between the two mounts): the clone must show
 * the same tree as its source in a container — contents, sizes, modes (setgid, sticky), mtimes of
 * files and folders, symlinks relative (with '..'), absolute and dangling, read back through — and
 * a hard link stays one on the server's disk wherever the source's mount shows it as one (sshfs
 * shows every file with one link and an inode number of its own, so from sftp a hard link arrives
 * as two files with the same content).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GaneshaServer, startGanesha } from '../harness/ganesha';
import { sftpOptions, startSshd, Sshd } from '../harness/sshd';
import { runIn } from './support/backup';
import { startWorld, stopWorld, uniqueName, World } from './support/world';

jest.setTimeout(240_000);

type Kind = 'local' | 'remote' | 'nas';
const KINDS: Kind[] = ['local', 'remote', 'nas'];

let sshd: Sshd | undefined;
let g: GaneshaServer | undefined;
let w: World;
let localRoot: string;
const sources: Record<string, { name: string; fingerprint: string }> = {};

/** Every kind of entry a directory volume may hold, as a container makes it. */
const FILL = [
  'set -e; cd /data',
  'mkdir -p sub/deep empty',
  'echo hello > a.txt && chmod 640 a.txt && touch -d "2020-01-02 03:04:05" a.txt',
  'busybox ln a.txt sub/hard.txt',
  'busybox ln -s ../a.txt sub/link && busybox ln -s /data/a.txt abs && busybox ln -s sub/deep/r.bin rel && busybox ln -s /nowhere dangling',
  'dd if=/dev/urandom of=sub/deep/r.bin bs=1k count=700 2>/dev/null && chmod 600 sub/deep/r.bin',
  'dd if=/dev/zero of=sparse.img bs=1 count=1 seek=8388607 2>/dev/null',
  ': > zero && chmod 604 zero',
  'touch -d "2021-05-06 07:08:09" sub/deep && chmod 2750 sub && chmod 1777 empty',
  'sync',
].join('\n');

/** What a container sees: each entry's name, mode, type, mtime (not of symlinks) and size (files), link targets, md5s, and the links read through. */
const FINGERPRINT = [
  'set -e; cd /data',
  'find . -mindepth 1 ! -path "./.netvol-unlinked*" | sort | while read f; do',
  '  if [ -L "$f" ]; then echo "$f -> $(busybox readlink "$f")";',
  '  elif [ -f "$f" ]; then stat -c "%n %a %F %Y %s" "$f";',
  '  else stat -c "%n %a %F %Y" "$f"; fi',
  'done',
  'find . -type f ! -path "./.netvol-unlinked*" | sort | while read f; do md5sum "$f"; done',
  'echo "through links: $(cat sub/link) $(cat abs) $(md5sum < rel)"',
].join('\n');

/** A volume's data folder on its server's own disk. */
function onDisk(kind: Kind, volume: string): string {
  if (kind === 'local') return path.join(localRoot, volume, 'data');
  if (kind === 'remote') return path.join(sshd!.root, 'volumes', volume, 'data');
  return path.join(g!.exportDir, 'docker', volume, 'data');
}

function hardLinked(kind: Kind, volume: string): boolean {
  const dir = onDisk(kind, volume);
  return fs.statSync(path.join(dir, 'a.txt')).ino === fs.statSync(path.join(dir, 'sub', 'hard.txt')).ino;
}

beforeAll(async () => {
  sshd = await startSshd();
  g = await startGanesha();
  localRoot = path.join(fs.mkdtempSync('/tmp/nv-clone-dir-'), 'volumes');
  w = await startWorld({
    backends: {
      local: { type: 'local', path: localRoot },
      remote: { type: 'sftp', ...sftpOptions(sshd) },
      nas: { type: 'nfs', server: g.host, export: g.exportPath, port: g.nfsPort, mountPort: g.mountPort, path: 'docker', mounter: 'userspace' },
    },
  });
  for (const kind of KINDS) {
    const name = uniqueName(`dir-${kind}`);
    await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', `backend=${kind}`, name]);
    await runIn(w, name, FILL);
    sources[kind] = { name, fingerprint: await runIn(w, name, FINGERPRINT) };
  }
}, 240_000);

afterAll(async () => {
  await stopWorld(w);
  await sshd?.cleanup();
  await g?.stop();
  if (localRoot) fs.rmSync(path.dirname(localRoot), { recursive: true, force: true });
}, 300_000);

test('each source shows every entry as made, and keeps the hard link on its server', () => {
  for (const kind of KINDS) {
    const fp = sources[kind].fingerprint;
    expect(fp).toContain('./a.txt 640 regular file 1577934245 6\n');
    expect(fp).toContain('./sub 2750 directory');
    expect(fp).toContain('./empty 1777 directory');
    expect(fp).toContain('./sub/deep 755 directory 1620284889\n');
    expect(fp).toContain('./sub/link -> ../a.txt\n');
    expect(fp).toContain('./abs -> /data/a.txt\n');
    expect(fp).toContain('./dangling -> /nowhere\n');
    expect(fp).toContain('./sparse.img 644 regular file');
    expect(fp).toMatch(/through links: hello hello [0-9a-f]{32}/);
    expect(hardLinked(kind, sources[kind].name)).toBe(true);
  }
});

const pairs: Array<[Kind, Kind]> = KINDS.flatMap((from) => KINDS.map((to) => [from, to] as [Kind, Kind])).filter(([from, to]) => !(from === 'local' && to === 'local'));

test.each(pairs)('a directory volume on %s cloned to %s with -o from shows the same tree', async (from, to) => {
  const clone = uniqueName(`dir-${from}-to-${to}`);
  await w.d.dockerOk(['volume', 'create', '-d', w.plugin, '-o', `from=${sources[from].name}`, '-o', `backend=${to}`, clone]);
  expect((await w.d.dockerOk(['volume', 'inspect', '-f', '{{.Status.backend}} {{.Status.layout}}', clone])).trim()).toBe(`${to} directory`);
  expect(await runIn(w, clone, FINGERPRINT)).toBe(sources[from].fingerprint);
  expect(hardLinked(to, clone)).toBe(from !== 'remote');
  // Independent: a change to the clone leaves the source as it was.
  await runIn(w, clone, 'echo changed > /data/a.txt');
  expect(await runIn(w, sources[from].name, 'cat /data/a.txt')).toBe('hello\n');
});
