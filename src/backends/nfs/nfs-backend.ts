import { promises as fs } from 'node:fs';
import path from 'node:path';
import { NetvolError } from '../../errors';
import { FileType, NfsClient, isNfsError, readWholeFile, readdirAll, rmrf, walk } from '../../nfs';
import { cutOffFuseMount, findMount, run } from '../../system';
import type { AttachmentHealth, Backend, BackendContext, BackendUsage, RootAttributes } from '../types';
import { ControlConnection, Session } from './connection';
import { KERNEL_FS_TYPES, kernelMountArgs, Mounter, probe, resolveMounter, startUserspace, stopUserspace, USERSPACE_FS_TYPE, userspacePids } from './mounters';
import { folderInExport, NfsOptions } from './options';
import { BackgroundTasks } from '../background';
import { DATA_DIR, isTempName, probeName, tempName, trashName, TRASH_PREFIX } from '../layout';

/** Folders whose name starts with this are removals in progress; volume names never start with ".". */

/**
 * Volumes in a folder of an NFS export. Every control operation goes through netvol's own NFSv3
 * client over one connection, without mounting anything. Data goes through the kernel's NFS client
 * (`mount -t nfs`) or, on hosts without one, through one FUSE server process per attached volume
 * over the same client library, started in its own session so that it outlives netvol and is found
 * again after a restart.
 */
export class NfsBackend implements Backend {
  readonly type = 'nfs';
  readonly capabilities = { networked: true, sharedAcrossHosts: true, imageVolumes: true, atomicRename: true };
  readonly name: string;
  private readonly folder: string;
  private readonly conn: ControlConnection;
  private readonly log: BackendContext['logger'];
  private readonly background = new BackgroundTasks();
  private mounterChoice: Promise<{ mounter: Mounter; why: string }> | undefined;

  constructor(
    private readonly options: NfsOptions,
    private readonly ctx: BackendContext,
  ) {
    this.name = ctx.name;
    this.log = ctx.logger;
    this.folder = folderInExport(options.path);
    this.conn = new ControlConnection({
      backend: ctx.name,
      server: options.server,
      exportPath: options.export,
      folder: this.folder,
      port: options.port,
      mountPort: options.mountPort,
      uid: options.uid,
      gid: options.gid,
      timeoutMs: ctx.timeoutMs,
      logger: ctx.logger,
    });
  }

  /** The data path this backend uses on this host, and why (decided once). */
  async statusFields(): Promise<Record<string, string>> {
    return { mounter: (await this.mounter()).mounter };
  }

  mounter(): Promise<{ mounter: Mounter; why: string }> {
    this.mounterChoice ??= resolveMounter(this.options.mounter).then((choice) => {
      this.log.info(`nfs data path: ${choice.mounter}`, { backend: this.name, mounter: choice.mounter, why: choice.why });
      return choice;
    });
    return this.mounterChoice;
  }

  private where(name?: string, file?: string): string {
    return [this.folder, name, file].filter((p) => p !== undefined && p !== '').join('/');
  }

  // ---------------------------------------------------------------------------------------------
  // lifecycle

  async open(): Promise<void> {
    await this.mounter();
    await fs.mkdir(path.join(this.ctx.workDir, '.logs'), { recursive: true, mode: 0o700 });
    await this.conn.use(`opening folder ${this.where() || '/'} of export ${this.options.export}`, async ({ client, root }) => {
      const attrs = await client.getattr(root);
      if (attrs.type !== FileType.DIR) throw new NetvolError('CONFIG', `backend ${this.name}: path ${this.options.path} in export ${this.options.export} is not a folder`);
      // Writable? Create and remove a probe file (root on the server passes mode bits, so modes alone do not tell).
      const probe = probeName();
      await client.create(root, probe, { mode: 'unchecked', attrs: { mode: 0o600 } });
      await client.remove(root, probe);
    });
    this.background.track(this.emptyTrash().catch((err: Error) => this.log.warn('cannot finish removing folders of removed volumes; will retry at next start', { backend: this.name, error: err.message })));
  }

  async close(): Promise<void> {
    await this.background.drain();
    await this.conn.close();
  }

  // ---------------------------------------------------------------------------------------------
  // folders and files

  async listFolders(): Promise<string[]> {
    return this.conn.use(`listing ${this.where() || 'the export root'}`, async ({ client, root }) => {
      const entries = await readdirAll(client, root);
      return entries.filter((e) => !e.name.startsWith('.') && (e.attrs ? e.attrs.type === FileType.DIR : true)).map((e) => e.name);
    });
  }

