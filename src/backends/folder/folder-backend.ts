import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isNetvolError, NetvolError, redactString } from '../../errors';
import { findMount } from '../../system';
import { BackgroundTasks } from '../background';
import { DATA_DIR, isHiddenName, isTempName, probeName, tempName, trashName, TRASH_PREFIX } from '../layout';
import type { AttachmentHealth, Backend, BackendCapabilities, BackendContext, BackendUsage, RootAttributes, ServerCopyKind, ServerCopyRequest } from '../types';
import { helperLogFile, type DataPath } from './data-path';
import type { Tree } from './tree';

/**
 * What a failing call on a folder was doing: the folder is a volume's, or netvol's own bookkeeping
 * (a hidden name such as the hosts' heartbeat folder), which is no volume and is not called one.
 */
function folderOp(doing: string, name: string): { what: string; volume?: string } {
  return isHiddenName(name) ? { what: `${doing} netvol's folder ${name}` } : { what: `${doing} volume ${name}`, volume: name };
}

export interface FolderBackendParts {
  type: string;
  capabilities: BackendCapabilities;
  tree: Tree;
  /** How volumes are made reachable on this host; none when the tree is on this host's own disk (Tree.hostPath). */
  dataPath?: DataPath;
}

/**
 * The Backend contract for every backend that keeps volumes as folders, written once over two
 * adapters: a Tree for control operations and a DataPath for attachments. What is decided here,
 * for every backend type alike:
 * - open proves the root writable with a probe file, and sweeps the trash left by removals cut short;
 * - a removed folder is renamed to a trash name at once and deleted in the background;
 * - names starting with a dot are never volumes (listFolders hides them);
 * - writeFile writes a temporary name and renames it over the target; listFiles never shows temporary names;
 * - makeFolder and renameFolder never replace an existing folder;
 * - attach reuses a healthy attachment left by an earlier netvol process, and replaces a dead one.
 */
export class FolderBackend implements Backend {
  readonly name: string;
  readonly type: string;
  readonly capabilities: BackendCapabilities;
  /** Present only when the data path can fence (see Backend.fence). */
  readonly fence?: (name: string) => Promise<void>;
  readonly statusFields?: (name: string) => Promise<Record<string, string | number | boolean>>;
  /** Present only when the tree can copy on the server (see Backend.copyWithin). */
  readonly copyWithin?: (request: ServerCopyRequest) => Promise<ServerCopyKind | undefined>;
  private readonly tree: Tree;
  private readonly dataPath: DataPath | undefined;
  private readonly log: BackendContext['logger'];
  private readonly background = new BackgroundTasks();

  constructor(
    parts: FolderBackendParts,
    private readonly ctx: BackendContext,
  ) {
    this.name = ctx.name;
    this.type = parts.type;
    this.capabilities = parts.capabilities;
    this.tree = parts.tree;
    this.dataPath = parts.dataPath;
    this.log = ctx.logger;
    const dataPath = parts.dataPath;
    if (dataPath) this.fence = (name) => this.fenceVolume(dataPath, name);
    if (dataPath?.statusFields) {
      const fields = dataPath.statusFields.bind(dataPath);
      this.statusFields = () => fields();
    }
    const tree = parts.tree;
    if (tree.copy) {
      const copy = tree.copy.bind(tree);
      this.copyWithin = (r) =>
        copy({ what: `cannot copy volume ${r.from} to ${r.to}`, volume: r.to, signal: r.signal }, join(r.from, r.entry), join(r.to, r.entry), { folder: r.entry === DATA_DIR, cheapOnly: r.cheapOnly });
    }
    if (!dataPath && !parts.tree.hostPath) throw new Error(`backend type ${parts.type}: a tree without a host path needs a data path`);
  }

  // ---------------------------------------------------------------------------------------------
  // lifecycle

  async open(): Promise<void> {
    await this.dataPath?.open?.();
    if (this.dataPath) await fs.mkdir(path.join(this.ctx.workDir, '.logs'), { recursive: true, mode: 0o700 });
    await this.tree.open();
    // Writable? Create and remove a probe file (root, here or on the server, passes mode bits, so modes alone do not tell).
    const op = { what: `cannot use folder ${this.tree.describe('')}` };
    const probe = probeName();
    await this.tree.create(op, probe, Buffer.alloc(0), 0o600);
    await this.tree.remove(op, probe);
    this.background.track(this.sweepTrash());
  }

  async close(): Promise<void> {
    await this.background.drain();
    await this.tree.close();
  }

  // ---------------------------------------------------------------------------------------------
  // folders and files

  /** Volume and archive folders; dot-folders (trash, the driver's `.netvol-hosts`) are not volumes. */
  async listFolders(signal?: AbortSignal): Promise<string[]> {
    const entries = await this.tree.list({ what: `cannot list ${this.tree.describe('')}`, signal }, '');
    return (entries ?? []).filter((e) => e.kind === 'folder' && !isHiddenName(e.name)).map((e) => e.name);
  }

