// NfsClient: connects (portmapper → MOUNT → NFS), holds the export's root
// handle and the server's transfer sizes, and adds range reads/writes that are
// split to rtmax/wtmax and run several calls in flight.

import { Nfs3 } from './nfs3';
import { RpcClient } from './rpc-client';
import { authSys } from './rpc-message';
import { lookupPort } from './portmap';
import { MOUNT_PROGRAM, MOUNT_VERSION, mnt, umnt } from './mount3';
import { FsInfo, LookupResult, NFS_PROGRAM, NFS_VERSION, StableHow } from './nfs3-types';
import { NfsClientError, WriteVerifierError } from './errors';
import { runLimited } from './limit';
import type { NfsTarget } from './target';

/** Where to connect (the one NfsTarget shape), with the identity optional here, and how. */
export interface NfsClientOptions extends Omit<NfsTarget, 'uid' | 'gid'> {
  /** Portmapper port; default 111. */
  portmapPort?: number;
  /** AUTH_SYS identity; defaults to this process's uid and gid. */
  uid?: number;
  gid?: number;
  gids?: number[];
  machineName?: string;
  /** Use a source port below 1024 (servers with the "secure" export option require it). */
  privilegedPort?: boolean;
  /** Deadline of each call, reconnects included. Default 10 000 ms. */
  timeoutMs?: number;
  /** Deadline of each TCP connect. Default 5 000 ms. */
  connectTimeoutMs?: number;
  /** Upper bound for READ/WRITE sizes, below the server's rtmax/wtmax. Default 1 MiB. */
  maxIoSize?: number;
  /** Calls in flight per readRange/writeRange. Default 8. */
  maxInFlight?: number;
  /**
   * TCP connections to the NFS service (like nconnect). READs take them in turn; each file's WRITEs
   * stay on one of them, chosen by its handle, so the server gets them in order. Default 1.
   */
  connections?: number;
}

export interface WriteRangeOptions {
  /** 'unstable' (default): UNSTABLE writes then one COMMIT; 'sync': FILE_SYNC writes. */
  stability?: 'unstable' | 'sync';
}

export interface CloseOptions {
  /** Tell the MOUNT service the export is no longer used (UMNT). Default false. */
  unmount?: boolean;
}

export class NfsClient extends Nfs3 {
  private constructor(
    rpc: RpcClient,
    dataRpcs: RpcClient[],
    readonly root: Buffer,
    readonly fsInfo: FsInfo,
    private readonly opts: NfsClientOptions,
    private readonly mountPort: number,
    /** Bytes per READ call: min(rtmax, maxIoSize). */
    readonly readSize: number,
    /** Bytes per WRITE call: min(wtmax, maxIoSize). */
    readonly writeSize: number,
  ) {
    super(rpc, dataRpcs);
  }

  get exportPath(): string {
    return this.opts.exportPath;
  }

  static async connect(opts: NfsClientOptions): Promise<NfsClient> {
    const lookup = { host: opts.host, portmapPort: opts.portmapPort, timeoutMs: opts.timeoutMs, connectTimeoutMs: opts.connectTimeoutMs };
    const mountPort = opts.mountPort ?? (await requirePort(lookup, MOUNT_PROGRAM, MOUNT_VERSION, 'MOUNT v3'));
    const nfsPort = opts.port ?? (await requirePort(lookup, NFS_PROGRAM, NFS_VERSION, 'NFS v3'));
    const auth = authSys({
      uid: opts.uid ?? process.getuid?.() ?? 0,
      gid: opts.gid ?? process.getgid?.() ?? 0,
      gids: opts.gids,
      machineName: opts.machineName,
    });
    const common = {
      host: opts.host,
      auth,
      privilegedPort: opts.privilegedPort,
      timeoutMs: opts.timeoutMs,
      connectTimeoutMs: opts.connectTimeoutMs,
    };

    const mountRpc = await RpcClient.connect({ ...common, port: mountPort });
    let root: Buffer;
    try {
      root = (await mnt(mountRpc, opts.exportPath)).handle;
    } finally {
      mountRpc.close();
    }

    const rpc = await RpcClient.connect({ ...common, port: nfsPort });
    const dataRpcs: RpcClient[] = [];
    try {
      const info = await new Nfs3(rpc).fsinfo(root);
      const cap = opts.maxIoSize ?? 1024 * 1024;
      const readSize = Math.max(4096, Math.min(info.rtmax || cap, cap));
      const writeSize = Math.max(4096, Math.min(info.wtmax || cap, cap));
      for (let i = 1; i < Math.max(1, opts.connections ?? 1); i++) dataRpcs.push(await RpcClient.connect({ ...common, port: nfsPort }));
      return new NfsClient(rpc, dataRpcs, root, info, opts, mountPort, readSize, writeSize);
    } catch (err) {
      rpc.close();
      for (const r of dataRpcs) r.close();
      throw err;
    }
  }

  /** Walks a slash-separated path from `from` (default: the export root) with LOOKUP. */
  async lookupPath(path: string, from: Buffer = this.root): Promise<LookupResult> {
    let current: LookupResult = { handle: from };
    for (const part of path.split('/')) {
      if (part === '' || part === '.') continue;
      current = await this.lookup(current.handle, part);
    }
    if (current.handle === from && current.attrs === undefined) {
      return { handle: from, attrs: await this.getattr(from) };
    }
    return current;
  }

