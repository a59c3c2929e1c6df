/**
 * What the driver offers the admin API (admin/) for operations Docker has no verb for, declared
 * here so imports run admin → driver, as plugin/ uses view.ts. One method per operation; each is
 * implemented in its own file of this folder and wired in operations.ts.
 */

/** Where a volume is in its life, as `netvolctl ls` shows it. */
export type VolumeState = 'live' | 'retained' | 'archived' | 'unreadable';

/** One volume (or retained or archived one) as the admin API describes it. */
export interface VolumeDetails {
  name: string;
  backend: string;
  state: VolumeState;
  /** The folder on the backend (differs from name for archives). */
  folder: string;
  layout?: 'directory' | 'image';
  fs?: 'ext4' | 'xfs';
  sizeBytes?: number;
  usedBytes?: number;
  availableBytes?: number;
  onRemove?: 'delete' | 'retain' | 'archive';
  createdAt?: string;
  createdBy?: string;
  /** Hosts that have it attached now (this host included), from the heartbeats on shared backends. */
  attachedOn: string[];
  /** Image volumes on shared backends: the host holding its single-writer lease, null when none. */
  leaseHolder?: string | null;
  /** This host: whether its attachment works (absent when not attached here). */
  healthy?: boolean;
  /** This host's mount count and mountpoint. */
  mountCount: number;
  mountpoint: string;
  /** Why the backend could not be read, for state 'unreadable'. */
  error?: string;
  /** The full Status map of `docker volume inspect` (live volumes). */
  status?: Record<string, unknown>;
}

/**
 * A volume held mounted on this host for an admin operation (backup, clone, resize): counted like a
 * container's mount under a mount ID of its own, so Remove refuses meanwhile and a restart releases
 * holds whose daemon died (see holds.ts).
 */
export interface VolumeHold {
  name: string;
  backend: string;
  layout: 'directory' | 'image';
  fs?: 'ext4' | 'xfs';
  /** Where the volume's data is mounted on this host. */
  mountpoint: string;
  release(): Promise<void>;
}

/** What `netvolctl resize` did (see resize.ts). */
export interface ResizeResult {
  name: string;
  backend: string;
  fs: 'ext4' | 'xfs';
  oldSizeBytes: number;
  newSizeBytes: number;
  /**
   * 'online': grown while mounted on this host (its containers kept using it); 'offline': no host
   * had it mounted, so it was mounted here for the resize only; 'unchanged': it already had that size.
   */
  mode: 'online' | 'offline' | 'unchanged';
  /** The filesystem's size afterwards as statfs reports it (its own bookkeeping excluded); absent when unchanged. */
  filesystemBytes?: number;
  durationMs: number;
}

/** A volume as the metrics name it. */
export interface VolumeRef {
  name: string;
  backend: string;
  layout: 'directory' | 'image';
}

/** One volume as a metrics sweep measured it; a field is absent when it could not be measured. */
export interface VolumeSample extends VolumeRef {
  /** An image volume's size; a folder volume's used plus available bytes. */
  capacityBytes?: number;
  usedBytes?: number;
  availableBytes?: number;
  /** Of the filesystem the volume is mounted from on this host (only when mounted here). */
  inodes?: number;
  inodesFree?: number;
  /** Whether this host's attachment works (only when attached here). */
  healthy?: boolean;
  /** Why it could not be measured. */
  error?: string;
}

/** What one metrics sweep found: every live volume measured, every backend listed or not. */
export interface StatsSweep {
  volumes: VolumeSample[];
  backends: Array<{ name: string; up: boolean; error?: string }>;
}

/** The facts the metrics read (metrics/): a slow sweep for the background, cheap in-memory facts for each scrape. */
export interface StatsApi {
  /** Measures every live volume on every backend, `concurrency` at a time (every call bounded by the timeout). */
  sweepStats(concurrency: number, signal?: AbortSignal): Promise<StatsSweep>;
  /** The volumes this host has a record of (shown before a sweep finds them). */
  volumesHere(): VolumeRef[];
  /** This host's mount count of a volume and whether it holds its lease (in memory, cheap). */
  hostFacts(ref: VolumeRef): { mounts: number; leaseHeld?: boolean };
}

/** What `netvolctl gc` looks for besides what is always garbage (trash, orphans on this host, records of hosts long gone). */
export interface GcOptions {
  /** Remove what is found; otherwise only report. */
  apply: boolean;
  /** Archives archived longer ago than this are garbage; none when absent. */
  olderThanMs?: number;
  /** Retained volumes (removed with onRemove=retain) are garbage. */
  retained: boolean;
  /** A host's heartbeat must have stayed the same this long on this daemon's clock (and at least a lease) for its records to go. */
  hostAgeMs?: number;
}

