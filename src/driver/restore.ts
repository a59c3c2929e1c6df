import { fstatSync, promises as fs } from 'node:fs';
import type { Readable } from 'node:stream';
import { NetvolError } from '../errors';
import { ioCounters } from '../system';
import type { ArchiveFile, RestoreOptions, RestoreResult, VerifyResult, VolumeHold } from './admin-api';
import type { DriverParts } from './operations';
import { compareArgs, extractArgs, hasXattrs, spawnTar, TarRun } from './tar';

/** Entries a volume may hold and still count as empty: an image's lost+found, the userspace NFS mount's folder of unlinked files. */
const IGNORED_WHEN_EMPTY = new Set(['lost+found', '.netvol-unlinked']);
/** How many differences a verify reports (the count is always whole). */
const MAX_DIFFERENCES = 50;

type Hold = (name: string, purpose: string) => Promise<VolumeHold>;

/**
 * `netvolctl restore`: extracts a tar stream into a volume under an admin hold, as root keeping
 * owners, modes, links, holes, xattrs and ACLs. Refuses a volume that holds anything unless
 * `force` (then the archive is extracted over what is there). A truncated or unreadable archive,
 * or a client that goes away (`signal`), fails the restore: tar is killed and the error says the
 * volume is now partly restored.
 */
export async function restoreInto(p: DriverParts, hold: Hold, name: string, input: Readable | ArchiveFile, opts: RestoreOptions, signal: AbortSignal): Promise<RestoreResult> {
  const h = await hold(name, 'restore');
  try {
    if (!opts.force) {
      const entries = (await fs.readdir(h.mountpoint)).filter((e) => !IGNORED_WHEN_EMPTY.has(e));
      if (entries.length > 0) {
        throw new NetvolError(
          'IN_USE',
          `volume ${name} is not empty (it holds ${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', …' : ''}): restore into a new volume (--create) or an empty one, or pass --force to extract over its contents`,
          { volume: name },
        );
      }
    }
    const xattrs = await hasXattrs(h.mountpoint);
    let bytes = 0;
    let out: Awaited<TarRun['exited']>;
    if (isArchiveFile(input)) {
      // Direct: tar reads the client's file itself.
      const tar = spawnTar(extractArgs(h.mountpoint, xattrs, input.zstd), { stdin: input.fd });
      opts.started?.(() => ioCounters(tar.child.pid).read);
      out = await untilExit(tar, signal);
      bytes = fstatSync(input.fd).size;
    } else {
      // Counting starts the flow: from here to the pipe in feed() nothing may await, or bytes are lost.
      input.on('data', (c: Buffer) => (bytes += c.length));
      const tar = spawnTar(extractArgs(h.mountpoint, xattrs));
      opts.started?.(() => bytes);
      out = await feed(tar, input, signal);
    }
    if (signal.aborted) throw new NetvolError('COMMAND_FAILED', `volume ${name}: the restore was cut off before the whole archive arrived; the volume is partly restored: run the restore again with --force`, { volume: name });
    if (out.code !== 0) {
      throw new NetvolError('COMMAND_FAILED', `volume ${name}: the restore failed: tar: ${out.firstLine}; the volume may be partly restored: check the archive (tar -tf), then run the restore again with --force`, { volume: name });
    }
    p.log.info('restored volume', { volume: name, bytes });
    return { volume: name, bytes };
  } finally {
    await h.release().catch((err: Error) => p.log.warn('cannot release the hold of a restore', { volume: name, error: err.message }));
  }
}

/**
 * `netvolctl restore --verify`: GNU tar's compare (`tar -d`) of the same archive, sent again,
 * against the volume: contents byte for byte, sizes, modes, owners, mtimes, link targets. Any
 * difference is reported, none fixed.
 */
export async function verifyAgainst(p: DriverParts, hold: Hold, name: string, input: Readable, signal: AbortSignal): Promise<VerifyResult> {
  const h = await hold(name, 'verify');
  try {
    const tar = spawnTar(compareArgs(h.mountpoint, await hasXattrs(h.mountpoint)), { collectStdout: true });
    const out = await feed(tar, input, signal);
    if (signal.aborted) throw new NetvolError('COMMAND_FAILED', `volume ${name}: the verify was cut off before the whole archive arrived: run it again`, { volume: name });
    if (out.code !== 0 && out.code !== 1) throw new NetvolError('COMMAND_FAILED', `volume ${name}: the verify failed: tar: ${out.firstLine}`, { volume: name });
    const differences = [...out.stdout.split('\n'), ...out.stderr.split('\n')].map((l) => l.trim()).filter((l) => l && !/^tar: Exiting with failure status/.test(l));
    const ok = out.code === 0 && differences.length === 0;
    p.log.info('verified volume against an archive', { volume: name, ok, differences: differences.length });
    return { volume: name, ok, differenceCount: differences.length, differences: differences.slice(0, MAX_DIFFERENCES) };
  } finally {
    await h.release().catch((err: Error) => p.log.warn('cannot release the hold of a verify', { volume: name, error: err.message }));
  }
}

function isArchiveFile(input: Readable | ArchiveFile): input is ArchiveFile {
  return typeof (input as ArchiveFile).fd === 'number' && typeof (input as Readable).pipe !== 'function';
}

/** Waits for tar, killing it when `signal` aborts (the client went away). */
async function untilExit(tar: TarRun, signal: AbortSignal): ReturnType<() => TarRun['exited']> {
  const onAbort = () => tar.kill();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await tar.exited;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** Pipes `input` into tar's stdin; kills tar when `signal` aborts (the client went away) or the input fails. */
async function feed(tar: TarRun, input: Readable, signal: AbortSignal): ReturnType<() => TarRun['exited']> {
  input.once('error', () => tar.kill());
  input.pipe(tar.child.stdin!);
  const out = await untilExit(tar, signal);
  // tar may stop reading before the end (an end-of-archive marker, or it failed): drain the rest.
  input.unpipe(tar.child.stdin!);
  input.resume();
  return out;
}
