import { promises as fs } from 'node:fs';
import { endianness } from 'node:os';
import { NetvolError } from '../errors';
import { run } from './exec';
import { isAlive } from './processes';

/** One TCP connection held by a process, as /proc/<pid>/net/tcp{,6} lists it. */
export interface TcpConnection {
  pid: number;
  /** The socket's inode (the `socket:[N]` of the process's fd). */
  inode: number;
  family: 4 | 6;
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
  /** The kernel's state number (1 ESTABLISHED … 0A LISTEN), hex as in /proc. */
  state: string;
  /** Bytes the kernel still holds to send (unsent or unacknowledged). */
  sendQueue: number;
}

const LISTEN = '0A';

/** Socket inodes of a process's open fds ([] when it is gone). */
async function socketInodes(pid: number): Promise<Set<number>> {
  const out = new Set<number>();
  let fds: string[];
  try {
    fds = await fs.readdir(`/proc/${pid}/fd`);
  } catch {
    return out;
  }
  for (const fd of fds) {
    const link = await fs.readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const m = /^socket:\[(\d+)\]$/.exec(link);
    if (m) out.add(Number(m[1]));
  }
  return out;
}

/** The 4-byte words of /proc's hex addresses are in host byte order. */
function addressBytes(hex: string): number[] {
  const bytes: number[] = [];
  for (let w = 0; w < hex.length; w += 8) {
    const word = [0, 2, 4, 6].map((i) => parseInt(hex.slice(w + i, w + i + 2), 16));
    bytes.push(...(endianness() === 'LE' ? word.reverse() : word));
  }
  return bytes;
}

