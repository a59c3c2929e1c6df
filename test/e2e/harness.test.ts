import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { BUSYBOX_IMAGE, Dockerd, mountsUnder, pidsMentioning, startDockerd } from '../harness/dockerd';

jest.setTimeout(180_000);

/**
 * Names unique to the run, created with `-d local`: a bare name would make dockerd ask every plugin
 * in /run/docker/plugins whether it has that volume, and could adopt (then remove) another's.
 */
const own = (prefix: string): string => `${prefix}-${crypto.randomBytes(3).toString('hex')}`;

describe('the private dockerd harness', () => {
  let d: Dockerd;

  beforeAll(async () => {
    d = await startDockerd();
  });

  afterAll(async () => {
    await d?.removeAll();
    await d?.stop();
  });

  test('answers on its own socket with a 20.10 server', async () => {
    expect(d.host).toMatch(/^unix:\/\/\/tmp\/nvd-/);
    expect(d.host.length).toBeLessThan(108);
    const version = await d.dockerOk(['version', '--format', '{{.Server.Version}}']);
    expect(version).toMatch(/^20\.10\./);
  });

  test('has busybox:local imported and runs it offline', async () => {
    const r = await d.runContainer(['--rm', BUSYBOX_IMAGE, 'sh', '-c', 'echo hello; ls /sys/class/net']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('hello');
    // --network none: only the loopback interface exists
    expect(r.stdout.split('\n').filter(Boolean).slice(1)).toEqual(['lo']);
  });

  test('a built-in local volume carries a file from one container to the next', async () => {
    const sanity = own('sanity');
    await d.dockerOk(['volume', 'create', '-d', 'local', sanity]);
    const w = await d.runContainer([
      '--rm', '-v', `${sanity}:/data`, BUSYBOX_IMAGE, 'sh', '-c',
      'dd if=/dev/urandom of=/data/f bs=1k count=256 2>/dev/null && md5sum /data/f',
    ]);
    expect(w.code).toBe(0);
    const r = await d.runContainer(['--rm', '-v', `${sanity}:/data`, BUSYBOX_IMAGE, 'md5sum', '/data/f']);
    expect(r.code).toBe(0);
    expect(r.stdout.split(' ')[0]).toMatch(/^[0-9a-f]{32}$/);
    expect(r.stdout.split(' ')[0]).toBe(w.stdout.split(' ')[0]);
    await d.dockerOk(['volume', 'rm', sanity]);
  });

  test('keeps its volumes across a restart', async () => {
    const keeper = own('keeper');
    await d.dockerOk(['volume', 'create', '-d', 'local', keeper]);
    await d.restart();
    const names = (await d.dockerOk(['volume', 'ls', '-q', '--filter', 'driver=local'])).split('\n');
    expect(names).toContain(keeper);
  });

  test('stop() leaves no mounts, processes or folders behind', async () => {
    const other = await startDockerd({ noImage: true });
    const root = other.dataRoot.replace(/\/data$/, '');
    expect(pidsMentioning(root).length).toBeGreaterThan(0); // dockerd and its containerd
    await other.stop();
    expect(pidsMentioning(root)).toEqual([]);
    expect(mountsUnder(root)).toEqual([]);
    expect(fs.existsSync(root)).toBe(false);
    await other.stop(); // idempotent
  });
});
