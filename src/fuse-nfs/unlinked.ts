import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { emptyDir, NfsClient, readdirAll } from '../nfs';

/**
 * The folder, at the root of the mount, that holds files removed while still open. Neither lookup
 * nor readdir shows it: applications see the mount as the folder it serves, nothing more.
 */
export const UNLINKED_DIR = '.netvol-unlinked';

/** This process's own subfolder: `<host>.<boot id>.<pid>`, so a later mount can tell whether its owner still runs. */
function ownFolderName(): string {
  return `${hostname()}.${bootId()}.${process.pid}`;
}

function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim().slice(0, 8);
  } catch {
    return 'noboot';
  }
}

/** Whether `pid` is a running (not zombie) userspace NFS server. */
function servesStill(pid: number): boolean {
  if (pid === process.pid) return false;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    if (/^State:\s+[ZX]/m.test(status)) return false;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('fuse-nfs');
  } catch {
    return false;
  }
}

/**
 * Open-but-unlinked files, as the kernel's NFS client keeps them ("silly rename"). NFS has no
 * reference from an open file to the file: once its last name is removed on the server, its
 * handle is stale. So an unlink of an open file renames it into a hidden folder instead, and the
 * last close removes it there. A crash leaves such files behind: the next mount on the same host
 * removes the ones whose server is gone. (Another host's folders are left alone: a directory
 * volume may be mounted on several hosts at once, and only that host can tell whether its
 * server still runs.)
 */
export class UnlinkedFiles {
  private own: Promise<Buffer> | undefined;
  private counter = 0;

  constructor(
    private readonly client: NfsClient,
    private readonly root: Buffer,
  ) {}

  /** The folder this process renames files into, made at first use. */
  folder(): Promise<Buffer> {
    this.own ??= (async () => {
      const top = await this.mkdirOrLookup(this.root, UNLINKED_DIR);
      return this.mkdirOrLookup(top, ownFolderName());
    })();
    this.own.catch(() => (this.own = undefined));
    return this.own;
  }

  /** A fresh name in the folder, like the kernel's `.nfs<fileid><counter>`. */
  nameFor(fileid: bigint): string {
    this.counter = (this.counter + 1) >>> 0;
    return `.nfs${fileid.toString(16).padStart(16, '0')}${this.counter.toString(16).padStart(8, '0')}`;
  }

  private async mkdirOrLookup(dir: Buffer, name: string): Promise<Buffer> {
    try {
      return (await this.client.mkdir(dir, name, { mode: 0o700 })).handle;
    } catch (err) {
      if ((err as { code?: string }).code !== 'EEXIST') throw err;
      return (await this.client.lookup(dir, name)).handle;
    }
  }

  /** Removes what servers of this host that no longer run left behind; returns the folders removed. */
  async cleanUp(): Promise<string[]> {
    let top: Buffer;
    try {
      top = (await this.client.lookup(this.root, UNLINKED_DIR)).handle;
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return [];
      throw err;
    }
    const host = hostname();
    const boot = bootId();
    const removed: string[] = [];
    for (const e of await readdirAll(this.client, top)) {
      const m = /^(.*)\.([^.]+)\.(\d+)$/.exec(e.name);
      if (!m || m[1] !== host) continue;
      if (m[2] === boot && servesStill(Number(m[3]))) continue;
      const handle = e.handle ?? (await this.client.lookup(top, e.name)).handle;
      await emptyDir(this.client, handle);
      await this.client.rmdir(top, e.name);
      removed.push(e.name);
    }
    return removed;
  }
}
