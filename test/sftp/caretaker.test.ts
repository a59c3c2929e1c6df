/**
 * Two netvol daemons (two hosts' ids) on one real sshd. While host A's daemon is stopped, a
 * caretaker keeps A's heartbeat: A's attachments still count for host B, and A's image lease holds.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
// Zombie-aware: a caretaker outlives the daemon that started it, so nobody may reap it here.
import { isAlive } from '../../src/system';
import { Netvol, startNetvol } from '../harness/netvol';
import { sftpOptions, Sshd, startSshd } from '../harness/sshd';

jest.setTimeout(120_000);

const LEASE = 5;
let sshd: Sshd;
let a: Netvol;
let b: Netvol;

const backendFor = (s: Sshd) => ({ remote: { type: 'sftp', ...sftpOptions(s), leaseSeconds: LEASE } });
const hostFile = (host: string) => path.join(sshd.root, 'volumes', '.netvol-hosts', `${host}.json`);
const readBeat = (host: string) => JSON.parse(fs.readFileSync(hostFile(host), 'utf8')) as { beat: number; incarnation: string; volumes: Record<string, string> };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  sshd = await startSshd();
  a = await startNetvol({ backends: backendFor(sshd), extraConfig: { hostId: 'care-a' } });
  b = await startNetvol({ backends: backendFor(sshd), extraConfig: { hostId: 'care-b' } });
}, 120_000);

afterAll(async () => {
  await a?.cleanup();
  await b?.cleanup();
  await sshd?.cleanup();
}, 120_000);

const ok = async (n: Netvol, method: string, body: unknown) => {
  const r = await n.request(method, body, { timeoutMs: 60_000 });
  if (r.status !== 200 || (r.json?.Err ?? '') !== '') throw new Error(`${method} failed: ${r.raw}`);
  return r.json;
};

test('while host A\'s daemon is stopped, a caretaker keeps its heartbeat: B cannot take A\'s image nor remove A\'s folder volume; a restarted A ends the caretaker', async () => {
  await ok(a, 'VolumeDriver.Create', { Name: 'careimg', Opts: { size: '32M' } });
  await ok(a, 'VolumeDriver.Create', { Name: 'caredir', Opts: {} });
  await ok(a, 'VolumeDriver.Mount', { Name: 'careimg', ID: 'ctr-a' });
  await ok(a, 'VolumeDriver.Mount', { Name: 'caredir', ID: 'ctr-a' });

  await a.stop();
  const pidFile = path.join(a.stateDir, 'caretaker-remote.pid');
  expect(fs.existsSync(pidFile)).toBe(true);
  const caretaker = Number(fs.readFileSync(pidFile, 'utf8').trim());
  expect(isAlive(caretaker)).toBe(true);

  // Two whole leases later the heartbeat still moves and still lists both volumes.
  const first = readBeat('care-a');
  await sleep(2 * LEASE * 1000);
  const later = readBeat('care-a');
  expect(later.incarnation === first.incarnation && later.beat === first.beat).toBe(false);
  expect(later.volumes).toEqual({ careimg: 'exclusive', caredir: 'shared' });

  const mount = await b.request('VolumeDriver.Mount', { Name: 'careimg', ID: 'ctr-b' }, { timeoutMs: 60_000 });
  expect(mount.json.Err).toContain('volume careimg is attached on host care-a');
  const rm = await b.request('VolumeDriver.Remove', { Name: 'caredir' }, { timeoutMs: 60_000 });
  expect(rm.json.Err).toContain('volume caredir is in use on host care-a');
  expect(fs.existsSync(path.join(sshd.root, 'volumes', 'caredir', 'data'))).toBe(true);

  await a.restart();
  expect(isAlive(caretaker)).toBe(false);
  expect(fs.existsSync(pidFile)).toBe(false);
  expect(readBeat('care-a').volumes).toEqual({ careimg: 'exclusive', caredir: 'shared' });

  await ok(a, 'VolumeDriver.Unmount', { Name: 'careimg', ID: 'ctr-a' });
  await ok(a, 'VolumeDriver.Unmount', { Name: 'caredir', ID: 'ctr-a' });
  await ok(b, 'VolumeDriver.Mount', { Name: 'careimg', ID: 'ctr-b' });
  await ok(b, 'VolumeDriver.Unmount', { Name: 'careimg', ID: 'ctr-b' });
  await ok(b, 'VolumeDriver.Remove', { Name: 'caredir' });
  await ok(b, 'VolumeDriver.Remove', { Name: 'careimg' });
});

test('a daemon stopped with nothing attached on a shared backend leaves no caretaker behind', async () => {
  await a.stop();
  expect(fs.existsSync(path.join(a.stateDir, 'caretaker-remote.pid'))).toBe(false);
  await a.restart();
});

test('netvolctl hosts shows every host on the backend, whether its heartbeat moves, and what it has attached', async () => {
  await ok(a, 'VolumeDriver.Create', { Name: 'ctlview', Opts: { size: '32M' } });
  await ok(a, 'VolumeDriver.Mount', { Name: 'ctlview', ID: 'ctr-a' });
  try {
    const { execFile } = await import('node:child_process');
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, [path.join(__dirname, '..', '..', 'dist', 'cli', 'index.js'), 'hosts', '-c', a.configPath, '--wait', '2', '--json'], (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
      ),
    );
    const rows = (JSON.parse(out) as { hosts: Array<{ backend: string; host: string; beating: boolean; volumes: Record<string, string> }> }).hosts;
    expect(rows).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ backend: 'remote', host: 'care-a', beating: true, volumes: { ctlview: 'exclusive' } }),
        expect.objectContaining({ backend: 'remote', host: 'care-b', beating: true, volumes: {} }),
      ]),
    );
  } finally {
    await ok(a, 'VolumeDriver.Unmount', { Name: 'ctlview', ID: 'ctr-a' });
    await ok(a, 'VolumeDriver.Remove', { Name: 'ctlview' });
  }
});