  async makeFolder(name: string, withDataDir: boolean): Promise<boolean> {
    return this.conn.use(
      `creating the folder of volume ${name}`,
      async ({ client, root }) => {
        let dir: Buffer;
        try {
          dir = (await client.mkdir(root, name, { mode: 0o700 })).handle;
        } catch (err) {
          if (isNfsError(err, 'EEXIST')) return false;
          throw err;
        }
        if (withDataDir) await client.mkdir(dir, DATA_DIR, { mode: 0o755 });
        return true;
      },
      name,
    );
  }

  /** The handle of a volume's folder, or undefined if it does not exist. */
  private async volumeDir(s: Session, name: string): Promise<Buffer | undefined> {
    try {
      return (await s.client.lookup(s.root, name)).handle;
    } catch (err) {
      if (isNfsError(err, 'ENOENT') || isNfsError(err, 'ENOTDIR')) return undefined;
      throw err;
    }
  }

  async readFile(name: string, file: string): Promise<Buffer | undefined> {
    return this.conn.use(
      `reading ${file} of volume ${name}`,
      async (s) => {
        const dir = await this.volumeDir(s, name);
        if (!dir) return undefined;
        let fh: Buffer;
        try {
          fh = (await s.client.lookup(dir, file)).handle;
        } catch (err) {
          if (isNfsError(err, 'ENOENT')) return undefined;
          throw err;
        }
        return readWholeFile(s.client, fh);
      },
      name,
    );
  }

  /** A temporary file, written FILE_SYNC, then renamed over the target (NFS RENAME replaces atomically). */
  async writeFile(name: string, file: string, data: Buffer): Promise<void> {
    const temp = tempName(file);
    await this.conn.use(
      `writing ${file} of volume ${name}`,
      async (s) => {
        const dir = await this.volumeDir(s, name);
        if (!dir) throw new NetvolError('NOT_FOUND', `backend ${this.name}: cannot write ${file} of volume ${name}: its folder ${this.where(name)} is missing on the server`, { volume: name });
        try {
          const created = await s.client.create(dir, temp, { mode: 'guarded', attrs: { mode: 0o600 } });
          await writeSync(s.client, created.handle, data);
          await s.client.rename(dir, temp, dir, file);
        } catch (err) {
          await s.client.remove(dir, temp).catch(() => undefined);
          throw err;
        }
      },
      name,
    );
  }

  /**
   * CREATE in GUARDED mode: the server refuses (NFS3ERR_EXIST) a name that exists, so of several
   * hosts racing exactly one makes the file. The library never resends a GUARDED CREATE after a
   * lost connection (the resend could not tell its own file from another's): that fails instead.
   */
  async createFile(name: string, file: string, data: Buffer): Promise<boolean> {
    return this.conn.use(
      `creating ${file} of volume ${name}`,
      async (s) => {
        const dir = await this.volumeDir(s, name);
        if (!dir) throw new NetvolError('NOT_FOUND', `backend ${this.name}: cannot create ${file} of volume ${name}: its folder ${this.where(name)} is missing on the server`, { volume: name });
        let fh: Buffer;
        try {
          fh = (await s.client.create(dir, file, { mode: 'guarded', attrs: { mode: 0o600 } })).handle;
        } catch (err) {
          if (isNfsError(err, 'EEXIST')) return false;
          throw err;
        }
        try {
          await writeSync(s.client, fh, data);
        } catch (err) {
          // Undo: a half-written file would hold the name for nobody.
          await s.client.remove(dir, file).catch(() => undefined);
          throw err;
        }
        return true;
      },
      name,
    );
  }

  async listFiles(name: string): Promise<string[]> {
    return this.conn.use(
      `listing the files of volume ${name}`,
      async (s) => {
        const dir = await this.volumeDir(s, name);
        if (!dir) return [];
        const out: string[] = [];
        for (const e of await readdirAll(s.client, dir)) {
          if (e.name === '.' || e.name === '..' || isTempName(e.name)) continue;
          const type = e.attrs?.type ?? (await s.client.lookup(dir, e.name).then((r) => r.attrs?.type, () => undefined));
          if (type === FileType.REG) out.push(e.name);
        }
        return out;
      },
      name,
    );
  }

  async removeFile(name: string, file: string): Promise<void> {
    await this.conn.use(
      `removing ${file} of volume ${name}`,
      async (s) => {
        const dir = await this.volumeDir(s, name);
        if (!dir) return;
        await s.client.remove(dir, file).catch((err) => {
          if (!isNfsError(err, 'ENOENT')) throw err;
        });
      },
      name,
    );
  }