/** A /proc hex address as text `ss` accepts: dotted IPv4, `::ffff:a.b.c.d` for mapped IPv4, else eight groups. */
export function decodeAddress(hex: string): string {
  const b = addressBytes(hex);
  if (b.length === 4) return b.join('.');
  if (b.slice(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) return `::ffff:${b.slice(12).join('.')}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i] << 8) | b[i + 1]).toString(16));
  return groups.join(':');
}

/** Parses one /proc/<pid>/net/tcp or tcp6 table, keeping the rows whose inode is in `inodes`. */
export function parseTcpTable(text: string, family: 4 | 6, pid: number, inodes: Set<number>): TcpConnection[] {
  const out: TcpConnection[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const inode = Number(f[9]);
    if (!inodes.has(inode) || f[3] === LISTEN) continue;
    const [lAddr, lPort] = f[1].split(':');
    const [rAddr, rPort] = f[2].split(':');
    out.push({
      pid,
      inode,
      family,
      localAddress: decodeAddress(lAddr),
      localPort: parseInt(lPort, 16),
      remoteAddress: decodeAddress(rAddr),
      remotePort: parseInt(rPort, 16),
      state: f[3],
      sendQueue: parseInt(f[4].split(':')[0], 16),
    });
  }
  return out;
}

/**
 * The TCP connections (not listening sockets) of exactly these processes: the socket inodes of
 * their fds matched against their own /proc/<pid>/net tables, so a process in another network
 * namespace is read in its own.
 */
export async function tcpConnectionsOf(pids: number[]): Promise<TcpConnection[]> {
  const out: TcpConnection[] = [];
  const seen = new Set<number>();
  for (const pid of pids) {
    const inodes = await socketInodes(pid);
    if (inodes.size === 0) continue;
    for (const [file, family] of [['tcp', 4], ['tcp6', 6]] as const) {
      const text = await fs.readFile(`/proc/${pid}/net/${file}`, 'utf8').catch(() => '');
      for (const c of parseTcpTable(text, family, pid, inodes)) {
        // A socket shared by a parent and its child is one connection.
        if (seen.has(c.inode)) continue;
        seen.add(c.inode);
        out.push(c);
      }
    }
  }
  return out;
}

/**
 * Pids, other than `pids`, holding the other end of one of these processes' unix stream sockets
 * (a socketpair to a helper they started: sshfs talks to its ssh over one, and ssh is re-parented
 * to init when sshfs daemonizes, so its parent does not tell). Peers come from `ss -x`.
 */
export async function unixPeersOf(pids: number[], timeoutMs = 5000): Promise<number[]> {
  const mine = new Set<number>();
  for (const pid of pids) for (const inode of await socketInodes(pid)) mine.add(inode);
  if (mine.size === 0) return [];
  const { stdout } = await run('ss', ['-x', '-a', '-n', '-H'], { timeoutMs });
  const peers = new Set<number>();
  for (const line of stdout.split('\n')) {
    // "... <local address> <local inode> <peer address> <peer inode>"
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const local = Number(f[f.length - 3]);
    const peer = Number(f[f.length - 1]);
    if (mine.has(local) && peer > 0 && !mine.has(peer)) peers.add(peer);
  }
  if (peers.size === 0) return [];
  const out: number[] = [];
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry) || pids.includes(Number(entry))) continue;
    for (const inode of await socketInodes(Number(entry))) {
      if (peers.has(inode)) {
        out.push(Number(entry));
        break;
      }
    }
  }
  return out;
}

function endpoint(address: string, port: number, family: 4 | 6): string {
  return family === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * Aborts each connection in the kernel (`ss -K`, SOCK_DESTROY): the peer gets a reset and what the
 * socket still held to send is dropped, never sent, whatever happens to the network later. Each is
 * named by both ends, so nothing else is touched. Fails, naming them, if any is still there after.
 */
export async function resetConnections(conns: TcpConnection[], timeoutMs = 5000): Promise<void> {
  for (const c of conns) {
    await run('ss', ['-K', '-n', '-t', `-${c.family}`, 'src', endpoint(c.localAddress, c.localPort, c.family), 'dst', endpoint(c.remoteAddress, c.remotePort, c.family)], { timeoutMs });
  }
  const left = (await tcpConnectionsOf([...new Set(conns.map((c) => c.pid))])).filter((c) => conns.some((k) => k.inode === c.inode));
  if (left.length > 0) {
    const names = left.map((c) => `${endpoint(c.localAddress, c.localPort, c.family)} → ${endpoint(c.remoteAddress, c.remotePort, c.family)}`).join(', ');
    throw new NetvolError('COMMAND_FAILED', `cannot reset TCP connections ${names} (ss -K needs a kernel with CONFIG_INET_DIAG_DESTROY)`);
  }
}

/**
 * Cuts processes off at once, without letting them flush: stops them (no new connection, no new
 * byte, and a stopped ssh cannot close its socket gracefully), runs `whileStopped`, resets their
 * TCP connections, then SIGKILLs them and waits for them to be gone. The processes die even if a
 * step fails; the error says so afterwards.
 *
 * A FUSE server must not stay stopped while this process spawns `ss`: a fork holding a file of its
 * mount closes it at exec, and FUSE waits for the server's answer to that flush uninterruptibly.
 * Callers with a FUSE server abort its connection in `whileStopped`.
 */
export async function cutOff(pids: number[], timeoutMs = 5000, whileStopped?: () => Promise<unknown>): Promise<void> {
  const signal = (sig: NodeJS.Signals) => {
    for (const pid of pids) {
      try {
        process.kill(pid, sig);
      } catch {
        /* already gone */
      }
    }
  };
  signal('SIGSTOP');
  let failure: unknown;
  try {
    await whileStopped?.();
    await resetConnections(await tcpConnectionsOf(pids), timeoutMs);
  } catch (err) {
    failure = err;
  } finally {
    signal('SIGKILL');
  }
  const deadline = Date.now() + timeoutMs;
  while (pids.some(isAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  if (failure) throw failure;
  const alive = pids.filter(isAlive);
  if (alive.length > 0) throw new NetvolError('COMMAND_FAILED', `processes ${alive.join(', ')} are still running after SIGKILL`);
}
