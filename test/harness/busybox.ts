/**
 * The e2e tier's only image: `busybox:local`, made from the host's static busybox with no registry.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const BUSYBOX_IMAGE = 'busybox:local';

const BUSYBOX_BINARY = '/bin/busybox';

/** Applets the tests call; each becomes a symlink to /bin/busybox inside the image. */
const APPLETS = [
  'sh', 'ash', 'cat', 'cp', 'dd', 'df', 'du', 'echo', 'env', 'false', 'grep', 'head', 'id', 'ls', 'md5sum',
  'mkdir', 'mv', 'printf', 'rm', 'sleep', 'stat', 'sync', 'tail', 'test', 'touch', 'true', 'wc', 'chmod',
  'chown', 'find', 'seq', 'tr', 'sha256sum', 'kill', 'mount', 'cut', 'yes',
];

/**
 * Lays out a root filesystem in `dir` (bin/busybox plus applet symlinks, and the folders Docker
 * expects) and writes it as a tar file; returns the tar's path, for `docker import`.
 */
export function buildBusyboxTar(workDir: string): string {
  if (!fs.existsSync(BUSYBOX_BINARY)) throw new Error(`${BUSYBOX_BINARY} is missing: install busybox-static`);
  const root = path.join(workDir, 'busybox-rootfs');
  fs.rmSync(root, { recursive: true, force: true });
  // No /data: an image folder at a volume's target makes dockerd copy its contents and its owner and
  // mode onto an empty volume (moby copyExistingContents), which would undo -o uid/gid/mode.
  for (const d of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'root']) {
    fs.mkdirSync(path.join(root, d), { recursive: true });
  }
  fs.chmodSync(path.join(root, 'tmp'), 0o1777);
  fs.copyFileSync(BUSYBOX_BINARY, path.join(root, 'bin', 'busybox'));
  fs.chmodSync(path.join(root, 'bin', 'busybox'), 0o755);
  for (const applet of APPLETS) fs.symlinkSync('busybox', path.join(root, 'bin', applet));
  fs.writeFileSync(path.join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/tmp:/bin/sh\n');
  fs.writeFileSync(path.join(root, 'etc', 'group'), 'root:x:0:\nuser:x:1000:\n');
  const tarFile = path.join(workDir, 'busybox.tar');
  const r = spawnSync('tar', ['-C', root, '-cf', tarFile, '.'], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`tar failed: ${r.stderr ?? r.error?.message}`);
  fs.rmSync(root, { recursive: true, force: true });
  return tarFile;
}
