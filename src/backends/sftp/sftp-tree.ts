import { posix } from 'node:path';
import type { FileEntry, SFTPWrapper, Stats } from 'ssh2';
import { NetvolError, redactString } from '../../errors';
import type { EntryKind, Op, Tree, TreeEntry } from '../folder/tree';
import type { RootAttributes, ServerCopyKind } from '../types';
import type { SftpAccess } from './access';
import { request, SFTP_STATUS, sftpStatus } from './connection';

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
/** Bytes per copy-data request: each is one bounded call, so a big image never outlasts the backend's timeout in one request. */
const COPY_CHUNK = 64 * 1024 * 1024;

function kindOf(mode: number): EntryKind {
  const type = mode & S_IFMT;
  return type === S_IFDIR ? 'folder' : type === S_IFREG ? 'file' : 'other';
}

/** SFTP requests over the backend's one control connection, on paths below its root on the server. */
export class SftpTree implements Tree {
  private readonly root: string;

  constructor(
    private readonly backend: string,
    private readonly access: SftpAccess,
  ) {
    this.root = access.options.path;
  }

  private remote(p: string): string {
    return p === '' ? this.root : posix.join(this.root, p);
  }

  describe(p: string): string {
    return this.remote(p);
  }

  /** Runs `fn` on the control connection; its failures become NetvolErrors saying what `op` was doing. */
  private run<T>(op: Op, fn: (sftp: SFTPWrapper) => Promise<T>): Promise<T> {
    return this.access.conn.use(op.what, fn, op.signal).catch((err) => {
      throw this.fail(err, op);
    });
  }

  /** An SFTP status error as a NetvolError naming the backend and what was being done. */
  private fail(err: unknown, op: Op): NetvolError {
    if (err instanceof NetvolError) return err;
    const detail = redactString(String((err as Error)?.message ?? err));
    const prefix = `backend ${this.backend}: ${op.what}`;
    const volume = op.volume;
    switch (sftpStatus(err)) {
      case SFTP_STATUS.NO_SUCH_FILE:
        return new NetvolError('NOT_FOUND', `${prefix}: no such file or folder on the server`, { volume, cause: err });
      case SFTP_STATUS.PERMISSION_DENIED:
        return new NetvolError('PERMISSION', `${prefix}: permission denied on the server for user ${this.access.options.username} (check the owner and mode of ${this.root})`, { volume, cause: err });
      case SFTP_STATUS.OP_UNSUPPORTED:
        return new NetvolError('COMMAND_FAILED', `${prefix}: the SFTP server does not support this operation`, { volume, cause: err });
      default:
        return new NetvolError('INTERNAL', `${prefix}: the server reported: ${detail}`, { volume, cause: err });
    }
  }

  /** SFTP v3 reports a full disk as a generic FAILURE: it is NO_SPACE when the server's filesystem has no room left. */
  private async failWrite(sftp: SFTPWrapper, err: unknown, op: Op, needed: number): Promise<NetvolError> {
    if (sftpStatus(err) === SFTP_STATUS.FAILURE) {
      const free = await this.statvfsFree(sftp).catch(() => undefined);
      if (free !== undefined && free < Math.max(needed, 1)) {
        return new NetvolError('NO_SPACE', `backend ${this.backend}: ${op.what}: the server's disk is full (${free} bytes free under ${this.root})`, { volume: op.volume, cause: err });
      }
    }
    return this.fail(err, op);
  }

  /** Needs the statvfs@openssh.com extension. */
  private async statvfsFree(sftp: SFTPWrapper): Promise<number> {
    const st = await request<{ f_bavail: number | bigint; f_frsize: number | bigint }>((cb) => sftp.ext_openssh_statvfs(this.root, cb));
    return Number(st.f_bavail) * Number(st.f_frsize);
  }