  /**
   * Renames the folder out of the way at once (a trash name no volume can have), then deletes it
   * in the background: a big volume never makes Remove exceed the timeout, and a deletion cut short
   * is finished at the next start.
   */
  async removeFolder(name: string): Promise<void> {
    const trash = trashName(name);
    const moved = await this.conn.use(
      `removing volume ${name}`,
      async ({ client, root }) => {
        try {
          await client.rename(root, name, root, trash);
          return true;
        } catch (err) {
          if (isNfsError(err, 'ENOENT')) return false;
          throw err;
        }
      },
      name,
    );
    if (moved) this.background.track(this.deleteTree(trash, name));
  }

  private async deleteTree(trash: string, volume?: string): Promise<void> {
    // Not bounded by the backend timeout: a big tree takes as long as it takes, in the background.
    let client: NfsClient | undefined;
    try {
      client = await NfsClient.connect({
        host: this.options.server,
        exportPath: this.options.export,
        port: this.options.port,
        mountPort: this.options.mountPort,
        uid: this.options.uid,
        gid: this.options.gid,
        timeoutMs: Math.max(10_000, this.ctx.timeoutMs),
      });
      await rmrf(client, this.where(trash));
    } catch (err) {
      this.log.warn('cannot finish deleting a removed volume; will retry at next start', { volume, backend: this.name, error: (err as Error).message });
    } finally {
      await client?.close().catch(() => undefined);
    }
  }

  private async emptyTrash(): Promise<void> {
    const leftovers = await this.conn.use('looking for unfinished removals', async ({ client, root }) => {
      const entries = await readdirAll(client, root);
      return entries.filter((e) => e.name.startsWith(TRASH_PREFIX)).map((e) => e.name);
    });
    for (const dir of leftovers) await this.deleteTree(dir);
  }

  async renameFolder(from: string, to: string): Promise<void> {
    await this.conn.use(`renaming volume ${from} to ${to}`, async ({ client, root }) => {
      // RENAME would replace an empty folder of that name: refuse as a local rename of a non-empty one would.
      const exists = await client.lookup(root, to).then(
        () => true,
        (err) => {
          if (isNfsError(err, 'ENOENT')) return false;
          throw err;
        },
      );
      if (exists) throw new NetvolError('OPTIONS_CONFLICT', `backend ${this.name}: cannot rename volume ${from} to ${to}: ${to} already exists`, { volume: from });
      await client.rename(root, from, root, to);
    }, from);
  }

  async setDataAttributes(name: string, attrs: RootAttributes): Promise<void> {
    await this.conn.use(
      `setting owner and mode of volume ${name}`,
      async (s) => {
        const dir = await this.volumeDir(s, name);
        if (!dir) throw new NetvolError('NOT_FOUND', `backend ${this.name}: volume ${name} has no folder on the server`, { volume: name });
        const data = (await s.client.lookup(dir, DATA_DIR)).handle;
        await s.client.setattr(data, { uid: attrs.uid, gid: attrs.gid, mode: attrs.mode });
      },
      name,
    );
  }

  /** Bytes the server reports as used below the volume's folder (sparse files count what they occupy), and free on the export. */
  async usage(name: string): Promise<BackendUsage> {
    return this.conn.use(
      `measuring volume ${name}`,
      async ({ client, root }) => {
        const [totals, st] = await Promise.all([walk(client, this.where(name), { concurrency: 8 }), client.fsstat(root)]);
        return { usedBytes: totals.usedBytes, availableBytes: st.availBytes };
      },
      name,
    );
  }

  async freeBytes(): Promise<number> {
    return this.conn.use('measuring free space', async ({ client, root }) => (await client.fsstat(root)).availBytes);
  }

  // ---------------------------------------------------------------------------------------------
  // attachments

  private mountpoint(name: string): string {
    return path.join(this.ctx.workDir, name);
  }

