import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fromErrno, NetvolError } from '../../errors';
import { CommandFailedError, fsUsage, run } from '../../system';
import type { RootAttributes, ServerCopyKind } from '../types';
import type { EntryKind, Op, Tree, TreeEntry } from '../folder/tree';

function kindOf(st: { isDirectory(): boolean; isFile(): boolean }): EntryKind {
  return st.isDirectory() ? 'folder' : st.isFile() ? 'file' : 'other';
}

function missing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** A folder of this host, through Node's fs calls. */
export class LocalTree implements Tree {
  constructor(
    private readonly backend: string,
    private readonly root: string,
  ) {}

  private at(p: string): string {
    return p === '' ? this.root : path.join(this.root, p);
  }

  private fail(err: unknown, op: Op): NetvolError {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      const why = code === 'EDQUOT' ? 'the disk quota of this user is used up' : 'the disk is full';
      return new NetvolError('NO_SPACE', `backend ${this.backend}: ${op.what}: ${why} (${this.root})`, { volume: op.volume, cause: err });
    }
    return fromErrno(err, `backend ${this.backend}: ${op.what}`, op.volume);
  }

  describe(p: string): string {
    return this.at(p);
  }

  hostPath(p: string): string {
    return this.at(p);
  }

  async open(): Promise<void> {
    try {
      await fs.mkdir(this.root, { recursive: true, mode: 0o700 });
      if (!(await fs.stat(this.root)).isDirectory()) throw new NetvolError('CONFIG', `backend ${this.backend}: path ${this.root} is not a folder`);
    } catch (err) {
      throw this.fail(err, { what: `cannot use folder ${this.root}` });
    }
  }

  async close(): Promise<void> {}

  async list(op: Op, p: string): Promise<TreeEntry[] | undefined> {
    try {
      return (await fs.readdir(this.at(p), { withFileTypes: true })).map((e) => ({ name: e.name, kind: kindOf(e) }));
    } catch (err) {
      if (missing(err)) return undefined;
      throw this.fail(err, op);
    }
  }

  async kind(op: Op, p: string): Promise<EntryKind | undefined> {
    try {
      return kindOf(await fs.lstat(this.at(p)));
    } catch (err) {
      if (missing(err)) return undefined;
      throw this.fail(err, op);
    }
  }

  async mkdir(op: Op, p: string, mode: number): Promise<boolean> {
    try {
      await fs.mkdir(this.at(p), { mode });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw this.fail(err, op);
    }
  }

  async read(op: Op, p: string): Promise<Buffer | undefined> {
    try {
      return await fs.readFile(this.at(p));
    } catch (err) {
      if (missing(err)) return undefined;
      throw this.fail(err, op);
    }
  }

  async create(op: Op, p: string, data: Buffer, mode: number): Promise<boolean> {
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(this.at(p), 'wx', mode);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw this.fail(err, op);
    }
    try {
      await handle.writeFile(data);
      await handle.sync();
      await handle.close();
    } catch (err) {
      // Undo: a half-written file would hold the name for nobody.
      await handle.close().catch(() => undefined);
      await fs.rm(this.at(p), { force: true }).catch(() => undefined);
      throw this.fail(err, op);
    }
    return true;
  }

  async rename(op: Op, from: string, to: string): Promise<void> {
    await fs.rename(this.at(from), this.at(to)).catch((err) => {
      throw this.fail(err, op);
    });
  }

  async remove(op: Op, p: string): Promise<void> {
    await fs.rm(this.at(p), { force: true }).catch((err) => {
      if (!missing(err)) throw this.fail(err, op);
    });
  }

  async removeTree(op: Op, p: string): Promise<void> {
    await fs.rm(this.at(p), { recursive: true, force: true }).catch((err) => {
      throw this.fail(err, op);
    });
  }

  async setAttributes(op: Op, p: string, attrs: RootAttributes): Promise<void> {
    try {
      if (attrs.uid !== undefined || attrs.gid !== undefined) await fs.chown(this.at(p), attrs.uid ?? -1, attrs.gid ?? -1);
      if (attrs.mode !== undefined) await fs.chmod(this.at(p), attrs.mode);
    } catch (err) {
      throw this.fail(err, op);
    }
  }

  /** Allocated bytes below the folder (like du -s: sparse files count what they occupy), without following links. */
  async usedBytes(op: Op, p: string): Promise<number> {
    let total = 0;
    const pending = [this.at(p)];
    while (pending.length > 0) {
      const current = pending.pop() as string;
      const entries = await fs.readdir(current, { withFileTypes: true }).catch((err) => {
        if (current === this.at(p) && !missing(err)) throw this.fail(err, op);
        return [];
      });
      for (const entry of entries) {
        const full = path.join(current, entry.name);
        const st = await fs.lstat(full).catch(() => undefined);
        if (!st) continue;
        total += st.blocks * 512;
        if (entry.isDirectory()) pending.push(full);
      }
    }
    return total;
  }

  async freeBytes(op: Op): Promise<number> {
    try {
      return (await fsUsage(this.root)).availableBytes;
    } catch (err) {
      throw this.fail(err, op);
    }
  }

  // ---- clone: server-side copy ------------------------------------------------------------------
  /**
   * The "server" is this host's disk: cp(1) with `--reflink=always` first (XFS with reflink=1,
   * btrfs: constant time, blocks shared until written), and without `cheapOnly` a plain sparse
   * `cp` when the filesystem has no reflinks. A folder's contents are copied with `-a` (owners,
   * modes, times, symlinks, hard links, xattrs). What a failed attempt wrote is removed.
   */
  async copy(op: Op, from: string, to: string, how: { folder: boolean; cheapOnly: boolean }): Promise<ServerCopyKind | undefined> {
    const src = this.at(from);
    const dst = this.at(to);
    // cp takes --sparse only with --reflink=auto or never; a reflink keeps holes anyway.
    const args = (reflink: 'always' | 'never'): string[] => {
      const copyMode = reflink === 'always' ? ['--reflink=always'] : ['--reflink=never', '--sparse=always'];
      return how.folder ? ['-a', ...copyMode, '--', `${src}/.`, `${dst}/`] : [...copyMode, '--', src, dst];
    };
    const undo = async (): Promise<void> => {
      if (!how.folder) return fs.rm(dst, { force: true });
      for (const e of await fs.readdir(dst).catch(() => [] as string[])) await fs.rm(path.join(dst, e), { recursive: true, force: true });
    };
    const attempt = async (reflink: 'always' | 'never'): Promise<boolean> => {
      try {
        await run('cp', args(reflink), { timeoutMs: reflink === 'always' ? 120_000 : 24 * 3600_000, signal: op.signal });
        return true;
      } catch (err) {
        await undo().catch(() => undefined);
        if (op.signal?.aborted) throw err;
        if (reflink === 'always') return false;
        throw this.copyFailed(err, op);
      }
    };
    if (await attempt('always')) return 'reflink';
    if (how.cheapOnly) return undefined;
    await attempt('never');
    return 'server';
  }

  private copyFailed(err: unknown, op: Op): NetvolError {
    const stderr = err instanceof CommandFailedError ? err.stderr : String((err as Error)?.message ?? err);
    if (/No space left|Disk quota exceeded/i.test(stderr)) return new NetvolError('NO_SPACE', `backend ${this.backend}: ${op.what}: the disk is full (${this.root})`, { volume: op.volume, cause: err });
    return new NetvolError('COMMAND_FAILED', `backend ${this.backend}: ${op.what}: ${(err as Error).message}`, { volume: op.volume, cause: err });
  }
  // ---- end clone --------------------------------------------------------------------------------
}