export type GcKind = 'trash' | 'archive' | 'retained' | 'removal' | 'host' | 'mountpoint' | 'attachment' | 'loop' | 'backend';

/** One thing gc found; `state` says what became of it ('found' in a dry run). 'backend' items are backends gc could not read. */
export interface GcItem {
  kind: GcKind;
  backend?: string;
  volume?: string;
  /** The folder, file, mountpoint or loop device. */
  target: string;
  reason: string;
  state: 'found' | 'removed' | 'kept' | 'failed';
  error?: string;
}

export interface GcReport {
  applied: boolean;
  items: GcItem[];
}

/** `netvolctl backup`: how consistent it must be. */
export interface BackupOptions {
  /** Freeze an image volume for the whole run when no cheap snapshot exists (writers wait meanwhile). */
  consistent: boolean;
  /** The longest a freeze may last; past it the volume is thawed and the backup fails. */
  maxFreezeMs: number;
  /** Direct: tar writes the archive to this descriptor (the client's file) instead of `stream`, zstd-compressed with `zstd`. */
  output?: ArchiveFile;
}

/** A client's archive file the daemon opened for it (system/peer-files.ts): tar reads or writes it directly. */
export interface ArchiveFile {
  fd: number;
  zstd: boolean;
}

/** A backup being streamed: tar's output, and how it ends. */
export interface BackupStream {
  volume: string;
  /** tar's output; absent when it writes to BackupOptions.output. */
  stream?: import('node:stream').Readable;
  /** Bytes of archive tar has written so far (before compression), for a progress bar. */
  written(): number;
  /** Roughly how many bytes the archive will have (for a progress bar); absent when unknown. */
  estimatedBytes?: number;
  /** Whether the archive shows the volume at one instant ('snapshot', 'frozen') or read live. */
  pointInTime: boolean;
  method: 'snapshot' | 'frozen' | 'live';
  /** Why it is not point in time, when it is not. */
  note?: string;
  /** Resolves once tar has finished well and everything taken is given back; rejects when the archive is incomplete. */
  finished: Promise<{ warnings: string[] }>;
  /** The client went away: stop tar (finished then rejects). */
  abort(): void;
}

export interface RestoreOptions {
  /** Extract over a volume that is not empty. */
  force: boolean;
  /** Called once tar runs (the volume was accepted), with how many bytes of archive it has read so far. */
  started?: (read: () => number) => void;
}

export interface RestoreResult {
  volume: string;
  /** Bytes of archive read. */
  bytes: number;
}

export interface VerifyResult {
  volume: string;
  ok: boolean;
  differenceCount: number;
  /** tar's lines naming each difference (the first ones). */
  differences: string[];
}

export interface AdminApi extends StatsApi {
  /** Every volume on every backend: live, retained and archived; `measure` reads usage and health (slower). */
  listAll(measure: boolean): Promise<VolumeDetails[]>;
  /** One volume by name (a live one, else a retained one, else archives of it). */
  inspect(name: string): Promise<VolumeDetails>;
  /** Mounts the volume on this host for an admin operation until release(). */
  hold(name: string, purpose: string): Promise<VolumeHold>;
  /** Grows an image volume to `size` (e.g. "2G"), online where it is mounted here (resize.ts). */
  resize(name: string, size: unknown): Promise<ResizeResult>;
  /** netvolctl clone: a new volume `name` with the content and options of `request.source` (clone.ts). */
  clone(name: string, request: import('./clone').CloneRequest): Promise<import('./clone').CloneResult>;
  /** Finds (and with apply, removes) what nobody uses: see gc.ts. */
  gc(opts: GcOptions): Promise<GcReport>;
  /** Creates a volume as `docker volume create -d netvol -o …` would (restore --create). */
  create(name: string, options: Record<string, string>): Promise<void>;
  /** Starts a tar stream of the volume (see backup.ts). */
  backup(name: string, opts: BackupOptions): Promise<BackupStream>;
  /** Extracts a tar stream, or the client's archive file, into the volume (see restore.ts); `signal` aborts when the client goes away. */
  restore(name: string, input: import('node:stream').Readable | ArchiveFile, opts: RestoreOptions, signal: AbortSignal): Promise<RestoreResult>;
  /** Compares a tar stream with the volume's contents. */
  verify(name: string, input: import('node:stream').Readable, signal: AbortSignal): Promise<VerifyResult>;
}
