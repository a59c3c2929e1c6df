import type { Logger } from '../log';

/**
 * What a backend type can do, declared once in its registry entry (after rclone's fs.Features):
 * one flag per decision, read by the driver instead of asking which type a backend is. Optional
 * operations that only some types will have (a server-side copy for clone, growing a file in
 * place for resize) are to be optional methods of Backend, as fence() and statusFields() are:
 * present only where they exist. copyWithin (below, for clone) is the first of them.
 */
export interface BackendCapabilities {
  /** Data travels over a network: attachments can die with the network and need health checks. */
  networked: boolean;
  /**
   * Several hosts can reach the same volumes (Scope "global" under auto): the driver records every
   * host's attachments on the backend, keeps them alive with one heartbeat per host, and gives image
   * volumes one writer at a time.
   */
  sharedAcrossHosts: boolean;
  /** Volumes may use the image layout: `data.img`, loop-mounted (for a size quota) on the host using it. */
  imageVolumes: boolean;
  /** Renaming a file over an existing one replaces it atomically: metadata writes are never seen half done. */
  atomicRename: boolean;
  /**
   * Its data path sets a symlink's own owner and times (lchown, utimensat without following it).
   * False where such a call reaches the link's target instead (sshfs sends it as an SFTP SETSTAT of
   * the path, which the server follows: it fails for a dangling or absolute link and changes the
   * target of any other): a copy onto it must leave the attributes of links alone.
   */
  symlinkAttributes: boolean;
}

export interface BackendUsage {
  usedBytes: number;
  availableBytes: number;
}

export interface RootAttributes {
  uid?: number;
  gid?: number;
  mode?: number;
}

/**
 * 'attached': the attachment works. 'unreachable': its helper lives and its mount is there, but the
 * server does not answer right now; the helper reconnects by itself once it does, so it must not be
 * replaced (that would cut off the containers using it, and a new one could not reach the server
 * either). 'dead': the helper is gone or its connection is lost for good; attach() replaces it.
 * 'detached': nothing is attached.
 */
export type AttachmentHealth = 'attached' | 'unreachable' | 'detached' | 'dead';

/** What every backend instance is given by the registry. */
export interface BackendContext {
  /** The backend's name in the daemon config. */
  name: string;
  /** This host's id (config hostId, default the hostname): written into owner records. */
  hostId: string;
  /** A private folder on this host for the backend's attachments (mountpoints of sshfs, FUSE…). */
  workDir: string;
  /** Milliseconds any single backend call may take. */
  timeoutMs: number;
  logger: Logger;
}

/**
 * Storage, in storage's vocabulary: a backend knows folders and files, never Docker, mount IDs or
 * quotas. A volume is a folder `<root>/<name>/` holding small metadata files, and either `data/`
 * (directory layout) or `data.img` (image layout). Control calls never mount anything.
 *
 * Every method fails with a NetvolError within `timeoutMs` (BACKEND_UNAVAILABLE, BACKEND_AUTH,
 * PERMISSION, NO_SPACE, TIMEOUT…) whose text names the backend.
 *
 * `signal` is the deadline of the request the call serves: when it aborts, the call stops — its
 * subprocesses are killed, a request stuck on a connection is given up and the connection reset, a
 * half-made attachment is undone — and fails with TIMEOUT (or the error the abort caused) once
 * what it started has stopped.
 */
export interface Backend {
  readonly name: string;
  readonly type: string;
  readonly capabilities: BackendCapabilities;

  /** Connects and checks the configured path. Called once at daemon start; may be retried. */
  open(): Promise<void>;
  close(): Promise<void>;

