import type { Fattr } from '../nfs';

export interface Node {
  handle: Buffer;
  attrs?: Fattr;
  /** When `attrs` came from the server. */
  attrsAt: number;
  /** Change counter when `attrs` were stored: older than a change of the same file means stale. */
  attrsSeq?: number;
  /** When the name was last looked up (or created) on the server. */
  namedAt: number;
}

/**
 * FUSE's high-level API speaks paths; NFS speaks file handles. This maps paths (as FUSE gives
 * them: "/", "/a/b") to handles and recent attributes. Names are trusted for `nameTtlMs`, then
 * looked up again, so a change made by another client is seen within that time; attributes for
 * `attrTtlMs`. Every change this process makes updates or drops the affected entries at once.
 */
export class NodeCache {
  private readonly byPath = new Map<string, Node>();
  /** Per file handle (hex), the change counter of its last change made here (hard links share it). */
  private readonly changed = new Map<string, number>();
  private seq = 1;
  /** Every attribute stored before this counter is stale (after the change map was emptied). */
  private allStaleBefore = 0;

  constructor(
    private readonly root: Node,
    private readonly nameTtlMs: number,
    private readonly attrTtlMs: number,
  ) {}

  get rootNode(): Node {
    return this.root;
  }

  /** A cached node whose name is still trusted. */
  named(path: string, now = Date.now()): Node | undefined {
    if (path === '/') return this.root;
    const n = this.byPath.get(path);
    return n && now - n.namedAt < this.nameTtlMs ? n : undefined;
  }

  /** Fresh attributes of a path, if cached. */
  freshAttrs(path: string, now = Date.now()): Fattr | undefined {
    const n = path === '/' ? this.root : this.byPath.get(path);
    return n && this.attrsValid(n, now) && now - n.namedAt < this.nameTtlMs + this.attrTtlMs ? n.attrs : undefined;
  }

  /** Whether a node's attributes are recent and no change made here since has outdated them. */
  attrsValid(n: Node, now = Date.now()): boolean {
    if (!n.attrs || now - n.attrsAt >= this.attrTtlMs) return false;
    const seq = n.attrsSeq ?? 0;
    return seq >= this.allStaleBefore && seq > (this.changed.get(n.handle.toString('hex')) ?? 0);
  }

  set(path: string, handle: Buffer, attrs?: Fattr): Node {
    const now = Date.now();
    if (path === '/') {
      if (attrs) Object.assign(this.root, { attrs, attrsAt: now, attrsSeq: this.seq++ });
      return this.root;
    }
    const n: Node = { handle, attrs, attrsAt: attrs ? now : 0, attrsSeq: this.seq++, namedAt: now };
    this.byPath.set(path, n);
    this.trim();
    return n;
  }

  /** Records attributes the server returned for a path (post-op attributes of any call). */
  setAttrs(path: string, attrs: Fattr | undefined): void {
    if (!attrs) return;
    const n = path === '/' ? this.root : this.byPath.get(path);
    if (n) {
      n.attrs = attrs;
      n.attrsAt = Date.now();
      n.attrsSeq = this.seq++;
    }
  }

  /** Outdates the attributes of every path naming this handle (hard links share them); O(1) per call. */
  staleAttrsOf(handle: Buffer): void {
    if (this.changed.size >= 100_000) {
      this.changed.clear();
      this.allStaleBefore = this.seq;
    }
    this.changed.set(handle.toString('hex'), this.seq++);
  }

  staleAttrs(path: string): void {
    const n = path === '/' ? this.root : this.byPath.get(path);
    if (n) n.attrsAt = 0;
  }

  /** Forgets a path and everything below it. */
  drop(path: string): void {
    this.byPath.delete(path);
    const prefix = path === '/' ? '/' : `${path}/`;
    for (const key of [...this.byPath.keys()]) if (key.startsWith(prefix)) this.byPath.delete(key);
  }

  /** After a rename: the node and everything below it now live under `to`. */
  move(from: string, to: string): void {
    this.drop(to);
    const prefix = `${from}/`;
    for (const [key, n] of [...this.byPath.entries()]) {
      if (key === from) {
        this.byPath.delete(key);
        this.byPath.set(to, { ...n, attrsAt: 0, namedAt: Date.now() });
      } else if (key.startsWith(prefix)) {
        this.byPath.delete(key);
        this.byPath.set(to + key.slice(from.length), n);
      }
    }
  }

  /** Keeps memory bounded in trees with millions of names: old entries go first. */
  private trim(): void {
    if (this.byPath.size <= 200_000) return;
    let n = 0;
    for (const key of this.byPath.keys()) {
      this.byPath.delete(key);
      if (++n >= 50_000) break;
    }
  }
}

export function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}
