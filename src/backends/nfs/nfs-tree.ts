import { NetvolError } from '../../errors';
import { FileType, isNfsError, NfsClient, readdirAll, readWholeFile, rmrf, walk, type NfsTarget } from '../../nfs';
import type { Logger } from '../../log';
import type { EntryKind, Op, Tree, TreeEntry } from '../folder/tree';
import type { RootAttributes } from '../types';
import { ControlConnection, Session } from './connection';

function kindOf(type: FileType | undefined): EntryKind {
  return type === FileType.DIR ? 'folder' : type === FileType.REG ? 'file' : 'other';
}

/** A path's folder and last name: "v/volume.json" → "v", "volume.json". */
function split(p: string): { parent: string; name: string } {
  const i = p.lastIndexOf('/');
  return i < 0 ? { parent: '', name: p } : { parent: p.slice(0, i), name: p.slice(i + 1) };
}

export interface NfsTreeSettings {
  backend: string;
  target: NfsTarget;
  /** Folder inside the export holding the volumes ("" for the export root). */
  folder: string;
  timeoutMs: number;
  logger: Logger;
}

/**
 * NFSv3 calls through netvol's own client over one connection (ControlConnection), on paths below
 * the volumes folder of the export, without mounting anything.
 */
export class NfsTree implements Tree {
  private readonly conn: ControlConnection;

  constructor(private readonly s: NfsTreeSettings) {
    this.conn = new ControlConnection(s);
  }

  /** The path inside the export. */
  private where(p: string): string {
    return [this.s.folder, p].filter((x) => x !== '').join('/');
  }

  describe(p: string): string {
    return this.where(p) || '/';
  }

  /** The handle of `p`, or undefined when it (or a folder on the way) does not exist. */
  /** One control call on the session, as `op` says (what it does, for which volume, until when). */
  private use<T>(op: Op, fn: (s: Session) => Promise<T>): Promise<T> {
    return this.conn.use(op.what, fn, op.volume, op.signal);
  }

  /** A call that only reads: safe to send again when the connection was dropped under it. */
  private useReading<T>(op: Op, fn: (s: Session) => Promise<T>): Promise<T> {
    return this.conn.use(op.what, fn, op.volume, op.signal, true);
  }

  private async find(s: Session, p: string): Promise<Buffer | undefined> {
    let fh = s.root;
    for (const part of p.split('/').filter((x) => x !== '')) {
      try {
        fh = (await s.client.lookup(fh, part)).handle;
      } catch (err) {
        if (isNfsError(err, 'ENOENT') || isNfsError(err, 'ENOTDIR')) return undefined;
        throw err;
      }
    }
    return fh;
  }

  /** The handle of the folder `p` is in; NOT_FOUND when that folder is missing. */
  private async parentOf(s: Session, op: Op, p: string): Promise<{ dir: Buffer; name: string }> {
    const { parent, name } = split(p);
    const dir = await this.find(s, parent);
    if (!dir) throw new NetvolError('NOT_FOUND', `backend ${this.s.backend}: ${op.what}: its folder ${this.describe(parent)} is missing on the server`, { volume: op.volume });
    return { dir, name };
  }

  async open(): Promise<void> {
    await this.conn.use(`opening folder ${this.describe('')} of export ${this.s.target.exportPath}`, async ({ client, root }) => {
      const attrs = await client.getattr(root);
      if (attrs.type !== FileType.DIR) throw new NetvolError('CONFIG', `backend ${this.s.backend}: path ${this.s.folder} in export ${this.s.target.exportPath} is not a folder`);
    });
  }

  async close(): Promise<void> {
    await this.conn.close();
  }

  async list(op: Op, p: string): Promise<TreeEntry[] | undefined> {
    return this.useReading(op, async (s) => {
      const dir = await this.find(s, p);
      if (!dir) return undefined;
      const out: TreeEntry[] = [];
      for (const e of await readdirAll(s.client, dir)) {
        if (e.name === '.' || e.name === '..') continue;
        const type = e.attrs?.type ?? (await s.client.lookup(dir, e.name).then((r) => r.attrs?.type, () => undefined));
        out.push({ name: e.name, kind: kindOf(type) });
      }
      return out;
    });
  }