  /** Names of the folders directly under the backend root (volumes and archives alike); names starting with a dot are never listed. */
  listFolders(signal?: AbortSignal): Promise<string[]>;
  /** Creates `<root>/<name>/` (and `data/` when `withDataDir`). Returns false, changing nothing, if the folder already existed. */
  makeFolder(name: string, withDataDir: boolean, signal?: AbortSignal): Promise<boolean>;
  /** Reads `<root>/<name>/<file>`; undefined if the file or folder does not exist. */
  readFile(name: string, file: string, signal?: AbortSignal): Promise<Buffer | undefined>;
  /** Writes `<root>/<name>/<file>` atomically (temporary file, then rename). */
  writeFile(name: string, file: string, data: Buffer, signal?: AbortSignal): Promise<void>;
  removeFile(name: string, file: string, signal?: AbortSignal): Promise<void>;
  /**
   * Creates `<root>/<name>/<file>` holding `data` only if no such file exists, atomically on the
   * server (O_EXCL, SFTP CREAT|EXCL, NFS GUARDED CREATE): of several hosts racing, exactly one gets
   * true. The content is written right after the create, so a reader may briefly see it empty.
   */
  createFile(name: string, file: string, data: Buffer, signal?: AbortSignal): Promise<boolean>;
  /** Names of the regular files directly in `<root>/<name>/` (no folders, no temporary files); [] if the folder does not exist. */
  listFiles(name: string, signal?: AbortSignal): Promise<string[]>;
  /** Removes `<root>/<name>/` and everything in it: gone from the root at once, its contents deleted in the background; succeeds if it is already gone. */
  removeFolder(name: string, signal?: AbortSignal): Promise<void>;
  /** Folders of removed volumes still being deleted (or whose deletion was cut short): trash names, never volumes. */
  listTrash?(signal?: AbortSignal): Promise<string[]>;
  /** Deletes one trash folder (a name listTrash returned) now, and waits for it; succeeds if it is gone already. */
  removeTrash?(trash: string, signal?: AbortSignal): Promise<void>;
  /** Renames `<root>/<from>/` to `<root>/<to>/` (used to archive a volume); refuses (OPTIONS_CONFLICT) when `<to>` exists. */
  renameFolder(from: string, to: string, signal?: AbortSignal): Promise<void>;
  /** Applies owner and mode to `<root>/<name>/data/`. */
  setDataAttributes(name: string, attrs: RootAttributes, signal?: AbortSignal): Promise<void>;
  /** Bytes used below `<root>/<name>/` and bytes free on the backend's filesystem. */
  usage(name: string, signal?: AbortSignal): Promise<BackendUsage>;
  /** Bytes free for new data on the backend's filesystem. */
  freeBytes(signal?: AbortSignal): Promise<number>;

  /**
   * Makes `<root>/<name>/` reachable on this host and returns its local path. Idempotent: an
   * attachment left by an earlier netvol process is found and reused. Long-lived helpers (sshfs,
   * FUSE servers) run as their own processes so they outlive the daemon.
   */
  attach(name: string, signal?: AbortSignal): Promise<string>;
  /** Undoes attach(); succeeds if nothing is attached. */
  detach(name: string, signal?: AbortSignal): Promise<void>;
  /** The local path attach() gives for the volume, whether or not it is attached now (what a crash may have left there is found by it). */
  attachedPath?(name: string): string;
  /**
   * Fencing: stops this host's data path of the volume at once, without flushing — kills the helper
   * process (sshfs, FUSE server) and resets its TCP connections so that no byte this host had
   * buffered can reach the server afterwards, even if the network comes back. Processes using the
   * mount then get I/O errors. Succeeds if nothing is attached. Backends whose data path is this
   * host's own disk do not have it.
   */
  fence?(name: string): Promise<void>;
  /** Whether this host has the volume attached, and whether that attachment still works. */
  health(name: string, signal?: AbortSignal): Promise<AttachmentHealth>;
  /** Optional facts about the data path shown in the volume's Status (e.g. which mounter serves it). No secrets. */
  statusFields?(name: string): Promise<Record<string, string | number | boolean>>;

  // ---- clone: server-side copy (optional) ------------------------------------------------------
  /**
   * Copies `<root>/<from>/<entry>` to `<root>/<to>/<entry>` on the backend's own storage, without
   * the bytes passing through this host's data path: a reflink where the filesystem has them
   * (constant time, shares blocks until either side writes), else a copy made by the server (e.g.
   * OpenSSH's copy-data SFTP extension). `<root>/<to>/` exists; for `data` its empty `data/` does
   * too, and the copy keeps owners, modes, links and extended attributes. With `cheapOnly`, only a
   * constant-time copy (a reflink) is made. Answers how the copy was made, or undefined — leaving
   * nothing behind — when this backend cannot copy this entry that way (the caller then streams it).
   * Runs for as long as the copy takes (no per-call timeout) until `signal` aborts, which stops it
   * and removes what it had written. Absent on backends that can never copy on the server.
   */
  copyWithin?(request: ServerCopyRequest): Promise<ServerCopyKind | undefined>;
}

/** What to copy within a backend (see Backend.copyWithin). */
export interface ServerCopyRequest {
  from: string;
  to: string;
  /** The image (`data.img`) or the data folder (`data`) of a volume. */
  entry: 'data.img' | 'data';
  /** Only a constant-time copy: a reflink, never a byte-by-byte one. */
  cheapOnly: boolean;
  signal?: AbortSignal;
}

/** 'reflink': blocks shared, constant time, a point-in-time copy. 'server': every byte copied by the server. */
export type ServerCopyKind = 'reflink' | 'server';
// ---- end clone ------------------------------------------------------------------------------

/** A backend type as data: its name, option schema and constructor (after rclone's fs.RegInfo). */
export interface BackendType<Options> {
  type: string;
  description: string;
  /** What every backend of this type can do; its instances carry the same object. */
  capabilities: Readonly<BackendCapabilities>;
  /** zod schema of the backend's config block (without `type`), strict: unknown keys are refused. */
  optionsSchema: import('zod').ZodType<Options>;
  /** Secret fields of the options, registered with the redactor at load. */
  secrets: (options: Options) => Array<string | undefined>;
  create(options: Options, ctx: BackendContext): Backend;
}