  async attach(name: string): Promise<string> {
    const mp = this.mountpoint(name);
    const { mounter } = await this.mounter();
    const existing = await findMount(mp);
    if (existing) {
      if ((await this.health(name)) === 'attached') {
        this.log.info('found the volume still attached; reusing it', { volume: name, backend: this.name, mounter, mountpoint: mp });
        return mp;
      }
      this.log.warn('the attachment is dead; mounting it again', { volume: name, backend: this.name, mounter });
      await this.unmountDead(mp, existing.fsType);
    } else if (mounter === 'userspace') {
      // A server without its mount (it lost the race with an unmount): end it before starting another.
      await stopUserspace(mp, true, this.ctx.timeoutMs).catch(() => undefined);
    }
    // The folder must exist: a clear NOT_FOUND now rather than a failed mount.
    await this.conn.use(
      `attaching volume ${name}`,
      async (s) => {
        if (!(await this.volumeDir(s, name))) throw new NetvolError('NOT_FOUND', `backend ${this.name}: cannot attach volume ${name}: its folder ${this.where(name)} is missing in export ${this.options.export}`, { volume: name });
      },
      name,
    );
    await fs.mkdir(mp, { recursive: true, mode: 0o700 });
    if (mounter === 'kernel') {
      await run('mount', kernelMountArgs(this.options, this.folder, name, mp), { timeoutMs: this.ctx.timeoutMs }).catch((err: Error) => {
        throw new NetvolError('COMMAND_FAILED', `backend ${this.name}: cannot attach volume ${name}: ${err.message}`, { volume: name, cause: err });
      });
    } else {
      const logFile = path.join(this.ctx.workDir, '.logs', `${name}.log`);
      await fs.mkdir(path.dirname(logFile), { recursive: true, mode: 0o700 });
      await startUserspace(
        {
          backend: this.name,
          server: this.options.server,
          exportPath: this.options.export,
          port: this.options.port,
          mountPort: this.options.mountPort,
          uid: this.options.uid,
          gid: this.options.gid,
          timeoutMs: this.ctx.timeoutMs,
        },
        this.where(name),
        mp,
        logFile,
        name,
      );
    }
    this.log.info('nfs volume attached', { volume: name, backend: this.name, mounter, mountpoint: mp });
    return mp;
  }

  private async unmountDead(mp: string, fsType: string): Promise<void> {
    if (fsType === USERSPACE_FS_TYPE) await stopUserspace(mp, true, this.ctx.timeoutMs).catch(() => undefined);
    else await run('umount', ['-l', mp], { timeoutMs: this.ctx.timeoutMs }).catch(() => undefined);
  }

  async detach(name: string): Promise<void> {
    const mp = this.mountpoint(name);
    const entry = await findMount(mp);
    try {
      if (entry?.fsType === USERSPACE_FS_TYPE || (!entry && (await userspacePids(mp)).length > 0)) {
        const live = entry ? (await this.health(name)) === 'attached' : false;
        await stopUserspace(mp, !live, this.ctx.timeoutMs);
      } else if (entry) {
        await run('umount', [mp], { timeoutMs: this.ctx.timeoutMs });
      }
    } catch (err) {
      throw new NetvolError('COMMAND_FAILED', `backend ${this.name}: cannot detach volume ${name}: ${(err as Error).message} (is a process still using ${mp}?)`, { volume: name, cause: err });
    }
    await fs.rmdir(mp).catch(() => undefined);
  }

  /**
   * Cuts this host's data path of the volume off the server at once (see Backend.fence): the FUSE
   * server's connections are reset and it is killed before the mount is detached. A kernel mount
   * has no process to kill: it is force-unmounted, lazily. Succeeds if nothing is attached.
   */
  async fence(name: string): Promise<void> {
    const mp = this.mountpoint(name);
    const entry = await findMount(mp);
    const limit = Math.min(this.ctx.timeoutMs, 5000);
    try {
      if (entry && KERNEL_FS_TYPES.includes(entry.fsType)) await run('umount', ['-f', '-l', mp], { timeoutMs: limit });
      else await cutOffFuseMount(mp, await userspacePids(mp), limit);
    } catch (err) {
      throw new NetvolError('COMMAND_FAILED', `backend ${this.name}: cannot fence volume ${name}: ${(err as Error).message}`, { volume: name, cause: err });
    }
    await fs.rmdir(mp).catch(() => undefined);
    if (entry) this.log.warn('fenced: the data path was cut off the server; processes using the volume get I/O errors', { volume: name, backend: this.name });
  }

  async health(name: string): Promise<AttachmentHealth> {
    const mp = this.mountpoint(name);
    const entry = await findMount(mp);
    if (!entry) return 'detached';
    if (entry.fsType === USERSPACE_FS_TYPE) {
      if ((await userspacePids(mp)).length === 0) return 'dead';
      // A live server that does not answer is waiting out an NFS server outage: it recovers by
      // itself, and re-attaching would throw away what it holds. Only an error (ENOTCONN) is dead.
      return (await probe(mp, Math.min(this.ctx.timeoutMs, 5000))) === 'error' ? 'dead' : 'attached';
    }
    if (!KERNEL_FS_TYPES.includes(entry.fsType)) return 'dead';
    return (await probe(mp, Math.min(this.ctx.timeoutMs, 5000))) === 'ok' ? 'attached' : 'dead';
  }
}

/** Writes a small file FILE_SYNC (metadata files: durable before the rename that publishes them). */
async function writeSync(client: NfsClient, fh: Buffer, data: Buffer): Promise<void> {
  if (data.length === 0) return;
  await client.writeRange(fh, 0, data, { stability: 'sync' });
}

