import { BigIntStats, constants, fstatSync, promises as fs, readFileSync } from 'node:fs';

/**
 * A regular file another local process has open, named by that process: its pid and descriptor,
 * and the file's device and inode so that the opener can check it reached the same file. The
 * daemon reopens it through /proc (a root daemon in the same pid namespace can), so a backup's tar
 * writes straight into the client's archive, and a restore's tar reads it, without the bytes
 * crossing the admin socket twice.
 */
export interface PeerFile {
  pid: number;
  fd: number;
  dev: bigint;
  ino: bigint;
}

/** How a client names its open descriptor `fd` on the wire: `pid.fd.dev.ino`. */
export function describeOwnFile(fd: number): string {
  const st = fstatSync(fd, { bigint: true });
  return `${process.pid}.${fd}.${st.dev}.${st.ino}`;
}

/** The wire form back; undefined when it is not one. */
export function parsePeerFile(text: unknown): PeerFile | undefined {
  const m = typeof text === 'string' ? /^(\d{1,10})\.(\d{1,6})\.(\d{1,20})\.(\d{1,20})$/.exec(text) : null;
  if (!m) return undefined;
  return { pid: Number(m[1]), fd: Number(m[2]), dev: BigInt(m[3]), ino: BigInt(m[4]) };
}

/**
 * Opens the peer's file for reading or writing (a new open file description: the offset starts at
 * 0, never appending). Only regular files, checked before the open: opening a pipe could wait for
 * ever. Rejects with a sentence when the file cannot be reached (another pid namespace, the process
 * gone) or is not the one named (checked again on what was opened).
 */
export async function openPeerFile(p: PeerFile, mode: 'read' | 'write'): Promise<fs.FileHandle> {
  const link = `/proc/${p.pid}/fd/${p.fd}`;
  const unreachable = (err: unknown) => new Error(`cannot open descriptor ${p.fd} of process ${p.pid} (${(err as NodeJS.ErrnoException).code ?? 'error'}): is the client in another pid namespace?`);
  const check = (st: BigIntStats): void => {
    if (!st.isFile()) throw new Error(`descriptor ${p.fd} of process ${p.pid} is not a regular file`);
    if (st.dev !== p.dev || st.ino !== p.ino) throw new Error(`descriptor ${p.fd} of process ${p.pid} is not the file the client named`);
  };
  check(await fs.stat(link, { bigint: true }).catch((err) => Promise.reject(unreachable(err))));
  const h = await fs.open(link, (mode === 'read' ? constants.O_RDONLY : constants.O_WRONLY) | constants.O_NOCTTY).catch((err) => Promise.reject(unreachable(err)));
  try {
    check(await h.stat({ bigint: true }));
    return h;
  } catch (err) {
    await h.close().catch(() => undefined);
    throw err;
  }
}

/** Bytes a process has read and written so far (/proc/PID/io); zeros once it is gone. */
export function ioCounters(pid: number | undefined): { read: number; written: number } {
  try {
    const text = readFileSync(`/proc/${pid}/io`, 'utf8');
    const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
    return { read: field('rchar'), written: field('wchar') };
  } catch {
    return { read: 0, written: 0 };
  }
}
