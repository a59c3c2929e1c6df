import { promises as fs } from 'node:fs';
import path from 'node:path';
import { tempName, IMAGE_FILE } from '../backends';
import { isNetvolError, NetvolError, wrapError } from '../errors';
import { copyImageFile, freeze, Freeze, imageBehind, mountSnapshot, reflinksIn } from '../quota';
import { ioCounters } from '../system';
import type { BackupOptions, BackupStream, VolumeHold } from './admin-api';
import type { DriverParts } from './operations';
import { createArgs, hasXattrs, spawnTar } from './tar';

/** The longest an image stays frozen for a point-in-time copy (the reflink takes well under a second). */
const SNAPSHOT_FREEZE_MS = 15_000;
/** How long the estimate of a directory volume's size may take before the backup starts without one. */
const ESTIMATE_MS = 10_000;

/**
 * `netvolctl backup`: a tar stream of a volume, taken under an admin hold (so Remove refuses
 * meanwhile). How consistent it is depends on what the backend can do cheaply:
 * - an image volume whose image lies on this host's disk, on a filesystem with reflinks: frozen
 *   only while the image is reflinked to a snapshot next to it; the snapshot is mounted read-only
 *   and archived, then removed — point in time;
 * - `consistent`: an image volume is frozen for the whole run (writers wait) — point in time;
 * - otherwise the live filesystem is read, and the answer says it is not point in time.
 * Everything taken (freeze, snapshot, hold) is given back when tar ends, fails or is killed.
 */
export async function startBackup(p: DriverParts, hold: (name: string, purpose: string) => Promise<VolumeHold>, name: string, opts: BackupOptions): Promise<BackupStream> {
  const h = await hold(name, 'backup');
  const undo: Array<() => Promise<void>> = [() => h.release()];
  const cleanup = async (): Promise<void> => {
    for (const step of undo.reverse()) await step().catch((err: Error) => p.log.warn('a step of undoing a backup failed', { volume: name, error: err.message }));
    undo.length = 0;
  };
  try {
    const estimatedBytes = await estimate(p, h);
    let dir = h.mountpoint;
    let method: BackupStream['method'] = 'live';
    let note: string | undefined;
    let frozen: Freeze | undefined;
    if (h.layout === 'image') {
      const backend = p.pool.find(h.backend);
      const image = (await imageBehind(h.mountpoint).catch(() => undefined))?.file;
      if (opts.consistent) {
        frozen = await freeze(h.mountpoint, opts.maxFreezeMs);
        undo.push(() => frozen!.thaw());
        method = 'frozen';
      } else if (backend && !backend.capabilities.networked && image && !(await reflinksIn(path.dirname(image), [tempName(IMAGE_FILE), tempName(IMAGE_FILE)]))) {
        note = `the filesystem of backend ${h.backend} has no reflinks, so no snapshot can be taken in constant time`;
      } else if (backend && !backend.capabilities.networked && image) {
        const snapshot = await snapshotOf(p, name, h, image).catch((err: Error) => {
          note = `no point-in-time snapshot (${err.message})`;
          return undefined;
        });
        if (snapshot) {
          undo.push(snapshot.remove);
          dir = snapshot.dir;
          method = 'snapshot';
        }
      } else {
        note = `backend ${h.backend} cannot copy an image in constant time`;
      }
    } else {
      note = 'a directory volume cannot be frozen';
    }
    const out = opts.output;
    const tar = spawnTar(createArgs(dir, await hasXattrs(dir), h.layout === 'image' ? ['./lost+found'] : [], out?.zstd === true), { stdout: out?.fd });
    const finished = (async () => {
      const exit = await tar.exited;
      const thawedEarly = frozen?.expired === true;
      await cleanup();
      if (thawedEarly) {
        throw new NetvolError('TIMEOUT', `volume ${name}: the backup did not finish within ${Math.round(opts.maxFreezeMs / 1000)} s of freeze (--max-freeze); the volume was thawed and the backup is not consistent: run it again with a longer --max-freeze, or without --consistent`, { volume: name });
      }
      // Exit 1: a file changed or vanished while it was read — expected of a live read, which says it is not point in time.
      if (exit.code === 0 || (exit.code === 1 && method === 'live')) return { warnings: exit.code === 1 ? [exit.firstLine] : [] };
      throw new NetvolError('COMMAND_FAILED', `volume ${name}: the backup failed: tar: ${exit.firstLine}`, { volume: name });
    })();
    // A failure is reported through `finished`; the route also awaits it, never leaving it unhandled.
    finished.catch(() => undefined);
    p.log.info('backup started', { volume: name, method, estimatedBytes, note, direct: out !== undefined });
    return {
      volume: name,
      stream: tar.child.stdout ?? undefined,
      written: () => ioCounters(tar.child.pid).written,
      estimatedBytes,
      pointInTime: method !== 'live',
      method,
      note,
      finished,
      abort: () => tar.kill(),
    };
  } catch (err) {
    await cleanup();
    if (isNetvolError(err) && err.volume) throw err;
    throw wrapError(err, 'COMMAND_FAILED', `volume ${name}: cannot start the backup`, name);
  }
}

/** What the archive will roughly hold: the filesystem's use for an image, the folder's for a directory (none when that takes too long). */
async function estimate(p: DriverParts, h: VolumeHold): Promise<number | undefined> {
  try {
    if (h.layout === 'image') return (await p.mounts.usage(h.mountpoint)).usedBytes;
    const backend = p.pool.find(h.backend);
    if (!backend) return undefined;
    return (await backend.usage(h.name, AbortSignal.timeout(ESTIMATE_MS))).usedBytes;
  } catch {
    return undefined;
  }
}

/**
 * The point-in-time copy of an image volume: frozen, reflinked to a snapshot next to the image
 * (a temporary name, so no listing takes it for a volume file), thawed — in that order, the thaw in
 * a finally and on a timer — then the snapshot mounted read-only.
 */
async function snapshotOf(p: DriverParts, name: string, h: VolumeHold, image: string): Promise<{ dir: string; remove: () => Promise<void> }> {
  const copy = path.join(path.dirname(image), tempName(IMAGE_FILE));
  const f = await freeze(h.mountpoint, SNAPSHOT_FREEZE_MS);
  const started = Date.now();
  try {
    await copyImageFile(image, copy, { reflinkOnly: true, signal: AbortSignal.timeout(SNAPSHOT_FREEZE_MS) });
  } finally {
    await f.thaw();
  }
  if (f.expired) {
    await fs.rm(copy, { force: true }).catch(() => undefined);
    throw new Error('the copy took longer than the freeze may last');
  }
  p.log.info('image frozen for a point-in-time copy', { volume: name, frozenMs: Date.now() - started });
  return mountSnapshot(copy, h.fs ?? 'ext4');
}