  async open(): Promise<void> {
    await this.access.load();
    await this.run({ what: `cannot use folder ${this.root} on ${this.access.where}` }, async (sftp) => {
      const st = await request<Stats>((cb) => sftp.stat(this.root, cb)).catch(async (err) => {
        if (sftpStatus(err) !== SFTP_STATUS.NO_SUCH_FILE) throw err;
        await this.mkdirs(sftp, this.root);
        return request<Stats>((cb) => sftp.stat(this.root, cb));
      });
      if ((st.mode & S_IFMT) !== S_IFDIR) throw new NetvolError('CONFIG', `backend ${this.backend}: path ${this.root} on the server is not a folder`);
    });
    await this.access.sshfsKnownHosts();
  }

  private async mkdirs(sftp: SFTPWrapper, dir: string): Promise<void> {
    let current = '';
    for (const part of dir.split('/').filter(Boolean)) {
      current = `${current}/${part}`;
      await request((cb) => sftp.mkdir(current, { mode: 0o755 }, cb)).catch(async (err) => {
        const st = await request<Stats>((cb) => sftp.stat(current, cb)).catch(() => undefined);
        if (!st) throw err;
      });
    }
  }

  async close(): Promise<void> {
    await this.access.conn.close();
  }

  async list(op: Op, p: string): Promise<TreeEntry[] | undefined> {
    return this.run(op, async (sftp) => {
      try {
        const entries = await request<FileEntry[]>((cb) => sftp.readdir(this.remote(p), cb));
        return entries.map((e) => ({ name: e.filename, kind: kindOf(e.attrs.mode) }));
      } catch (err) {
        if (sftpStatus(err) === SFTP_STATUS.NO_SUCH_FILE) return undefined;
        throw err;
      }
    });
  }

  async kind(op: Op, p: string): Promise<EntryKind | undefined> {
    return this.run(op, async (sftp) => {
      try {
        return kindOf((await request<Stats>((cb) => sftp.stat(this.remote(p), cb))).mode);
      } catch (err) {
        if (sftpStatus(err) === SFTP_STATUS.NO_SUCH_FILE) return undefined;
        throw err;
      }
    });
  }

  /** SFTP v3 reports an existing name as a generic FAILURE: the name exists if a stat finds it. */
  async mkdir(op: Op, p: string, mode: number): Promise<boolean> {
    return this.run(op, async (sftp) => {
      try {
        await request((cb) => sftp.mkdir(this.remote(p), { mode }, cb));
        return true;
      } catch (err) {
        const exists = await request<Stats>((cb) => sftp.stat(this.remote(p), cb)).catch(() => undefined);
        if (exists) return false;
        throw await this.failWrite(sftp, err, op, 4096);
      }
    });
  }

  async read(op: Op, p: string): Promise<Buffer | undefined> {
    return this.run(op, async (sftp) => {
      try {
        return await request<Buffer>((cb) => sftp.readFile(this.remote(p), cb));
      } catch (err) {
        if (sftpStatus(err) === SFTP_STATUS.NO_SUCH_FILE) return undefined;
        throw err;
      }
    });
  }