  async makeFolder(name: string, withDataDir: boolean, signal?: AbortSignal): Promise<boolean> {
    if (!(await this.tree.mkdir({ ...folderOp('cannot create the folder of', name), signal }, name, 0o700))) return false;
    if (withDataDir) await this.tree.mkdir({ what: `cannot create the data folder of volume ${name}`, volume: name, signal }, join(name, DATA_DIR), 0o755);
    return true;
  }

  async readFile(name: string, file: string, signal?: AbortSignal): Promise<Buffer | undefined> {
    return this.tree.read({ ...folderOp(`cannot read ${file} of`, name), signal }, join(name, file));
  }

  /** A temporary file, written and made durable, then renamed over the target: readers see the old or the new bytes, never half. */
  async writeFile(name: string, file: string, data: Buffer, signal?: AbortSignal): Promise<void> {
    const op = { ...folderOp(`cannot write ${file} of`, name), signal };
    const temp = join(name, tempName(file));
    if (!(await this.tree.create(op, temp, data, 0o600))) {
      throw new NetvolError('INTERNAL', `backend ${this.name}: ${op.what}: its temporary file ${temp} already exists`, { volume: op.volume });
    }
    try {
      await this.tree.rename(op, temp, join(name, file));
    } catch (err) {
      await this.tree.remove({ ...op, signal: undefined }, temp).catch(() => undefined);
      throw err;
    }
  }

  async removeFile(name: string, file: string, signal?: AbortSignal): Promise<void> {
    await this.tree.remove({ ...folderOp(`cannot remove ${file} of`, name), signal }, join(name, file));
  }

  async createFile(name: string, file: string, data: Buffer, signal?: AbortSignal): Promise<boolean> {
    return this.tree.create({ ...folderOp(`cannot create ${file} of`, name), signal }, join(name, file), data, 0o600);
  }

  async listFiles(name: string, signal?: AbortSignal): Promise<string[]> {
    const entries = await this.tree.list({ ...folderOp('cannot list the files of', name), signal }, name);
    return (entries ?? []).filter((e) => e.kind === 'file' && !isTempName(e.name)).map((e) => e.name);
  }

  /**
   * Renames the folder out of the way at once (a trash name no volume can have), then deletes it
   * in the background: a big volume never makes Remove exceed the timeout, and a deletion cut short
   * is finished at the next open.
   */
  async removeFolder(name: string, signal?: AbortSignal): Promise<void> {
    const trash = trashName(name);
    try {
      await this.tree.rename({ what: `cannot remove volume ${name}`, volume: name, signal }, name, trash);
    } catch (err) {
      if (isNetvolError(err, 'NOT_FOUND')) return;
      throw err;
    }
    this.background.track(this.deleteTrash(trash, name));
  }

  private async deleteTrash(trash: string, volume?: string): Promise<void> {
    await this.tree.removeTree({ what: 'cannot finish deleting a removed volume', volume }, trash).catch((err: Error) => {
      this.log.warn('cannot finish deleting a removed volume; will retry at next start', { volume, backend: this.name, error: err.message });
    });
  }

  private async sweepTrash(): Promise<void> {
    try {
      const entries = (await this.tree.list({ what: 'cannot look for unfinished removals' }, '')) ?? [];
      for (const e of entries) if (e.name.startsWith(TRASH_PREFIX)) await this.deleteTrash(e.name);
    } catch (err) {
      this.log.warn('cannot finish removing folders of removed volumes; will retry at next start', { backend: this.name, error: (err as Error).message });
    }
  }

  async listTrash(signal?: AbortSignal): Promise<string[]> {
    const entries = await this.tree.list({ what: `cannot list ${this.tree.describe('')}`, signal }, '');
    return (entries ?? []).filter((e) => e.kind === 'folder' && e.name.startsWith(TRASH_PREFIX)).map((e) => e.name);
  }

  async removeTrash(trash: string, signal?: AbortSignal): Promise<void> {
    if (!trash.startsWith(TRASH_PREFIX) || trash.includes('/')) throw new NetvolError('INVALID_OPTION', `backend ${this.name}: ${trash} is not a trash folder`);
    await this.tree.removeTree({ what: `cannot delete netvol's folder ${trash}`, signal }, trash);
  }

  /** Renames a folder (to archive a volume); refuses to replace an existing one, whatever the server's rename would do. */
  async renameFolder(from: string, to: string, signal?: AbortSignal): Promise<void> {
    const op = { what: `cannot rename volume ${from} to ${to}`, volume: from, signal };
    if ((await this.tree.kind(op, to)) !== undefined) throw new NetvolError('OPTIONS_CONFLICT', `backend ${this.name}: ${op.what}: ${to} already exists`, { volume: from });
    await this.tree.rename(op, from, to);
  }

  async setDataAttributes(name: string, attrs: RootAttributes, signal?: AbortSignal): Promise<void> {
    await this.tree.setAttributes({ what: `cannot set owner or mode of volume ${name}`, volume: name, signal }, join(name, DATA_DIR), attrs);
  }

