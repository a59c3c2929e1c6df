import path from 'node:path';
import { DATA_DIR, IMAGE_FILE, type Backend } from '../backends';
import { isNetvolError, NetvolError } from '../errors';
import type { Logger } from '../log';
import { adoptImageCopy, copyImageFile, copyTree, withFrozen, withImageMounted } from '../quota';
import type { VolumeHold } from './admin-api';
import type { BackendPool } from './backends';
import { readMeta, type Catalog } from './catalog';
import { checkSameOptions, type Creation, refuseUnsupported } from './create';
import { mountCount, type Ledger } from './ledger';
import type { VolumeLocks } from './locks';
import type { Mounts } from './mounts';
import { validateVolumeName } from './names';
import { formatSize, parseVolumeOptions, type VolumeSpec } from './options';

/** How a clone's data was made. */
export type CloneMethod = 'reflink' | 'server copy' | 'streamed image' | 'streamed files';

/** What `netvolctl clone` (and the log of a Create with -o from) reports. */
export interface CloneResult {
  name: string;
  source: string;
  backend: string;
  layout: 'directory' | 'image';
  sizeBytes?: number;
  method: CloneMethod;
  /** The copy shows SRC as it was at one instant (frozen, or not in use); false: files copied while being written. */
  pointInTime: boolean;
  /** The volume existed already as a clone of the source with these options: nothing was copied. */
  existed?: boolean;
  durationMs: number;
  note?: string;
}

/** Bytes copied so far and bytes to copy (an estimate: what SRC uses), for a progress bar. */
export interface CloneProgress {
  doneBytes: number;
  totalBytes: number;
}

export interface CloneRequest {
  source: string;
  /** The -o options besides from: size (grow only), backend, uid, gid, mode, onRemove, fs (must match). */
  opts: Record<string, unknown>;
  /** Freeze an in-use image volume for the whole copy when no constant-time copy is possible. */
  consistent?: boolean;
  progress?: (p: CloneProgress) => void;
  /** Ends the copy (and undoes the clone) when it aborts: netvolctl was stopped. */
  signal?: AbortSignal;
}

/** How much of a Create's budget is kept for undoing a copy cut off by it. */
const CREATE_UNDO_MARGIN_MS = 20_000;
/** netvolctl clone runs under the admin API, which dockerd does not wait for: a generous bound only. */
export const ADMIN_CLONE_BUDGET_MS = 12 * 3600_000;
const PROGRESS_EVERY_MS = 1000;

interface CloneParts {
  pool: BackendPool;
  ledger: Ledger;
  catalog: Catalog;
  locks: VolumeLocks;
  creation: Creation;
  mounts: Mounts;
  defaultBackend: string;
  hold(name: string, purpose: string): Promise<VolumeHold>;
  log: Logger;
}

/**
 * A new, independent volume with another's content and options (`-o from=SRC` on Create, and
 * `netvolctl clone`). The source is held mounted for the copy (so it cannot be removed meanwhile)
 * and the new volume is made by Creation exactly as an empty one would be — atomic folder, pending
 * marker, undo on failure — with the copy in place of mkfs. The copy, cheapest first:
 * - a reflink on the backend (Backend.copyWithin, cheapOnly) — constant time; an image in use is
 *   frozen only for that instant, so the copy is point-in-time;
 * - an image that nobody else uses (or with `consistent`): frozen, then copied on the server
 *   (copy-data) or streamed through this host as one file — point-in-time;
 * - an image in use, without a constant-time copy: its live files are copied into a new image —
 *   not point-in-time, and the result says so;
 * - a directory volume: copied on the server where it can be, else its files streamed with cp -a.
 */
export class Cloner {
  constructor(private readonly p: CloneParts) {}

