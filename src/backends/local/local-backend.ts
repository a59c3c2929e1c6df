import { promises as fs } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { fromErrno, NetvolError } from '../../errors';
import { fsUsage } from '../../system';
import { DATA_DIR } from '../layout';
import type { AttachmentHealth, Backend, BackendContext, BackendType, BackendUsage, RootAttributes } from '../types';

export const localOptionsSchema = z.strictObject({
  /** Folder holding one sub-folder per volume. Created at start if missing. */
  path: z.string().startsWith('/', 'must be an absolute path'),
});
export type LocalOptions = z.infer<typeof localOptionsSchema>;

/** Volumes in a folder of this host: the embedded default. attach() is the folder itself. */
export class LocalBackend implements Backend {
  readonly type = 'local';
  readonly capabilities = { networked: false, sharedAcrossHosts: false };
  readonly name: string;
  private readonly root: string;

  constructor(options: LocalOptions, ctx: BackendContext) {
    this.name = ctx.name;
    this.root = options.path;
  }

  private folder(name: string, file?: string): string {
    return file === undefined ? path.join(this.root, name) : path.join(this.root, name, file);
  }

  private fail(err: unknown, what: string): NetvolError {
    return fromErrno(err, `backend ${this.name}: ${what}`);
  }

  async open(): Promise<void> {
    try {
      await fs.mkdir(this.root, { recursive: true, mode: 0o700 });
      await fs.access(this.root, fs.constants.W_OK);
    } catch (err) {
      throw this.fail(err, `cannot use folder ${this.root}`);
    }
  }

  async close(): Promise<void> {}

  /** Volume and archive folders; dot-folders (trash, the driver's `.netvol-hosts`) are not volumes. */
  async listFolders(): Promise<string[]> {
    try {
      const entries = await fs.readdir(this.root, { withFileTypes: true });
      return entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name);
    } catch (err) {
      throw this.fail(err, `cannot list ${this.root}`);
    }
  }

  async makeFolder(name: string, withDataDir: boolean): Promise<boolean> {
    try {
      await fs.mkdir(this.folder(name), { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw this.fail(err, `cannot create folder for volume ${name}`);
    }
    if (withDataDir) {
      try {
        await fs.mkdir(this.folder(name, DATA_DIR), { mode: 0o755 });
      } catch (err) {
        throw this.fail(err, `cannot create data folder for volume ${name}`);
      }
    }
    return true;
  }

  async readFile(name: string, file: string): Promise<Buffer | undefined> {
    try {
      return await fs.readFile(this.folder(name, file));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw this.fail(err, `cannot read ${file} of volume ${name}`);
    }
  }

  async writeFile(name: string, file: string, data: Buffer): Promise<void> {
    const target = this.folder(name, file);
    const temp = `${target}.${process.pid}.tmp`;
    try {
      const handle = await fs.open(temp, 'w', 0o600);
      try {
        await handle.writeFile(data);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fs.rename(temp, target);
    } catch (err) {
      await fs.rm(temp, { force: true }).catch(() => undefined);
      throw this.fail(err, `cannot write ${file} of volume ${name}`);
    }
  }

  async removeFile(name: string, file: string): Promise<void> {
    await fs.rm(this.folder(name, file), { force: true }).catch((err) => {
      throw this.fail(err, `cannot remove ${file} of volume ${name}`);
    });
  }

  async createFile(name: string, file: string, data: Buffer): Promise<boolean> {
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(this.folder(name, file), 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw this.fail(err, `cannot create ${file} of volume ${name}`);
    }
    try {
      await handle.writeFile(data);
      await handle.sync();
    } catch (err) {
      throw this.fail(err, `cannot write ${file} of volume ${name}`);
    } finally {
      await handle.close();
    }
    return true;
  }

  async listFiles(name: string): Promise<string[]> {
    try {
      const entries = await fs.readdir(this.folder(name), { withFileTypes: true });
      return entries.filter((e) => e.isFile() && !e.name.endsWith('.tmp')).map((e) => e.name);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return [];
      throw this.fail(err, `cannot list the files of volume ${name}`);
    }
  }

  async removeFolder(name: string): Promise<void> {
    await fs.rm(this.folder(name), { recursive: true, force: true }).catch((err) => {
      throw this.fail(err, `cannot remove volume ${name}`);
    });
  }

  async renameFolder(from: string, to: string): Promise<void> {
    await fs.rename(this.folder(from), this.folder(to)).catch((err) => {
      throw this.fail(err, `cannot rename volume ${from} to ${to}`);
    });
  }

  async setDataAttributes(name: string, attrs: RootAttributes): Promise<void> {
    const data = this.folder(name, DATA_DIR);
    try {
      if (attrs.uid !== undefined || attrs.gid !== undefined) await fs.chown(data, attrs.uid ?? -1, attrs.gid ?? -1);
      if (attrs.mode !== undefined) await fs.chmod(data, attrs.mode);
    } catch (err) {
      throw this.fail(err, `cannot set owner or mode of volume ${name}`);
    }
  }

  async usage(name: string): Promise<BackendUsage> {
    try {
      const [usedBytes, fsu] = await Promise.all([diskUsage(this.folder(name)), fsUsage(this.root)]);
      return { usedBytes, availableBytes: fsu.availableBytes };
    } catch (err) {
      throw this.fail(err, `cannot measure volume ${name}`);
    }
  }

  async freeBytes(): Promise<number> {
    return (await fsUsage(this.root)).availableBytes;
  }

  async attach(name: string): Promise<string> {
    return this.folder(name);
  }

  async detach(): Promise<void> {}

  async health(): Promise<AttachmentHealth> {
    return 'attached';
  }
}

/** Allocated bytes below `dir` (like du -s: sparse files count what they occupy), without following links. */
async function diskUsage(dir: string): Promise<number> {
  let total = 0;
  const pending = [dir];
  while (pending.length > 0) {
    const current = pending.pop() as string;
    const entries = await fs.readdir(current, { withFileTypes: true }).catch(() => []);
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

export const localBackendType = {
  type: 'local',
  description: 'volumes in a folder of this host',
  optionsSchema: localOptionsSchema,
  secrets: () => [],
  create: (options, ctx) => new LocalBackend(options, ctx),
} satisfies BackendType<LocalOptions>;