  async kind(op: Op, p: string): Promise<EntryKind | undefined> {
    return this.useReading(op, async (s) => {
      const fh = await this.find(s, p);
      return fh ? kindOf((await s.client.getattr(fh)).type) : undefined;
    });
  }

  async mkdir(op: Op, p: string, mode: number): Promise<boolean> {
    return this.use(op, async (s) => {
      const { dir, name } = await this.parentOf(s, op, p);
      try {
        await s.client.mkdir(dir, name, { mode });
        return true;
      } catch (err) {
        if (isNfsError(err, 'EEXIST')) return false;
        throw err;
      }
    });
  }

  async read(op: Op, p: string): Promise<Buffer | undefined> {
    return this.useReading(op, async (s) => {
      const fh = await this.find(s, p);
      return fh ? readWholeFile(s.client, fh) : undefined;
    });
  }

  /**
   * CREATE in GUARDED mode: the server refuses (NFS3ERR_EXIST) a name that exists, so of several
   * hosts racing exactly one makes the file. The library never resends a GUARDED CREATE after a
   * lost connection (the resend could not tell its own file from another's): that fails instead.
   * The data is written FILE_SYNC.
   */
  async create(op: Op, p: string, data: Buffer, mode: number): Promise<boolean> {
    return this.use(op, async (s) => {
      const { dir, name } = await this.parentOf(s, op, p);
      let fh: Buffer;
      try {
        fh = (await s.client.create(dir, name, { mode: 'guarded', attrs: { mode } })).handle;
      } catch (err) {
        if (isNfsError(err, 'EEXIST')) return false;
        throw err;
      }
      try {
        if (data.length > 0) await s.client.writeRange(fh, 0, data, { stability: 'sync' });
      } catch (err) {
        // Undo: a half-written file would hold the name for nobody.
        await s.client.remove(dir, name).catch(() => undefined);
        throw err;
      }
      return true;
    });
  }

  /** NFS RENAME, which replaces an existing file atomically. */
  async rename(op: Op, from: string, to: string): Promise<void> {
    await this.use(op, async (s) => {
      const a = await this.parentOf(s, op, from);
      const b = await this.parentOf(s, op, to);
      await s.client.rename(a.dir, a.name, b.dir, b.name);
    });
  }

  async remove(op: Op, p: string): Promise<void> {
    await this.use(op, async (s) => {
      const { parent, name } = split(p);
      const dir = await this.find(s, parent);
      if (!dir) return;
      await s.client.remove(dir, name).catch((err) => {
        if (!isNfsError(err, 'ENOENT')) throw err;
      });
    });
  }

  /** On a client of its own, not bounded by the backend's timeout: a big tree takes as long as it takes, in the background. */
  async removeTree(op: Op, p: string): Promise<void> {
    let client: NfsClient | undefined;
    try {
      client = await NfsClient.connect({ ...this.s.target, timeoutMs: Math.max(10_000, this.s.timeoutMs) });
      await rmrf(client, this.where(p));
    } catch (err) {
      throw this.conn.error(err, op.what, op.volume);
    } finally {
      await client?.close().catch(() => undefined);
    }
  }

  async setAttributes(op: Op, p: string, attrs: RootAttributes): Promise<void> {
    await this.use(op, async (s) => {
      const fh = await this.find(s, p);
      if (!fh) throw new NetvolError('NOT_FOUND', `backend ${this.s.backend}: ${op.what}: ${this.describe(p)} is missing on the server`, { volume: op.volume });
      await s.client.setattr(fh, { uid: attrs.uid, gid: attrs.gid, mode: attrs.mode });
    });
  }

  /** Bytes the server reports as used (sparse files count what they occupy). */
  async usedBytes(op: Op, p: string): Promise<number> {
    return this.useReading(op, async ({ client }) => (await walk(client, this.where(p), { concurrency: 8 })).usedBytes);
  }

  async freeBytes(op: Op): Promise<number> {
    return this.useReading(op, async ({ client, root }) => (await client.fsstat(root)).availBytes);
  }
}