  /**
   * Open with CREAT|EXCL ('wx'): the server's open(2) decides which of several racing hosts makes
   * the file. SFTP v3 reports an existing file as a generic FAILURE, so a FAILURE on a path that
   * exists is "someone else has it". A connection lost after the open was sent leaves the outcome
   * unknown: the retry on a fresh connection cannot tell its own file from another host's, so it
   * fails instead of answering false. The data is fsynced (fsync@openssh.com) before the close.
   */
  async create(op: Op, p: string, data: Buffer, mode: number): Promise<boolean> {
    const target = this.remote(p);
    let sent = false;
    return this.run(op, async (sftp) => {
      // A second run of this function is the retry after a lost connection.
      const sentBefore = sent;
      sent = true;
      let handle: Buffer;
      try {
        handle = await request<Buffer>((cb) => sftp.open(target, 'wx', { mode }, cb));
      } catch (err) {
        if (sftpStatus(err) === SFTP_STATUS.FAILURE) {
          const exists = await request<Stats>((cb) => sftp.lstat(target, cb)).then(
            () => true,
            () => false,
          );
          if (exists) {
            if (sentBefore) throw new NetvolError('BACKEND_UNAVAILABLE', `backend ${this.backend}: ${op.what}: the connection was lost while creating it, and it exists now: whether this host made it is unknown`, { volume: op.volume, cause: err });
            return false;
          }
        }
        throw await this.failWrite(sftp, err, op, data.length);
      }
      try {
        for (let off = 0; off < data.length; off += 32768) {
          const len = Math.min(32768, data.length - off);
          await request((cb) => sftp.write(handle, data, off, len, off, cb));
        }
        await request((cb) => sftp.ext_openssh_fsync(handle, cb)).catch((err) => {
          if (sftpStatus(err) !== undefined || !/not supported/i.test(String((err as Error).message))) throw err;
        });
        await request((cb) => sftp.close(handle, cb));
      } catch (err) {
        // Undo: a half-written file would hold the name for nobody.
        await request((cb) => sftp.close(handle, cb)).catch(() => undefined);
        await request((cb) => sftp.unlink(target, cb)).catch(() => undefined);
        throw await this.failWrite(sftp, err, op, data.length);
      }
      return true;
    });
  }

  /** posix-rename@openssh.com, which replaces a file atomically; plain SFTP rename (which refuses an existing target) without it. */
  async rename(op: Op, from: string, to: string): Promise<void> {
    await this.run(op, async (sftp) => {
      try {
        await request((cb) => sftp.ext_openssh_rename(this.remote(from), this.remote(to), cb));
      } catch (err) {
        if (sftpStatus(err) !== undefined) throw err;
        await request((cb) => sftp.unlink(this.remote(to), cb)).catch(() => undefined);
        await request((cb) => sftp.rename(this.remote(from), this.remote(to), cb));
      }
    });
  }

  async remove(op: Op, p: string): Promise<void> {
    await this.run(op, async (sftp) => {
      await request((cb) => sftp.unlink(this.remote(p), cb)).catch((err) => {
        if (sftpStatus(err) !== SFTP_STATUS.NO_SUCH_FILE) throw err;
      });
    });
  }

  async removeTree(op: Op, p: string): Promise<void> {
    await this.run(op, (sftp) => this.rmTree(sftp, this.remote(p)));
  }

  /** Removes `dir` and everything below it, a few requests in flight at a time. */
  private async rmTree(sftp: SFTPWrapper, dir: string): Promise<void> {
    const entries = await request<FileEntry[]>((cb) => sftp.readdir(dir, cb)).catch((err) => {
      if (sftpStatus(err) === SFTP_STATUS.NO_SUCH_FILE) return [] as FileEntry[];
      throw err;
    });
    const files = entries.filter((e) => (e.attrs.mode & S_IFMT) !== S_IFDIR);
    const dirs = entries.filter((e) => (e.attrs.mode & S_IFMT) === S_IFDIR);
    await inBatches(files, 32, (e) =>
      request((cb) => sftp.unlink(posix.join(dir, e.filename), cb)).catch((err) => {
        if (sftpStatus(err) !== SFTP_STATUS.NO_SUCH_FILE) throw err;
      }),
    );
    for (const d of dirs) await this.rmTree(sftp, posix.join(dir, d.filename));
    await request((cb) => sftp.rmdir(dir, cb)).catch((err) => {
      if (sftpStatus(err) !== SFTP_STATUS.NO_SUCH_FILE) throw err;
    });
  }

  /** SFTP's chown takes both ids: the one not given is kept from a stat. */
  async setAttributes(op: Op, p: string, attrs: RootAttributes): Promise<void> {
    const target = this.remote(p);
    await this.run(op, async (sftp) => {
      if (attrs.uid !== undefined || attrs.gid !== undefined) {
        const st = await request<Stats>((cb) => sftp.stat(target, cb));
        await request((cb) => sftp.chown(target, attrs.uid ?? st.uid, attrs.gid ?? st.gid, cb));
      }
      if (attrs.mode !== undefined) await request((cb) => sftp.chmod(target, attrs.mode as number, cb));
    });
  }

