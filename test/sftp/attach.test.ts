/** sshfs attachments: one detached sshfs per volume, found again after a restart, dead ones noticed. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isAlive, sleep, waitFor } from '../harness/dockerd';
import { startSshd, Sshd } from '../harness/sshd';
import { BackendUnderTest, makeBackend } from './support/backend';
import { sshfsPidsFor } from './support/sshfs';

let sshd: Sshd;
const made: BackendUnderTest[] = [];
let root: string;

function fresh(extra: Record<string, unknown> = {}, opts: { workDir?: string } = {}): BackendUnderTest {
  const b = makeBackend(sshd, extra, opts);
  made.push(b);
  return b;
}

function fsTypeAt(mountpoint: string): string | undefined {
  const r = spawnSync('findmnt', ['-n', '-o', 'FSTYPE', '--mountpoint', mountpoint], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

beforeAll(async () => {
  sshd = await startSshd();
  root = path.join(sshd.root, 'volumes');
});

afterAll(async () => {
  for (const b of made) await b.cleanup();
  await sshd?.cleanup();
});

describe('sftp backend attachments through sshfs', () => {
  test('attach() mounts the volume folder with sshfs; files written there are on the server', async () => {
    const { backend: b, workDir } = fresh();
    await b.open();
    await b.makeFolder('att', true);
    const mp = await b.attach('att');
    expect(mp).toBe(path.join(workDir, 'att'));
    expect(fsTypeAt(mp)).toBe('fuse.sshfs');
    fs.writeFileSync(path.join(mp, 'data', 'hello.txt'), 'hello over sshfs');
    expect(fs.readFileSync(path.join(root, 'att', 'data', 'hello.txt'), 'utf8')).toBe('hello over sshfs');
    expect(await b.health('att')).toBe('attached');
    await b.detach('att');
    expect(fsTypeAt(mp)).toBeUndefined();
    expect(await b.health('att')).toBe('detached');
  });

  test('sshfs runs as its own process and never carries a secret in its argv', async () => {
    const pb = fresh({ privateKeyFile: undefined, password: sshd.password, knownHostsFile: undefined, hostKeyFingerprint: sshd.hostKeyFingerprint });
    await pb.backend.open();
    await pb.backend.makeFolder('pwatt', true);
    const mp = await pb.backend.attach('pwatt');
    const pids = sshfsPidsFor(mp);
    expect(pids).toHaveLength(1);
    const argv = fs.readFileSync(`/proc/${pids[0]}/cmdline`, 'utf8');
    expect(argv).not.toContain(sshd.password);
    expect(argv).toContain('StrictHostKeyChecking=yes');
    // A fingerprint-only backend checks sshfs against a known_hosts it wrote from the verified key.
    const known = /UserKnownHostsFile=([^,\0]+)/.exec(argv)?.[1] as string;
    expect(known.startsWith(pb.workDir)).toBe(true);
    expect(fs.readFileSync(known, 'utf8')).toContain(`[127.0.0.1]:${sshd.port} ssh-ed25519 `);
    // Not a child of this process: it survives whoever started it.
    const ppid = Number(fs.readFileSync(`/proc/${pids[0]}/stat`, 'utf8').split(') ')[1].split(' ')[1]);
    expect(ppid).not.toBe(process.pid);
    fs.writeFileSync(path.join(mp, 'data', 'f'), 'x');
    expect(fs.readFileSync(path.join(root, 'pwatt', 'data', 'f'), 'utf8')).toBe('x');
    await pb.backend.detach('pwatt');
    expect(sshfsPidsFor(mp)).toEqual([]);
  });

  test('attach() is idempotent, and a new backend instance on the same workDir (a restarted daemon) reuses the live sshfs', async () => {
    const first = fresh();
    await first.backend.open();
    await first.backend.makeFolder('reuse', true);
    const mp = await first.backend.attach('reuse');
    const [pid] = sshfsPidsFor(mp);
    expect(await first.backend.attach('reuse')).toBe(mp);
    expect(sshfsPidsFor(mp)).toEqual([pid]);
    await first.backend.close();
    const second = fresh({}, { workDir: first.workDir });
    await second.backend.open();
    expect(await second.backend.health('reuse')).toBe('attached');
    expect(await second.backend.attach('reuse')).toBe(mp);
    expect(sshfsPidsFor(mp)).toEqual([pid]);
    await second.backend.detach('reuse');
  });

  test('health() is dead when the sshfs process is gone, and attach() mounts it again', async () => {
    const { backend: b } = fresh();
    await b.open();
    await b.makeFolder('dies', true);
    const mp = await b.attach('dies');
    fs.writeFileSync(path.join(mp, 'data', 'before'), 'kept');
    const [pid] = sshfsPidsFor(mp);
    process.kill(pid, 'SIGKILL');
    await waitFor('sshfs to die', () => !isAlive(pid), 5000, 20);
    expect(() => fs.statSync(path.join(mp, 'data'))).toThrow(/ENOTCONN/);
    expect(await b.health('dies')).toBe('dead');
    expect(await b.attach('dies')).toBe(mp);
    expect(await b.health('dies')).toBe('attached');
    expect(fs.readFileSync(path.join(mp, 'data', 'before'), 'utf8')).toBe('kept');
    await b.detach('dies');
  });

  test('an image volume (no data/) is mounted without reconnect, so after a lost server it no longer counts as attached and attach() mounts it again', async () => {
    const { backend: b } = fresh();
    await b.open();
    await b.makeFolder('img', false);
    const mp = await b.attach('img');
    expect(fs.readFileSync(`/proc/${sshfsPidsFor(mp)[0]}/cmdline`, 'utf8')).not.toMatch(/\breconnect\b/);
    await sshd.kill();
    try {
      // sshfs without reconnect exits and unmounts itself: the attachment is dead or gone, never 'attached'.
      await waitFor('the image attachment to stop being attached', async () => ['dead', 'detached'].includes(await b.health('img')), 15_000, 200);
    } finally {
      await sshd.restart();
    }
    expect(await b.attach('img')).toBe(mp);
    expect(await b.health('img')).toBe('attached');
    await b.detach('img');
  });

  test('a directory volume reconnects by itself after sshd restarts', async () => {
    const { backend: b } = fresh();
    await b.open();
    await b.makeFolder('recon', true);
    const mp = await b.attach('recon');
    const [pid] = sshfsPidsFor(mp);
    await sshd.kill();
    await sleep(500);
    await sshd.restart();
    fs.writeFileSync(path.join(mp, 'data', 'after'), 'still here');
    expect(fs.readFileSync(path.join(root, 'recon', 'data', 'after'), 'utf8')).toBe('still here');
    expect(sshfsPidsFor(mp)).toEqual([pid]);
    expect(await b.health('recon')).toBe('attached');
    await b.detach('recon');
  });

  test('attach() of a missing volume folder fails with NOT_FOUND naming the backend and the volume', async () => {
    const { backend: b } = fresh();
    await b.open();
    await expect(b.attach('never-made')).rejects.toMatchObject({ code: 'NOT_FOUND', message: expect.stringMatching(/backend srv: cannot attach volume never-made/) });
  });

  test('detach() succeeds when nothing is attached', async () => {
    const { backend: b } = fresh();
    await b.open();
    await expect(b.detach('nothing')).resolves.toBeUndefined();
  });
});
