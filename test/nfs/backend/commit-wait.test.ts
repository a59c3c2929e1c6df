/**
 * A detach gives a live FUSE server the time it needs to commit what it holds after its unmount
 * (its own limit is 30 s): one killed sooner loses writes a container made.
 *
 * What the FUSE server alone holds is data the NFS server has not taken yet. Two things shape how
 * this test gets there:
 * - The data reaches the FUSE server through a shared mapping, without msync: munmap hands the
 *   dirty pages over and returns once the FUSE server has them. write(2) then close(2) cannot: close
 *   waits in FLUSH until the NFS server acknowledged every WRITE, and acknowledged data is already
 *   in the export's file (only not yet committed), so a killed server loses nothing one can see.
 * - The NFS server takes no WRITE or COMMIT until 15 s after the unmount, but answers every other
 *   call: a proxy in front of its NFS port holds those two procedures back, and forgets what it
 *   held for a connection that closed (the server never got it). Pausing the whole server cannot
 *   show the loss: the detach's health check (statfs) and umount(8)'s own stat of the mountpoint
 *   wait for it, so the umount times out after 8 s before any wait for the FUSE server starts.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { userspacePids } from '../../../src/backends/nfs/mounters';
import { GaneshaServer, startGanesha } from '../../harness/ganesha';
import { patternBytes } from '../fixture';
import { BackendUnderTest, makeBackend } from './support/backend';

/** Enough for several WRITEs; few enough that the FUSE server takes them at once (8 in flight per file). */
const SIZE = 4 * 1024 * 1024;
/**
 * How long after the unmount the NFS server takes no WRITE: past the old wait (min(timeoutMs,
 * 10 s) before SIGTERM, SIGKILL 2 s later: 10 s with this backend's 8 s, 12 s at most), within the
 * FUSE server's own 30 s.
 */
const WRITES_HELD_AFTER_UNMOUNT_MS = 15_000;

const NFS_PROGRAM = 100003;
const NFSPROC3_WRITE = 7;
const NFSPROC3_COMMIT = 21;

/** A TCP proxy to ganesha's NFS port that can hold WRITE and COMMIT calls back and pass the rest. */
interface WriteHoldingProxy {
  port: number;
  hold(): void;
  /** Sends what it held, in order, to the connections still open; holds nothing more. */
  release(): void;
  /** Calls held and then forgotten because their connection closed. */
  dropped: number;
  close(): Promise<void>;
}

async function startWriteHoldingProxy(targetPort: number): Promise<WriteHoldingProxy> {
  let holding = false;
  const links = new Set<{ client: net.Socket; upstream: net.Socket; held: Buffer[] }>();
  const proxy: WriteHoldingProxy = {
    port: 0,
    dropped: 0,
    hold: () => void (holding = true),
    release() {
      holding = false;
      for (const l of links) for (const record of l.held.splice(0)) l.upstream.write(record);
    },
    async close() {
      for (const l of links) l.client.destroy();
      await new Promise((r) => server.close(r));
    },
  };
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: targetPort });
    const link = { client, upstream, held: [] as Buffer[] };
    links.add(link);
    // Client to server, one RPC record (RFC 5531 record marking) at a time.
    let pending = Buffer.alloc(0);
    let fragments: Buffer[] = [];
    client.on('data', (d: Buffer) => {
      pending = Buffer.concat([pending, d]);
      while (pending.length >= 4) {
        const mark = pending.readUInt32BE(0);
        const end = 4 + (mark & 0x7fffffff);
        if (pending.length < end) break;
        fragments.push(pending.subarray(0, end));
        pending = pending.subarray(end);
        if ((mark & 0x80000000) === 0) continue;
        const record = Buffer.concat(fragments);
        fragments = [];
        const call = record.length >= 28 && record.readUInt32BE(8) === 0;
        const proc = call && record.readUInt32BE(16) === NFS_PROGRAM ? record.readUInt32BE(24) : -1;
        if (holding && (proc === NFSPROC3_WRITE || proc === NFSPROC3_COMMIT)) link.held.push(record);
        else upstream.write(record);
      }
    });
    upstream.on('data', (d) => client.write(d));
    const end = () => {
      if (!links.delete(link)) return;
      proxy.dropped += link.held.length;
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      s.on('error', end);
      s.on('close', end);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  proxy.port = (server.address() as net.AddressInfo).port;
  return proxy;
}

/**
 * Maps `file` shared (through libc: Python's mmap keeps a second descriptor, whose close would
 * wait in FLUSH), closes the descriptor while nothing is dirty, reads every page in, says "mapped";
 * on a line from stdin copies `new` over the mapping and unmaps it, says "unmapped".
 */