  /**
   * SFTP reports no allocated blocks, so this is the apparent size (a sparse image counts at its
   * full size), measured by walking the tree with directory listings, whose entries already carry
   * sizes (no stat per file).
   */
  async usedBytes(op: Op, p: string): Promise<number> {
    const top = this.remote(p);
    return this.run(op, async (sftp) => {
      let total = 0;
      let level = [top];
      while (level.length > 0) {
        const next: string[] = [];
        await inBatches(level, 16, async (dir) => {
          const entries = await request<FileEntry[]>((cb) => sftp.readdir(dir, cb)).catch((err) => {
            if (sftpStatus(err) === SFTP_STATUS.NO_SUCH_FILE || (sftpStatus(err) === SFTP_STATUS.PERMISSION_DENIED && dir !== top)) return [] as FileEntry[];
            throw err;
          });
          for (const e of entries) {
            if ((e.attrs.mode & S_IFMT) === S_IFDIR) next.push(posix.join(dir, e.filename));
            else total += e.attrs.size ?? 0;
          }
        });
        level = next;
      }
      return total;
    });
  }

  async freeBytes(op: Op): Promise<number> {
    return this.run(op, (sftp) => this.statvfsFree(sftp));
  }

  // ---- clone: server-side copy ------------------------------------------------------------------
  /**
   * OpenSSH's copy-data extension (sftp-server since 9.0): the server copies a file's bytes from
   * one handle to another, so an image never crosses the network. Files only (a folder of many
   * files keeps owners and links better when streamed), never cheap: the server reads and writes
   * every byte, and the copy is fully allocated (holes are written as zeros). Undefined when the
   * server lacks the extension. Sent in chunks of COPY_CHUNK, each within the backend's timeout; a
   * failed or aborted copy removes the new file.
   */
  async copy(op: Op, from: string, to: string, how: { folder: boolean; cheapOnly: boolean }): Promise<ServerCopyKind | undefined> {
    if (how.folder || how.cheapOnly) return undefined;
    const src = this.remote(from);
    const dst = this.remote(to);
    const size = await this.run(op, async (sftp) => {
      if ((sftp as unknown as { _extensions?: Record<string, string> })._extensions?.['copy-data'] !== '1') return undefined;
      return (await request<Stats>((cb) => sftp.stat(src, cb))).size;
    });
    if (size === undefined) return undefined;
    await this.run(op, async (sftp) => {
      const h = await request<Buffer>((cb) => sftp.open(dst, 'wx', { mode: 0o600 }, cb));
      await request((cb) => sftp.close(h, cb));
    });
    try {
      for (let off = 0; off < size; off += COPY_CHUNK) {
        op.signal?.throwIfAborted();
        const len = Math.min(COPY_CHUNK, size - off);
        await this.run(op, (sftp) => this.copyChunk(sftp, src, dst, off, len, off + len >= size));
      }
    } catch (err) {
      await this.run({ ...op, signal: undefined }, (sftp) => request((cb) => sftp.unlink(dst, cb))).catch(() => undefined);
      throw err;
    }
    return 'server';
  }

  private async copyChunk(sftp: SFTPWrapper, src: string, dst: string, off: number, len: number, last: boolean): Promise<void> {
    const hs = await request<Buffer>((cb) => sftp.open(src, 'r', cb));
    try {
      const hd = await request<Buffer>((cb) => sftp.open(dst, 'r+', cb));
      try {
        await request((cb) => sftp.ext_copy_data(hs, off, len, hd, off, cb));
        if (last) await request((cb) => sftp.ext_openssh_fsync(hd, cb)).catch(() => undefined);
      } finally {
        await request((cb) => sftp.close(hd, cb)).catch(() => undefined);
      }
    } finally {
      await request((cb) => sftp.close(hs, cb)).catch(() => undefined);
    }
  }
  // ---- end clone --------------------------------------------------------------------------------
}

async function inBatches<T>(items: T[], width: number, f: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await f(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}
