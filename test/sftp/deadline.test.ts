/**
 * The request's deadline reaches the sftp backend: a control request stuck on a server that stopped
 * answering is given up at the abort and its connection reset; an sshfs that cannot get through is
 * killed and nothing of the attachment is left.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sshfsPids } from '../../src/backends/sftp/sshfs';
import { NetvolError } from '../../src/errors';
import { findMount, isAlive } from '../../src/system';
import { startSshd, Sshd } from '../harness/sshd';
import { BackendUnderTest, makeBackend, rejection } from './support/backend';

let sshd: Sshd;
const opened: BackendUnderTest[] = [];

beforeAll(async () => {
  sshd = await startSshd();
});

afterAll(async () => {
  for (const b of opened) await b.cleanup();
  await sshd?.cleanup();
});

/** Descendants of `pid` (the sshd session processes this run's sshd started), from /proc/<pid>/status. */
function descendantsOf(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const e of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      parent.set(Number(e), Number(/^PPid:\s*(\d+)/m.exec(fs.readFileSync(`/proc/${e}/status`, 'utf8'))?.[1] ?? 0));
    } catch {
      /* gone */
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift() as number;
    for (const [child, pp] of parent) if (pp === p) out.push(child), queue.push(child);
  }
  return out;
}

function abortAfter(ms: number): AbortSignal {
  const c = new AbortController();
  setTimeout(() => c.abort(new NetvolError('TIMEOUT', 'volume dl: mount did not finish within 1 s')), ms);
  return c.signal;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('sftp backend under a request deadline', () => {
  test('a control request stuck on a frozen sshd session ends at the abort, long before the backend timeout, and the next call reconnects', async () => {
    const b = makeBackend(sshd, {}, { timeoutMs: 20_000 });
    opened.push(b);
    await b.backend.open();
    const frozen = [sshd.pid as number, ...descendantsOf(sshd.pid as number)];
    for (const p of frozen) process.kill(p, 'SIGSTOP');
    let err: NetvolError;
    const started = Date.now();
    try {
      err = await rejection(b.backend.listFolders(abortAfter(500)));
    } finally {
      for (const p of frozen) process.kill(p, 'SIGCONT');
    }
    expect(Date.now() - started).toBeLessThan(2000);
    expect(err.code).toBe('TIMEOUT');
    expect(err.message).toMatch(/^backend srv: cannot list .*: stopped at the request's deadline \(volume dl: mount did not finish within 1 s\); the connection to 127\.0\.0\.1:\d+ was reset$/);
    expect(await b.backend.listFolders()).toEqual(expect.any(Array));
  });

  test('an sshfs whose server does not answer is killed at the abort, and no mount or helper of the volume is left', async () => {
    const b = makeBackend(sshd, {}, { timeoutMs: 20_000 });
    opened.push(b);
    await b.backend.open();
    expect(await b.backend.makeFolder('dl', true)).toBe(true);
    const mp = path.join(b.workDir, 'dl');
    // Freeze only the listener: the control connection (a session process) still answers, a new
    // connection (sshfs's ssh) is accepted by the kernel and then hears nothing.
    const listener = sshd.pid as number;
    process.kill(listener, 'SIGSTOP');
    let pids: number[] = [];
    let err: NetvolError;
    try {
      const controller = new AbortController();
      const attaching = rejection(b.backend.attach('dl', controller.signal));
      const until = Date.now() + 10_000;
      while (pids.length === 0 && Date.now() < until) {
        await sleep(100);
        pids = await sshfsPids(mp);
      }
      expect(pids.length).toBeGreaterThan(0);
      controller.abort(new NetvolError('TIMEOUT', 'volume dl: mount did not finish within 1 s'));
      err = await attaching;
    } finally {
      process.kill(listener, 'SIGCONT');
    }
    expect(err.code).toBe('TIMEOUT');
    expect(err.message).toMatch(/^backend srv: cannot attach volume dl from 127\.0\.0\.1:\d+: sshfs \(pid \d+\) was killed: stopped at the request's deadline/);
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
    expect(await sshfsPids(mp)).toEqual([]);
    expect(await findMount(mp)).toBeUndefined();
    // The server answers again: the volume attaches normally.
    expect(await b.backend.attach('dl')).toBe(mp);
    await b.backend.detach('dl');
  });
});
