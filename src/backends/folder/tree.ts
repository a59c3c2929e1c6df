import type { RootAttributes, ServerCopyKind } from '../types';

/**
 * What a failing call was doing, for its error: the text after "backend <name>: " (e.g. "cannot
 * write volume.json of volume v") and the volume it concerns.
 */
export interface Op {
  what: string;
  volume?: string;
  /** The request's deadline: the call stops waiting, and resets its connection, when it aborts. */
  signal?: AbortSignal;
}

export type EntryKind = 'folder' | 'file' | 'other';

export interface TreeEntry {
  name: string;
  kind: EntryKind;
}

/**
 * The control half of a folder backend: a few primitives on paths below the backend's root, each
 * in the backend's own protocol (fs calls, SFTP, NFSv3). Paths are relative, '/'-separated, ""
 * for the root itself. Every method fails with a NetvolError whose text is "backend <name>:
 * <op.what>: <why>" within the backend's timeout; "missing" and "exists" are answers, not errors,
 * where the method says so. Everything else a backend does on its folders (the probe at open, the
 * trash, atomic writes, hidden names, the exists rule of renames) is written once, in
 * FolderBackend.
 */
export interface Tree {
  /** Connects if there is a server, creates the root when it is missing, and checks it is a folder. */
  open(): Promise<void>;
  close(): Promise<void>;
  /** Where `path` is, for messages, e.g. "/srv/volumes/v on host:22" or "volumes/v in export /x". */
  describe(path: string): string;
  /** The entries of a folder; undefined when it does not exist. */
  list(op: Op, path: string): Promise<TreeEntry[] | undefined>;
  /** What `path` is; undefined when nothing has that name. */
  kind(op: Op, path: string): Promise<EntryKind | undefined>;
  /** Creates a folder; false, changing nothing, when the name exists. */
  mkdir(op: Op, path: string, mode: number): Promise<boolean>;
  /** A file's bytes; undefined when the file or its folder does not exist. */
  read(op: Op, path: string): Promise<Buffer | undefined>;
  /**
   * Creates `path` holding `data` only if nothing has that name, atomically on the server (O_EXCL,
   * SFTP CREAT|EXCL, NFS GUARDED CREATE): false when it exists. The data is durable when this
   * returns; a file whose data could not be written is removed again.
   */
  create(op: Op, path: string, data: Buffer, mode: number): Promise<boolean>;
  /** Renames a file or folder; a file replaces an existing file at `to` atomically. A missing `from` fails with NOT_FOUND. */
  rename(op: Op, from: string, to: string): Promise<void>;
  /** Removes a file; succeeds when it (or its folder) is already gone. */
  remove(op: Op, path: string): Promise<void>;
  /** Removes a folder and everything below it; succeeds when it is already gone. Runs in the background, for as long as it takes. */
  removeTree(op: Op, path: string): Promise<void>;
  /** Applies owner and mode; unset fields stay as they are. */
  setAttributes(op: Op, path: string, attrs: RootAttributes): Promise<void>;
  /** Bytes used below `path`: allocated, or the sum of sizes where the server reports no blocks. */
  usedBytes(op: Op, path: string): Promise<number>;
  /** Bytes free for new data on the root's filesystem (statvfs). */
  freeBytes(op: Op): Promise<number>;
  /** For a tree on this host's own disk: the local path of `path` (its volumes need no data path). */
  hostPath?(path: string): string;

  // ---- clone: server-side copy (optional) ------------------------------------------------------
  /**
   * Copies the file or folder `from` to `to` on the server (see Backend.copyWithin): for a folder,
   * its contents into the existing empty folder `to`; for a file, a new file `to`. Undefined, leaving
   * nothing behind, when it cannot copy it that way (`cheapOnly`: no reflink). No per-call timeout:
   * it runs until done or until `op.signal` aborts, which stops it and removes what it wrote.
   */
  copy?(op: Op, from: string, to: string, how: { folder: boolean; cheapOnly: boolean }): Promise<ServerCopyKind | undefined>;
}