  async usage(name: string, signal?: AbortSignal): Promise<BackendUsage> {
    const op = { what: `cannot measure volume ${name}`, volume: name, signal };
    const [usedBytes, availableBytes] = await Promise.all([this.tree.usedBytes(op, name), this.tree.freeBytes(op)]);
    return { usedBytes, availableBytes };
  }

  async freeBytes(signal?: AbortSignal): Promise<number> {
    return this.tree.freeBytes({ what: `cannot measure free space under ${this.tree.describe('')}`, signal });
  }

  // ---------------------------------------------------------------------------------------------
  // attachments

  private mountpoint(name: string): string {
    return path.join(this.ctx.workDir, name);
  }

  attachedPath(name: string): string {
    return this.dataPath ? this.mountpoint(name) : (this.tree.hostPath as (p: string) => string)(name);
  }

  /**
   * When `signal` aborts, the tree call in flight is given up and the helper being started is
   * killed and its mount undone (DataPath.start), so nothing of the attachment is left.
   */
  async attach(name: string, signal?: AbortSignal): Promise<string> {
    signal?.throwIfAborted();
    if (!this.dataPath) return this.attachedPath(name);
    const dataPath = this.dataPath;
    const mp = this.mountpoint(name);
    const existing = await findMount(mp);
    if (existing) {
      const health = await dataPath.check(name, mp, existing, signal);
      if (health === 'attached') {
        this.log.info('found the volume still attached; reusing it', { volume: name, backend: this.name, mountpoint: mp });
        return mp;
      }
      if (health === 'unreachable') {
        // Its helper waits for the server and reconnects by itself: replacing it would cut off the
        // containers that use it, and a new one could not reach the server either.
        throw new NetvolError('BACKEND_UNAVAILABLE', `backend ${this.name}: cannot attach volume ${name}: its server does not answer; the attachment this host has waits for it and reconnects by itself; try again when the server answers`, { volume: name });
      }
      this.log.warn('the attachment is dead; mounting it again', { volume: name, backend: this.name });
    }
    await dataPath.clear(mp, existing).catch(() => undefined);
    // The folder must exist: a clear NOT_FOUND now rather than a failed mount (and, for sshfs, a
    // control connection that has just verified the host key).
    const op = { what: `cannot attach volume ${name}`, volume: name, signal };
    if ((await this.tree.kind(op, name)) !== 'folder') {
      throw new NetvolError('NOT_FOUND', `backend ${this.name}: ${op.what}: its folder ${this.tree.describe(name)} is missing`, { volume: name });
    }
    const directoryLayout = (await this.tree.kind(op, join(name, DATA_DIR))) === 'folder';
    await fs.mkdir(mp, { recursive: true, mode: 0o700 });
    let facts: Record<string, unknown>;
    try {
      facts = await dataPath.start({ volume: name, folder: name, mountpoint: mp, directoryLayout, logFile: helperLogFile(this.ctx.workDir, name), signal });
    } catch (err) {
      // Cut off by the deadline: the helper may have mounted, or be running without its mount, just
      // before it was killed. Nothing of the half-made attachment stays (clear ends both).
      if (signal?.aborted) await dataPath.clear(mp, await findMount(mp)).catch(() => undefined);
      throw err;
    }
    this.log.info(`${dataPath.label} attached`, { volume: name, backend: this.name, mountpoint: mp, ...facts });
    return mp;
  }

  async detach(name: string, signal?: AbortSignal): Promise<void> {
    if (!this.dataPath) return;
    const mp = this.mountpoint(name);
    try {
      await this.dataPath.stop(name, mp, await findMount(mp), signal);
    } catch (err) {
      throw new NetvolError('COMMAND_FAILED', `backend ${this.name}: cannot detach volume ${name}: ${redactString((err as Error).message)} (is a process still using ${mp}?)`, { volume: name, cause: err });
    }
    await fs.rmdir(mp).catch(() => undefined);
  }

  /** Cuts this host's data path of the volume off the server at once (see Backend.fence); succeeds if nothing is attached. */
  private async fenceVolume(dataPath: DataPath, name: string): Promise<void> {
    const mp = this.mountpoint(name);
    let fenced: boolean;
    try {
      fenced = await dataPath.fence(mp);
    } catch (err) {
      throw new NetvolError('COMMAND_FAILED', `backend ${this.name}: cannot fence volume ${name}: ${redactString((err as Error).message)}`, { volume: name, cause: err });
    }
    await fs.rmdir(mp).catch(() => undefined);
    if (fenced) this.log.warn('fenced: the data path was cut off the server; processes using the volume get I/O errors', { volume: name, backend: this.name });
  }

  async health(name: string, signal?: AbortSignal): Promise<AttachmentHealth> {
    if (!this.dataPath) return 'attached';
    const mp = this.mountpoint(name);
    const entry = await findMount(mp);
    return entry ? this.dataPath.check(name, mp, entry, signal) : 'detached';
  }
}

function join(...parts: string[]): string {
  return parts.filter((p) => p !== '').join('/');
}