  /** `docker volume create -o from=SRC`: inside DST's lock, within the Create's budget (`budgetMs` from the request's start). */
  async createFrom(name: string, opts: Record<string, unknown>, signal: AbortSignal, budgetMs: number): Promise<void> {
    const source = validateSource(name, opts.from);
    const rest = { ...opts };
    delete rest.from;
    const started = Date.now();
    const limitMs = Math.max(budgetMs - CREATE_UNDO_MARGIN_MS, 1000);
    const tooSlow = new NetvolError(
      'TIMEOUT',
      `volume ${name}: copying volume ${source} did not finish within ${Math.round(limitMs / 1000)} s, about as long as Docker waits for a Create; nothing of ${name} was kept. Clone it with \`netvolctl clone ${source} ${name}\`, which has no such limit, then use it as usual`,
      { volume: name },
    );
    const copy = new AbortController();
    const timer = setTimeout(() => copy.abort(tooSlow), Math.max(limitMs - (Date.now() - started), 0));
    const onAbort = (): void => copy.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const result = await this.cloneLocked(name, { source, opts: rest }, copy.signal);
      this.p.log.info(result.existed ? 'clone exists already with these options; nothing copied' : 'cloned volume', { ...result });
    } catch (err) {
      if (copy.signal.reason === tooSlow) throw tooSlow;
      throw err;
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** `netvolctl clone SRC DST`: takes DST's lock with a generous budget, since no dockerd waits for it. */
  async clone(name: unknown, request: CloneRequest): Promise<CloneResult> {
    const dst = validateVolumeName(name);
    const source = validateSource(dst, request.source);
    return this.p.locks.run(dst, (signal) => this.cloneLocked(dst, { ...request, source }, request.signal ? AbortSignal.any([signal, request.signal]) : signal), 'create', ADMIN_CLONE_BUDGET_MS);
  }

  /** With DST's lock held. */
  private async cloneLocked(dst: string, request: CloneRequest, signal: AbortSignal): Promise<CloneResult> {
    const started = Date.now();
    const { source } = request;
    if (source === dst) throw new NetvolError('INVALID_OPTION', `volume ${dst}: cannot clone a volume onto itself: give another name for the clone`, { volume: dst });
    const explicit = parseExplicit(dst, request.opts, this.p.defaultBackend);

    // A re-sent Create: the clone exists with the same options; nothing is copied again.
    const existing = await this.p.catalog.lookup(dst, true);
    if (existing?.meta) {
      const have = existing.meta;
      if (have.clonedFrom !== source) {
        throw new NetvolError(
          'OPTIONS_CONFLICT',
          `volume ${dst} already exists${have.clonedFrom ? ` as a clone of ${have.clonedFrom}` : ''}, not as a clone of ${source}: remove it first, or choose another name for the clone`,
          { volume: dst },
        );
      }
      checkSameOptions(dst, have, { ...have.spec, ...explicit.overrides });
      return { name: dst, source, backend: have.spec.backend, layout: have.spec.layout, sizeBytes: have.spec.sizeBytes, method: 'reflink', pointInTime: true, existed: true, durationMs: Date.now() - started, note: 'the clone existed already; nothing was copied' };
    }
    if (existing) throw this.p.catalog.unavailable(existing);

    const found = await this.p.catalog.lookup(source);
    if (!found) throw new NetvolError('NOT_FOUND', `volume ${dst}: cannot clone volume ${source}: it was not found on any netvol backend (${this.p.pool.names().join(', ')}); check the name with \`netvolctl ls\``, { volume: dst });
    if (!found.meta) throw this.p.catalog.unavailable(found);
    const srcSpec = found.meta.spec;
    const spec = cloneSpec(dst, source, srcSpec, explicit);
    refuseUnsupported(dst, spec, this.p.pool.configured(spec.backend, dst));
    const dstBackend = await this.p.pool.open(spec.backend, dst);
    const srcBackend = await this.p.pool.open(found.backend, source);
    const onBackend = await this.p.pool.bounded(readMeta(dstBackend, dst), `looking up volume ${dst}`, dst);
    if (onBackend?.retained) {
      throw new NetvolError('OPTIONS_CONFLICT', `volume ${dst}: backend ${dstBackend.name} holds retained data of an earlier volume with this name: a clone cannot adopt it; choose another name, or create ${dst} without from to adopt the data`, { volume: dst });
    }

    const out: Partial<CloneResult> = {};
    await this.p.creation.makeNew(dstBackend, dst, spec, signal, {
      from: source,
      fill: () => this.fill({ dst, source, spec, srcSpec, srcBackend, dstBackend, attrs: explicit.attrs, consistent: request.consistent === true, progress: request.progress, signal, out }),
    });
    const result: CloneResult = {
      name: dst,
      source,
      backend: dstBackend.name,
      layout: spec.layout,
      sizeBytes: spec.sizeBytes,
      method: out.method as CloneMethod,
      pointInTime: out.pointInTime === true,
      durationMs: Date.now() - started,
      note: out.note,
    };
    return result;
  }

  /** Copies SRC's data into DST's new, empty folder (Creation undoes the folder if this fails). */
  private async fill(c: FillContext): Promise<void> {
    const hold = await this.p.hold(c.source, 'clone');
    let dstAttached = false;
    const dstFolder = async (): Promise<string> => {
      const folder = await this.p.pool.bounded(c.dstBackend.attach(c.dst, c.signal), `attaching volume ${c.dst}`, c.dst);
      dstAttached = true;
      return folder;
    };
    const stopProgress = this.reportProgress(c, hold);
    try {
      const record = this.p.ledger.get(c.source);
      // Our own hold is one mount: any other is a container (or another admin operation) using it.
      const inUse = mountCount(record?.mounts ?? {}) > 1;
      if (c.srcSpec.layout === 'image') await this.fillImage(c, hold, inUse, dstFolder);
      else await this.fillDirectory(c, hold, inUse, dstFolder);
    } finally {
      stopProgress();
      if (dstAttached) await this.p.pool.bounded(c.dstBackend.detach(c.dst), `detaching volume ${c.dst}`, c.dst).catch((err: Error) => this.p.log.warn('cannot detach the clone after copying', { volume: c.dst, error: err.message }));
      await hold.release().catch((err: Error) => this.p.log.warn('cannot release the hold on the clone source', { volume: c.source, error: err.message }));
    }
  }

  private async fillImage(c: FillContext, hold: VolumeHold, inUse: boolean, dstFolder: () => Promise<string>): Promise<void> {
    const fsType = c.srcSpec.fs ?? 'ext4';
    const sameBackend = c.srcBackend === c.dstBackend;
    const serverCopy = sameBackend ? c.srcBackend.copyWithin?.bind(c.srcBackend) : undefined;
    const request = (cheapOnly: boolean) => ({ from: c.source, to: c.dst, entry: IMAGE_FILE as 'data.img', cheapOnly, signal: c.signal });
    let copied = false;
    if (serverCopy) {
      // Frozen only for as long as a reflink takes.
      if ((await withFrozen(hold.mountpoint, () => serverCopy(request(true)), c.signal)) === 'reflink') {
        c.out.method = 'reflink';
        c.out.pointInTime = true;
        copied = true;
      }
    }
    if (!copied && (!inUse || c.consistent)) {
      // Nobody writes to it but this copy (or --consistent asked for it): frozen for the whole copy.
      await withFrozen(
        hold.mountpoint,
        async () => {
          if (serverCopy && (await serverCopy(request(false)))) {
            c.out.method = 'server copy';
            return;
          }
          const srcFolder = await this.p.pool.bounded(c.srcBackend.attach(c.source, c.signal), `attaching volume ${c.source}`, c.source);
          await copyImageFile(path.join(srcFolder, IMAGE_FILE), path.join(await dstFolder(), IMAGE_FILE), { signal: c.signal });
          c.out.method = 'streamed image';
        },
        c.signal,
      );
      c.out.pointInTime = true;
      copied = true;
    }
    if (copied) {
      // The copy is SRC's image: grow it, give it a root of its own and (xfs) a UUID of its own.
      const grows = (c.spec.sizeBytes ?? 0) > (c.srcSpec.sizeBytes ?? 0);
      const newRoot = c.attrs.uid !== undefined || c.attrs.gid !== undefined || c.attrs.mode !== undefined;
      if (grows || newRoot || fsType === 'xfs') await adoptImageCopy(path.join(await dstFolder(), IMAGE_FILE), fsType, { growTo: c.spec.sizeBytes, attrs: c.attrs }, c.signal);
      return;
    }
    // In use, and no constant-time copy: its live files into a new image. Not point-in-time.
    const file = path.join(await dstFolder(), IMAGE_FILE);
    await this.p.mounts.createImage(file, c.spec.sizeBytes as number, fsType, { uid: c.spec.uid, gid: c.spec.gid, mode: c.spec.mode }, c.signal);
    await withImageMounted(file, fsType, (dir) => copyTree(hold.mountpoint, dir, c.signal), c.signal);
    if (c.attrs.uid !== undefined || c.attrs.gid !== undefined || c.attrs.mode !== undefined) await adoptImageCopy(file, fsType, { attrs: c.attrs }, c.signal);
    c.out.method = 'streamed files';
    c.out.pointInTime = false;
    c.out.note = `volume ${c.source} was in use and backend ${c.srcBackend.name} has no constant-time copy, so its files were copied while containers could write to them: the clone is not a point-in-time copy; use --consistent to freeze ${c.source} for the whole copy`;
  }

  private async fillDirectory(c: FillContext, hold: VolumeHold, inUse: boolean, dstFolder: () => Promise<string>): Promise<void> {
    const sameBackend = c.srcBackend === c.dstBackend;
    const kind = sameBackend && c.srcBackend.copyWithin ? await c.srcBackend.copyWithin({ from: c.source, to: c.dst, entry: DATA_DIR, cheapOnly: false, signal: c.signal }) : undefined;
    if (kind) c.out.method = kind === 'reflink' ? 'reflink' : 'server copy';
    else {
      await copyTree(hold.mountpoint, path.join(await dstFolder(), DATA_DIR), c.signal, { symlinkAttributes: c.dstBackend.capabilities.symlinkAttributes });
      c.out.method = 'streamed files';
    }
    if (c.attrs.uid !== undefined || c.attrs.gid !== undefined || c.attrs.mode !== undefined) {
      await this.p.pool.bounded(c.dstBackend.setDataAttributes(c.dst, c.attrs), `setting owner and mode of volume ${c.dst}`, c.dst);
    }
    const shared = c.srcBackend.capabilities.sharedAcrossHosts;
    c.out.pointInTime = !inUse && !shared;
    if (!c.out.pointInTime) {
      c.out.note = `volume ${c.source} is a directory volume${inUse ? ' in use' : ' on a shared backend'}: its files were copied while they could change, so the clone is not a point-in-time copy (only image volumes can be frozen)`;
    }
  }

  /** Every second while the copy runs: what DST uses on its backend against what SRC uses. */
  private reportProgress(c: FillContext, hold: VolumeHold): () => void {
    if (!c.progress) return () => undefined;
    const report = c.progress;
    let total = 0;
    let stopped = false;
    const tick = async (): Promise<void> => {
      if (!total) total = await this.p.mounts.usage(hold.mountpoint).then((u) => u.usedBytes, () => 0);
      const done = await c.dstBackend.usage(c.dst).then((u) => u.usedBytes, () => 0);
      if (!stopped) report({ doneBytes: Math.min(done, total || done), totalBytes: total });
    };
    const timer = setInterval(() => void tick().catch(() => undefined), PROGRESS_EVERY_MS);
    void tick().catch(() => undefined);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }
}

interface FillContext {
  dst: string;
  source: string;
  spec: VolumeSpec;
  srcSpec: VolumeSpec;
  srcBackend: Backend;
  dstBackend: Backend;
  /** Owner and mode given for the clone, applied over SRC's. */
  attrs: { uid?: number; gid?: number; mode?: number };
  consistent: boolean;
  progress?: (p: CloneProgress) => void;
  signal: AbortSignal;
  out: Partial<CloneResult>;
}

function validateSource(dst: string, from: unknown): string {
  try {
    return validateVolumeName(from);
  } catch (err) {
    throw new NetvolError('INVALID_OPTION', `volume ${dst}: invalid value for option "from": ${isNetvolError(err) ? err.message : String(err)}`, { volume: dst });
  }
}

interface Explicit {
  /** Spec fields given explicitly with the clone. */
  overrides: Partial<VolumeSpec>;
  attrs: { uid?: number; gid?: number; mode?: number };
  fs?: string;
}

/** The options given with a clone, parsed by the same allow-list as Create's; only those given override SRC's. */
function parseExplicit(dst: string, opts: Record<string, unknown>, defaultBackend: string): Explicit {
  const rest = { ...opts };
  delete rest.from;
  const fs = rest.fs;
  delete rest.fs;
  if (fs !== undefined && fs !== 'ext4' && fs !== 'xfs') throw new NetvolError('INVALID_OPTION', `volume ${dst}: invalid value for option "fs": must be ext4 or xfs`, { volume: dst });
  const parsed = parseVolumeOptions(dst, rest, defaultBackend);
  const overrides: Partial<VolumeSpec> = {};
  const given = (k: string): boolean => Object.prototype.hasOwnProperty.call(rest, k);
  if (given('backend')) overrides.backend = parsed.backend;
  if (given('size')) overrides.sizeBytes = parsed.sizeBytes;
  if (given('uid')) overrides.uid = parsed.uid;
  if (given('gid')) overrides.gid = parsed.gid;
  if (given('mode')) overrides.mode = parsed.mode;
  if (given('onRemove')) overrides.onRemove = parsed.onRemove;
  if (fs !== undefined) overrides.fs = fs as 'ext4' | 'xfs';
  return { overrides, attrs: { uid: overrides.uid, gid: overrides.gid, mode: overrides.mode }, fs: fs as string | undefined };
}

/** DST's spec: SRC's layout, fs, owner, mode and onRemove, and its backend, unless given; a size may only grow. */
export function cloneSpec(dst: string, source: string, src: VolumeSpec, explicit: Explicit): VolumeSpec {
  const o = explicit.overrides;
  if (o.sizeBytes !== undefined) {
    if (src.layout !== 'image' || src.sizeBytes === undefined) {
      throw new NetvolError('INVALID_OPTION', `volume ${dst}: option "size" cannot be used when cloning ${source}: it is a directory volume, which has no size; clone it without size`, { volume: dst });
    }
    if (o.sizeBytes < src.sizeBytes) {
      throw new NetvolError(
        'INVALID_OPTION',
        `volume ${dst}: size=${formatSize(o.sizeBytes)} is smaller than volume ${source} (${formatSize(src.sizeBytes)}); a clone can only keep or grow the size: give size=${formatSize(src.sizeBytes)} or more, or leave size out`,
        { volume: dst },
      );
    }
  }
  if (o.fs !== undefined && o.fs !== src.fs) {
    throw new NetvolError('INVALID_OPTION', `volume ${dst}: option fs=${o.fs} differs from volume ${source} (${src.fs ?? 'a directory volume, no fs'}); a clone keeps its source's filesystem: leave fs out`, { volume: dst });
  }
  return {
    backend: o.backend ?? src.backend,
    layout: src.layout,
    sizeBytes: o.sizeBytes ?? src.sizeBytes,
    fs: src.fs,
    uid: o.uid ?? src.uid,
    gid: o.gid ?? src.gid,
    mode: o.mode ?? src.mode,
    onRemove: o.onRemove ?? src.onRemove,
  };
}
