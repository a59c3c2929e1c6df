/** Bad conditions: each a clear, typed Err naming the backend, within the bounded time, with no secret. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { sftpBackendType } from '../../src/backends/sftp';
import { buildConfig } from '../../src/config';
import { freePort, startSshd, Sshd } from '../harness/sshd';
import { BackendUnderTest, makeBackend, rejection, sftpOptions } from './support/backend';

let sshd: Sshd;
const opened: BackendUnderTest[] = [];

function backend(extra: Record<string, unknown> = {}, opts: { timeoutMs?: number } = {}): BackendUnderTest {
  const b = makeBackend(sshd, extra, opts);
  opened.push(b);
  return b;
}

beforeAll(async () => {
  sshd = await startSshd();
});

afterAll(async () => {
  for (const b of opened) await b.cleanup();
  await sshd?.cleanup();
});

describe('sftp backend configuration', () => {
  test('a backend with neither knownHostsFile nor hostKeyFingerprint is refused at config load', () => {
    const opts = sftpOptions(sshd, { knownHostsFile: undefined });
    expect(() => buildConfig({ backends: { remote: { type: 'sftp', ...opts } } }, 'test.yaml')).toThrow(
      /backends\.remote.*host key must be verified: set knownHostsFile or hostKeyFingerprint/,
    );
  });

  test('insecureSkipHostKeyCheck: true is accepted, warns when the backend is built at start, and connects', async () => {
    const b = backend({ knownHostsFile: undefined, insecureSkipHostKeyCheck: true });
    await b.backend.open();
    expect(b.logs.some((l) => /"level":"warn"/.test(l) && /insecureSkipHostKeyCheck/.test(l))).toBe(true);
  });

  test('an unknown option in the backend block is refused with its name', () => {
    expect(() => buildConfig({ backends: { remote: { type: 'sftp', ...sftpOptions(sshd), colour: 'blue' } } }, 'test.yaml')).toThrow(/colour/);
  });

  test('a block with two credentials is refused', () => {
    expect(sftpBackendType.optionsSchema.safeParse(sftpOptions(sshd, { password: 'x-secret-x' })).success).toBe(false);
  });

  test('the configured password is registered as a secret at config load and never appears in the error text', () => {
    const opts = sftpOptions(sshd, { privateKeyFile: undefined, password: 'hunter2-unique-pw', knownHostsFile: undefined });
    let text = '';
    try {
      buildConfig({ backends: { remote: { type: 'sftp', ...opts } } }, 'test.yaml');
    } catch (err) {
      text = (err as Error).message;
    }
    expect(text).toMatch(/host key must be verified/);
    expect(text).not.toContain('hunter2-unique-pw');
  });
});

describe('sftp backend host key verification', () => {
  test('a wrong hostKeyFingerprint is refused with BACKEND_AUTH naming the backend, the expected and the presented fingerprint', async () => {
    const wrong = 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
    const b = backend({ knownHostsFile: undefined, hostKeyFingerprint: wrong });
    const err = await rejection(b.backend.open());
    expect(err.code).toBe('BACKEND_AUTH');
    expect(err.message).toContain('backend srv');
    expect(err.message).toContain(wrong);
    expect(err.message).toContain(sshd.hostKeyFingerprint);
  });

  test('the right hostKeyFingerprint is accepted', async () => {
    const b = backend({ knownHostsFile: undefined, hostKeyFingerprint: sshd.hostKeyFingerprint });
    await b.backend.open();
    expect(await b.backend.listFolders()).toEqual(expect.any(Array));
  });

  test('a known_hosts file with another key for this server is refused with both fingerprints', async () => {
    const other = path.join(sshd.dir, 'other_key');
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
    const pub = fs.readFileSync(`${other}.pub`, 'utf8').split(/\s+/);
    const known = path.join(sshd.dir, 'known_hosts_wrong');
    fs.writeFileSync(known, `[127.0.0.1]:${sshd.port} ${pub[0]} ${pub[1]}\n`);
    const otherFp = spawnSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${other}.pub`], { encoding: 'utf8' }).stdout.split(/\s+/)[1];
    const err = await rejection(backend({ knownHostsFile: known }).backend.open());
    expect(err.code).toBe('BACKEND_AUTH');
    expect(err.message).toContain('backend srv');
    expect(err.message).toContain(otherFp);
    expect(err.message).toContain(sshd.hostKeyFingerprint);
  });

  test('a hashed known_hosts entry (ssh-keygen -H) is understood', async () => {
    const hashed = path.join(sshd.dir, 'known_hosts_hashed');
    fs.copyFileSync(sshd.knownHostsFile, hashed);
    spawnSync('ssh-keygen', ['-H', '-f', hashed]);
    expect(fs.readFileSync(hashed, 'utf8')).toMatch(/^\|1\|/);
    const b = backend({ knownHostsFile: hashed });
    await b.backend.open();
    expect(await b.backend.listFolders()).toEqual(expect.any(Array));
  });

  test('a known_hosts file that does not list this server is refused at open', async () => {
    const empty = path.join(sshd.dir, 'known_hosts_empty');
    fs.writeFileSync(empty, '# nothing\n');
    const err = await rejection(backend({ knownHostsFile: empty }).backend.open());
    expect(err.code).toBe('BACKEND_AUTH');
    expect(err.message).toMatch(/lists no host key for \[127\.0\.0\.1\]:\d+/);
  });
});

describe('sftp backend connection failures', () => {
  test('connection refused gives BACKEND_UNAVAILABLE naming the backend, at once', async () => {
    const port = await freePort();
    const started = Date.now();
    const err = await rejection(backend({ port, knownHostsFile: undefined, hostKeyFingerprint: sshd.hostKeyFingerprint }, { timeoutMs: 4000 }).backend.open());
    expect(Date.now() - started).toBeLessThan(4000);
    expect(err.code).toBe('BACKEND_UNAVAILABLE');
    expect(err.message).toContain('backend srv');
    expect(err.message).toMatch(/connection refused/);
  });

  test('a port that accepts but never speaks SSH gives BACKEND_UNAVAILABLE within the timeout', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      const started = Date.now();
      const err = await rejection(backend({ port, knownHostsFile: undefined, hostKeyFingerprint: sshd.hostKeyFingerprint }, { timeoutMs: 3000 }).backend.open());
      const elapsed = Date.now() - started;
      expect(elapsed).toBeGreaterThanOrEqual(2500);
      expect(elapsed).toBeLessThan(5000);
      expect(err.code).toBe('BACKEND_UNAVAILABLE');
      expect(err.message).toContain('backend srv');
      expect(err.message).toMatch(/3 s/);
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });

  test('a call on an open backend whose server stops answering fails within the timeout, and works again once it answers', async () => {
    const b = backend({}, { timeoutMs: 3000 });
    await b.backend.open();
    const pid = sshd.pid as number;
    // Freeze the server and its sessions: the TCP connection stays up but nothing answers.
    const frozen = [pid, ...childrenOf(pid)];
    for (const p of frozen) process.kill(p, 'SIGSTOP');
    try {
      const started = Date.now();
      const err = await rejection(b.backend.listFolders());
      expect(Date.now() - started).toBeLessThan(5000);
      expect(err.code).toBe('BACKEND_UNAVAILABLE');
      expect(err.message).toContain('backend srv');
    } finally {
      for (const p of frozen) process.kill(p, 'SIGCONT');
    }
    expect(await b.backend.listFolders()).toEqual(expect.any(Array));
  });

  test('a wrong password gives BACKEND_AUTH naming the user and not the password', async () => {
    const err = await rejection(backend({ privateKeyFile: undefined, password: 'wrong-password-123' }).backend.open());
    expect(err.code).toBe('BACKEND_AUTH');
    expect(err.message).toContain('backend srv');
    expect(err.message).toContain('user root');
    expect(err.message).not.toContain('wrong-password-123');
  });

  test('the right password, from passwordFile, opens the backend', async () => {
    const file = path.join(sshd.dir, 'password');
    fs.writeFileSync(file, `${sshd.password}\n`, { mode: 0o600 });
    const b = backend({ privateKeyFile: undefined, passwordFile: file });
    await b.backend.open();
    expect(await b.backend.makeFolder('pw-vol', true)).toBe(true);
  });

  test('a key the server does not accept gives BACKEND_AUTH', async () => {
    const other = path.join(sshd.dir, 'stranger_key');
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
    const err = await rejection(backend({ privateKeyFile: other }).backend.open());
    expect(err.code).toBe('BACKEND_AUTH');
    expect(err.message).toMatch(/refused the credentials of user root/);
  });
});

describe('sftp backend server-side refusals', () => {
  test('permission denied on the configured path gives PERMISSION naming the backend and the path', async () => {
    fs.mkdirSync(path.join(sshd.root, 'locked'), { mode: 0o755 });
    const lockedPath = path.join(sshd.root, 'locked', 'volumes');
    const err = await rejection(backend({ username: 'nobody', path: lockedPath }).backend.open());
    expect(err.code).toBe('PERMISSION');
    expect(err.message).toContain('backend srv');
    expect(err.message).toContain(lockedPath);
  });

  test('a write to a read-only folder gives PERMISSION', async () => {
    const ro = path.join(sshd.root, 'ro');
    fs.mkdirSync(ro, { mode: 0o755 });
    fs.mkdirSync(path.join(ro, 'vol'), { mode: 0o755 });
    fs.chmodSync(ro, 0o777);
    const b = backend({ username: 'nobody', path: ro });
    await b.backend.open();
    const err = await rejection(b.backend.writeFile('vol', 'volume.json', Buffer.from('{}')));
    expect(err.code).toBe('PERMISSION');
    expect(err.message).toMatch(/backend srv: cannot write volume\.json of volume vol/);
  });

  test('a write to a full server disk gives NO_SPACE', async () => {
    const small = path.join(sshd.root, 'small');
    fs.mkdirSync(small);
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small]).status).toBe(0);
    try {
      const b = backend({ path: small });
      await b.backend.open();
      await b.backend.makeFolder('full', false);
      const err = await rejection(b.backend.writeFile('full', 'big', Buffer.alloc(2 * 1024 * 1024, 1)));
      expect(err.code).toBe('NO_SPACE');
      expect(err.message).toMatch(/backend srv: cannot write big of volume full: the server's disk is full/);
      expect(fs.readdirSync(path.join(small, 'full'))).toEqual([]);
      await b.backend.close();
    } finally {
      spawnSync('umount', ['-l', small]);
    }
  });
});

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  const all = fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift() as number;
    for (const e of all) {
      try {
        const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
        if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === p) {
          out.push(Number(e));
          queue.push(Number(e));
        }
      } catch {
        /* gone */
      }
    }
  }
  return out;
}
