import type { Fattr } from '../nfs';

export interface Inode {
  /** The FUSE node ID the kernel knows this file by. */
  id: number;
  handle: Buffer;
  /** The handle as a map key (hard links share one inode). */
  key: string;
  /** Lookups the kernel holds (each LOOKUP, CREATE, MKDIR… reply adds one; FORGET takes them back). */
  lookups: number;
  attrs?: Fattr;
  /** When `attrs` came from the server, and the namespace epoch they belong to. */
  attrsAt: number;
  attrsEpoch: number;
  /** Open file descriptors of this file (FUSE OPEN/CREATE not yet RELEASEd). */
  opens: number;
  /** Its name in the folder of open-but-unlinked files, once the last name an application saw was removed. */
  hidden?: string;
  /** A folder removed while it was open here: it answers as an empty folder with no links. */
  removed?: boolean;
}

/**
 * FUSE's low-level protocol names files by node IDs the filesystem hands out; NFS names them by
 * file handles. This table maps one to the other for as long as the kernel holds a reference
 * (until it FORGETs every lookup), and keeps each file's last attributes for a short while.
 *
 * Attributes are trusted for `attrTtlMs`, and only while nothing that can change another file's
 * attributes unseen (unlink, rename, link: the link count of a file we cannot name) has happened
 * since: those bump the epoch, which outdates every cached attribute at once.
 */
export class InodeTable {
  private readonly byId = new Map<number, Inode>();
  private readonly byKey = new Map<string, Inode>();
  private nextId = 2;
  private epoch = 0;

  constructor(
    rootHandle: Buffer,
    rootAttrs: Fattr | undefined,
    private readonly attrTtlMs: number,
  ) {
    const root: Inode = { id: 1, handle: rootHandle, key: rootHandle.toString('hex'), lookups: 1, attrsAt: 0, attrsEpoch: 0, opens: 0 };
    this.byId.set(1, root);
    this.byKey.set(root.key, root);
    this.setAttrs(root, rootAttrs);
  }

  get root(): Inode {
    return this.byId.get(1) as Inode;
  }

  get(id: number): Inode | undefined {
    return this.byId.get(id);
  }

  /** The inode the kernel holds for a handle, if any (no lookup is counted). */
  byHandle(key: string): Inode | undefined {
    return this.byKey.get(key);
  }

  /** The inode for a handle the server returned, counting one more lookup by the kernel. */
  remember(handle: Buffer, attrs: Fattr | undefined): Inode {
    const key = handle.toString('hex');
    let n = this.byKey.get(key);
    if (!n) {
      n = { id: this.nextId++, handle, key, lookups: 0, attrsAt: 0, attrsEpoch: 0, opens: 0 };
      this.byId.set(n.id, n);
      this.byKey.set(key, n);
    }
    n.lookups++;
    this.setAttrs(n, attrs);
    return n;
  }

  forget(id: number, count: number): void {
    const n = this.byId.get(id);
    if (!n || id === 1) return;
    n.lookups -= count;
    if (n.lookups <= 0) {
      this.byId.delete(id);
      if (this.byKey.get(n.key) === n) this.byKey.delete(n.key);
    }
  }

  setAttrs(n: Inode, attrs: Fattr | undefined): void {
    if (!attrs) return;
    n.attrs = attrs;
    n.attrsAt = Date.now();
    n.attrsEpoch = this.epoch;
  }

  /** Cached attributes still trusted, if any. */
  fresh(n: Inode): Fattr | undefined {
    return n.attrs && n.attrsEpoch === this.epoch && Date.now() - n.attrsAt < this.attrTtlMs ? n.attrs : undefined;
  }

  stale(n: Inode): void {
    n.attrsAt = 0;
  }

  /** A change that may alter attributes of files we cannot name (link counts). */
  namespaceChanged(): void {
    this.epoch++;
  }
}