  /**
   * Reads up to `length` bytes from `offset`, in rtmax-sized calls with several
   * in flight. The result is shorter than `length` at end of file.
   */
  async readRange(fh: Buffer, offset: number, length: number): Promise<Buffer> {
    if (length <= 0) return Buffer.alloc(0);
    const out = Buffer.allocUnsafe(length);
    const n = await this.readRangeInto(fh, offset, out);
    return out.subarray(0, n);
  }

  /**
   * Reads into `dest` from `offset` (up to dest.length bytes), in rtmax-sized
   * calls with several in flight; resolves with the byte count, which is
   * short only at end of file. Reusing `dest` avoids all allocation.
   */
  async readRangeInto(fh: Buffer, offset: number, dest: Buffer): Promise<number> {
    const length = dest.length;
    if (length === 0) return 0;
    const size = this.readSize;
    const chunks = Math.ceil(length / size);
    const got = new Array<number>(chunks).fill(0);
    let eofAt = Infinity;
    await runLimited(chunks, this.opts.maxInFlight ?? 8, async (i) => {
      const start = i * size;
      if (start >= eofAt) return;
      const want = Math.min(size, length - start);
      let done = 0;
      while (done < want) {
        const res = await this.readInto(fh, offset + start + done, dest.subarray(start + done, start + want));
        done += res.count;
        if (res.eof || res.count === 0) {
          eofAt = Math.min(eofAt, start + done);
          break;
        }
      }
      got[i] = done;
    });
    let total = 0;
    for (let i = 0; i < chunks; i++) {
      total += got[i];
      if (got[i] < Math.min(size, length - i * size)) break;
    }
    return total;
  }

  /**
   * Writes `data` at `offset` in wtmax-sized calls with several in flight. In
   * the default 'unstable' mode it ends with a COMMIT and checks that every
   * WRITE and the COMMIT carry the same verifier; if not, the server restarted
   * and may have lost data, and a WriteVerifierError says which range to resend.
   */
  async writeRange(fh: Buffer, offset: number, data: Buffer, opts: WriteRangeOptions = {}): Promise<void> {
    const stable = opts.stability === 'sync' ? StableHow.FILE_SYNC : StableHow.UNSTABLE;
    const size = this.writeSize;
    const chunks = Math.max(1, Math.ceil(data.length / size));
    let verifier: Buffer | undefined;
    let mismatch: Buffer | undefined;
    let needCommit = false;
    await runLimited(chunks, this.opts.maxInFlight ?? 8, async (i) => {
      const start = i * size;
      const end = Math.min(start + size, data.length);
      let pos = start;
      do {
        const res = await this.write(fh, offset + pos, data.subarray(pos, end), stable);
        if (res.committed !== StableHow.FILE_SYNC) needCommit = true;
        if (!verifier) verifier = res.verifier;
        else if (!verifier.equals(res.verifier)) mismatch = res.verifier;
        if (res.count === 0 && end > pos) {
          throw new NfsClientError('EIO', `NFS3.WRITE wrote 0 of ${end - pos} bytes at ${offset + pos}`, {
            procedure: 'NFS3.WRITE',
          });
        }
        pos += res.count;
      } while (pos < end);
    });
    if (!needCommit && !mismatch) return;
    if (mismatch) throw new WriteVerifierError(offset, data.length, verifier!, mismatch);
    await this.commitChecked(fh, verifier!, offset, data.length);
  }

  /**
   * COMMITs a range and checks the verifier against the one the WRITEs
   * returned; throws WriteVerifierError if it changed (data must be resent).
   */
  async commitChecked(fh: Buffer, expected: Buffer, offset = 0, count = 0): Promise<void> {
    const res = await this.commit(fh, offset, count);
    if (!res.verifier.equals(expected)) throw new WriteVerifierError(offset, count, expected, res.verifier);
  }

  /** Closes the connection; with `unmount`, first sends UMNT for the export. */
  async close(options: CloseOptions = {}): Promise<void> {
    try {
      if (options.unmount) {
        const mountRpc = await RpcClient.connect({
          host: this.opts.host,
          port: this.mountPort,
          auth: authSys({
            uid: this.opts.uid ?? process.getuid?.() ?? 0,
            gid: this.opts.gid ?? process.getgid?.() ?? 0,
            gids: this.opts.gids,
            machineName: this.opts.machineName,
          }),
          privilegedPort: this.opts.privilegedPort,
          timeoutMs: this.opts.timeoutMs,
          connectTimeoutMs: this.opts.connectTimeoutMs,
        });
        try {
          await umnt(mountRpc, this.opts.exportPath);
        } finally {
          mountRpc.close();
        }
      }
    } finally {
      this.rpc.close();
      for (const r of this.dataRpcs) r.close();
    }
  }
}

async function requirePort(
  lookup: Parameters<typeof lookupPort>[0],
  program: number,
  version: number,
  what: string,
): Promise<number> {
  const port = await lookupPort(lookup, program, version);
  if (port === 0) {
    throw new NfsClientError('EPROGUNAVAIL', `${what} is not registered with the portmapper on ${lookup.host}`, {
      procedure: 'PMAP.GETPORT',
    });
  }
  return port;
}
