/**
 * A pausable TCP proxy in the test's own process, between a helper (sshfs, a FUSE NFS server) and
 * its server: it can stop reading (a stalled network: bytes pile up in the client's send queue) and
 * resume; what /proc says about its connections; and the small process, mount and descriptor
 * helpers the fence tests share.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { promisify } from 'node:util';

export interface Link {
  clientPort: number;
  client: net.Socket;
  /** Bytes read from the client so far. */
  fromClient: number;
  /** How the client side ended: a clean FIN, a reset, or not yet. */
  ended: 'open' | 'end' | 'reset';
  closed: Promise<void>;
}

export interface Proxy {
  port: number;
  links: Link[];
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

export async function startProxy(targetPort: number): Promise<Proxy> {
  const links: Link[] = [];
  let paused = false;
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: targetPort });
    let done!: () => void;
    const link: Link = { clientPort: client.remotePort as number, client, fromClient: 0, ended: 'open', closed: new Promise((r) => (done = r)) };
    links.push(link);
    if (paused) client.pause();
    client.on('data', (d) => {
      link.fromClient += d.length;
      upstream.write(d);
    });
    upstream.on('data', (d) => client.write(d));
    client.on('end', () => {
      if (link.ended === 'open') link.ended = 'end';
      upstream.end();
    });
    client.on('error', (err: NodeJS.ErrnoException) => {
      if (link.ended === 'open') link.ended = err.code === 'ECONNRESET' || err.code === 'EPIPE' ? 'reset' : 'end';
    });
    client.on('close', () => {
      upstream.destroy();
      done();
    });
    upstream.on('error', () => client.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    links,
    pause() {
      paused = true;
      for (const l of links) l.client.pause();
    },
    resume() {
      paused = false;
      for (const l of links) l.client.resume();
    },
    async close() {
      for (const l of links) l.client.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

export interface TcpRow {
  localPort: number;
  remotePort: number;
  txQueue: number;
  rxQueue: number;
  inode: number;
}

/** IPv4 TCP sockets of this network namespace (the test's, sshfs's, the proxy's). */
export function tcpRows(): TcpRow[] {
  return fs
    .readFileSync('/proc/self/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 10)
    .map((f) => {
      const [tx, rx] = f[4].split(':').map((h) => parseInt(h, 16));
      return { localPort: parseInt(f[1].split(':')[1], 16), remotePort: parseInt(f[2].split(':')[1], 16), txQueue: tx, rxQueue: rx, inode: Number(f[9]) };
    });
}

/** The pid holding the socket with this inode. */
export function ownerOfInode(inode: number): number | undefined {
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      for (const fd of fs.readdirSync(`/proc/${e}/fd`)) if (fs.readlinkSync(`/proc/${e}/fd/${fd}`) === `socket:[${inode}]`) return Number(e);
    } catch {
      /* gone */
    }
  }
  return undefined;
}

/** Gone, or a zombie no one has reaped yet: either way it runs no more. */
export function runs(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

export function mountedAt(mp: string): boolean {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === mp);
}

export async function errnoOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code;
  }
}

export function exitOf(c: ChildProcess): Promise<number | null> {
  return c.exitCode !== null ? Promise.resolve(c.exitCode) : new Promise((r) => c.once('exit', (code) => r(code)));
}

export async function ok(file: string, args: string[]): Promise<string> {
  const c = spawn(file, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  c.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  const code = await exitOf(c);
  if (code !== 0) throw new Error(`${file} ${args.join(' ')} exited ${code}`);
  return out.trim();
}

// Plain descriptors (never a FileHandle, which closes itself synchronously on garbage collection).
export const openFd = promisify(fs.open);
export const writeFd = (fd: number, text: string) => promisify(fs.write)(fd, text);
export const fsyncFd = promisify(fs.fsync);
export const closeFd = promisify(fs.close);