const MAPPER = `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
new = open(sys.argv[2], 'rb').read()
fd = os.open(sys.argv[1], os.O_RDWR)
addr = libc.mmap(None, len(new), 3, 1, fd, 0)  # PROT_READ | PROT_WRITE, MAP_SHARED
if addr is None or addr == ctypes.c_void_p(-1).value:
    raise OSError(ctypes.get_errno(), 'mmap')
os.close(fd)
ctypes.string_at(addr, len(new))
print('mapped', flush=True)
sys.stdin.readline()
ctypes.memmove(addr, new, len(new))
if libc.munmap(addr, len(new)) != 0:
    raise OSError(ctypes.get_errno(), 'munmap')
print('unmapped', flush=True)
`;

let g: GaneshaServer;
let proxy: WriteHoldingProxy;
let b: BackendUnderTest;
let local: string;
let python: string;

beforeAll(async () => {
  g = await startGanesha();
  proxy = await startWriteHoldingProxy(g.nfsPort);
  b = makeBackend(g, { port: proxy.port });
  await b.backend.open();
  local = fs.mkdtempSync(path.join(os.tmpdir(), 'nvcommit-'));
  fs.writeFileSync(path.join(local, 'mapper.py'), MAPPER);
  // The interpreter itself, not a version manager's shim.
  python = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
});

afterAll(async () => {
  proxy?.release();
  // A FUSE server left behind is ended first: the cleanup's synchronous umount must not reach the
  // proxy in this process through it.
  if (b) for (const pid of await userspacePids(path.join(b.workDir, 'held'))) process.kill(pid, 'SIGKILL');
  await b?.cleanup();
  await proxy?.close();
  await g?.stop();
  if (local) fs.rmSync(local, { recursive: true, force: true });
});

function mounted(mp: string): boolean {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === mp);
}

/** Resolves when the child prints `line`; rejects with its stderr if it exits first. */
function said(child: ChildProcess, line: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr?.on('data', (d) => (err += d));
    const onData = (d: Buffer) => {
      out += d;
      if (out.split('\n').includes(line)) {
        child.stdout?.off('data', onData);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`the mapper exited with ${code} before saying ${line}: ${err}`)));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('detach() lets a live FUSE server commit data it alone holds when its NFS server takes WRITEs only 15 s after the unmount, and it exits by itself', async () => {
  const before = patternBytes(SIZE, 1);
  const after = patternBytes(SIZE, 2);
  const onExport = path.join(g.exportDir, 'volumes', 'held', 'data', 'mapped');
  const content = () => {
    const now = fs.readFileSync(onExport);
    return now.equals(after) ? 'the new content' : now.equals(before) ? 'the old content' : 'a mix of both';
  };

  await b.backend.makeFolder('held', true);
  const mp = await b.backend.attach('held');
  const file = path.join(mp, 'data', 'mapped');
  // Asynchronously, as every access to the mount here: a synchronous one would block the proxy it needs.
  const fh = await fs.promises.open(file, 'w');
  await fh.write(before);
  await fh.sync();
  await fh.close();
  fs.writeFileSync(path.join(local, 'new'), after);
  const [server] = await userspacePids(mp);

  const mapper = spawn(python, [path.join(local, 'mapper.py'), file, path.join(local, 'new')], { stdio: ['pipe', 'pipe', 'pipe'] });
  let detaching: Promise<unknown> | undefined;
  try {
    await said(mapper, 'mapped');
    proxy.hold();
    mapper.stdin?.write('go\n');
    await said(mapper, 'unmapped');
    // The premise: the new data is in the FUSE server only.
    expect(content()).toBe('the old content');

    const started = Date.now();
    detaching = b.backend.detach('held').then(
      () => undefined,
      (err: Error) => err,
    );
    while (mounted(mp) && Date.now() - started < 10_000) await sleep(20);
    expect(mounted(mp)).toBe(false);
    await sleep(WRITES_HELD_AFTER_UNMOUNT_MS);
  } finally {
    mapper.kill('SIGKILL');
    proxy.release();
  }
  expect(await detaching).toBeUndefined();
  expect(content()).toBe('the new content');
  expect(await userspacePids(mp)).toEqual([]);
  // It stopped by itself once its data was committed: no SIGTERM came.
  const lines = fs
    .readFileSync(path.join(b.workDir, '.logs', 'held.log'), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l))
    .filter((l) => l.pid === server);
  expect(lines.filter((l) => l.msg === 'shutting down').map((l) => l.why)).toEqual(['the mount is gone']);
  expect(lines.some((l) => l.event === 'stopped')).toBe(true);
}, 60_000);
