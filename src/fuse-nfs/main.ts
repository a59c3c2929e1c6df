#!/usr/bin/env node
/**
 * netvol's userspace NFS data path: one process per attached volume, serving a FUSE mount of one
 * folder of an NFSv3 export through the project's client library. The nfs backend starts it in
 * its own session so it outlives the daemon, and finds it again by its argv.
 *
 *   node dist/fuse-nfs/main.js --server H --export /srv --path vols/v1 --mountpoint /mnt/v1
 *       [--port N] [--mount-port N] [--uid N] [--gid N] [--fsname NAME]
 *       [--call-timeout-ms N]   one call's deadline, reconnects included, before it is sent again (15000)
 *       [--give-up-after-ms N]  fail calls with EIO after an outage this long (0: never, like a hard NFS mount)
 *
 * Output: JSON lines on stdout. Exit codes: 0 after an unmount, 2 cannot reach or mount the export,
 * 3 the path is missing, 4 the FUSE mount failed, 1 anything else.
 *
 * It speaks the FUSE kernel protocol itself (src/fuse), so the kernel sends it requests of up to
 * 1 MiB and tells it who is calling. It never touches its own mountpoint (a FUSE server that does
 * deadlocks on itself): it learns of the unmount from the device, which ends the session.
 */
import { FUSE_READERS } from './threadpool';
import { constants } from 'node:os';
import { parseArgs } from 'node:util';
import { FuseSession, mountFuse, mountinfoEntry, setReadahead, unmountFuse } from '../fuse';
import { NfsClient, type NfsTarget } from '../nfs';
import { toErrno } from './errno';
import { NfsFilesystem } from './filesystem';

export const FUSE_SUBTYPE = 'netvol-nfs';
/** Largest READ and WRITE the kernel sends (the protocol's limit: 256 pages). */
const MAX_IO = 1024 * 1024;
const READAHEAD = 4 * MAX_IO;
/** Answers applications get in normal use, not worth a log line. */
const ROUTINE_ERRNOS = new Set(['ENOENT', 'EEXIST', 'ENOTEMPTY', 'EACCES'].map((n) => (constants.errno as Record<string, number>)[n]));

type Level = 'debug' | 'info' | 'warn' | 'error';

function log(level: Level, msg: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, pid: process.pid, ...fields })}\n`);
}

function fail(exitCode: number, event: string, message: string, code?: string): never {
  log('error', message, { event, code });
  process.exit(exitCode);
}

function mountedAt(mountpoint: string): boolean {
  try {
    return mountinfoEntry(mountpoint) !== undefined;
  } catch {
    /* cannot tell: assume still mounted */
    return true;
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      server: { type: 'string' },
      port: { type: 'string' },
      'mount-port': { type: 'string' },
      export: { type: 'string' },
      path: { type: 'string', default: '' },
      mountpoint: { type: 'string' },
      uid: { type: 'string', default: '0' },
      gid: { type: 'string', default: '0' },
      fsname: { type: 'string' },
      'give-up-after-ms': { type: 'string', default: '0' },
      'call-timeout-ms': { type: 'string', default: '15000' },
    },
    strict: true,
  });
  const server = values.server;
  const exportPath = values.export;
  const mountpoint = values.mountpoint;
  if (!server || !exportPath || !mountpoint) fail(1, 'usage', 'usage: main.js --server HOST --export PATH --path FOLDER --mountpoint DIR [--port N] [--mount-port N] [--uid N] [--gid N]');
  const num = (v: string | undefined) => (v === undefined || v === '' ? undefined : Number(v));

  let client: NfsClient;
  try {
    const target: NfsTarget = {
      host: server,
      exportPath,
      port: num(values.port),
      mountPort: num(values['mount-port']),
      uid: num(values.uid) ?? 0,
      gid: num(values.gid) ?? (process.getgid?.() ?? 0),
    };
    client = await NfsClient.connect({
      ...target,
      timeoutMs: num(values['call-timeout-ms']) ?? 15_000,
      connectTimeoutMs: 5_000,
      maxIoSize: 1024 * 1024,
      maxInFlight: 16,
      // Two connections: ganesha decodes and answers READs on both at once (1 GiB cold reads ran
      // ~20 % faster than over one); a file's WRITEs keep to one of them.
      connections: 2,
    });
  } catch (err) {
    const e = err as { code?: string; message?: string };
    fail(2, 'connect', `cannot mount export ${exportPath} from ${server}: ${e.message ?? String(err)}`, e.code);
  }

  let root;
  try {
    root = await client.lookupPath(values.path ?? '');
  } catch (err) {
    const e = err as { code?: string; message?: string };
    fail(3, 'path', `cannot open folder ${values.path} of export ${exportPath}: ${e.message ?? String(err)}`, e.code);
  }

  let stopping = false;
  const fs = new NfsFilesystem(client, root, {
    attrTtlMs: 1000,
    maxWritesInFlight: 8,
    identity: { uid: num(values.uid) ?? 0, gid: num(values.gid) ?? 0 },
    commitEvery: 64 * 1024 * 1024,
    commitDelayMs: 500,
    retry: {
      giveUpAfterMs: num(values['give-up-after-ms']) ?? 0,
      stopping: () => stopping,
      onOutage: (what, err) => log('warn', 'the NFS server does not answer; retrying until it does', { call: what, error: (err as Error)?.message }),
      onRecovery: (what, ms) => log('info', 'the NFS server answers again', { call: what, waitedMs: ms }),
    },
    log: (level, msg, fields) => log(level, msg, fields),
  });

  // Files a crashed server of this host kept open after their unlink: nobody can open them now.
  try {
    const removed = await fs.unlinked.cleanUp();
    if (removed.length > 0) log('info', 'removed files left open at unlink by a server that no longer runs', { folders: removed });
  } catch (err) {
    log('warn', 'cannot remove files left open at unlink by an earlier server', { error: (err as Error)?.message });
  }

  let fd: number;
  try {
    fd = await mountFuse(mountpoint, {
      fsname: values.fsname ?? `${server}:${exportPath}`,
      subtype: FUSE_SUBTYPE,
      allowOther: true,
      defaultPermissions: true,
      maxRead: MAX_IO,
    });
  } catch (err) {
    const e = err as { code?: string; message?: string };
    fail(4, 'mount', `cannot mount FUSE at ${mountpoint}: ${e.message ?? String(err)}`, e.code);
  }
  const session = new FuseSession(fd, fs.ops(), {
    maxWrite: MAX_IO,
    maxReadahead: MAX_IO,
    entryTtlMs: 1000,
    attrTtlMs: 1000,
    readers: FUSE_READERS,
    errnoOf: (err) => -toErrno(err),
    onError: (op, errno, err) => {
      if (!ROUTINE_ERRNOS.has(errno)) log('warn', `${op} failed`, { errno: -errno, error: String((err as Error)?.message ?? err) });
    },
  });
  const negotiated = new Promise<unknown>((resolve) => {
    session.once('init', resolve);
    setTimeout(() => resolve(undefined), 5000).unref();
  });
  session.start();
  const init = await negotiated;
  if (!init) fail(4, 'mount', `the kernel did not start the FUSE session at ${mountpoint} within 5 s`);
  // Sequential reads then reach the server as 1 MiB READs, several at once.
  const readahead = setReadahead(mountpoint, READAHEAD) ? READAHEAD : undefined;
  log('info', 'mounted', {
    event: 'mounted',
    mountpoint,
    server,
    exportPath,
    path: values.path,
    readSize: client.readSize,
    writeSize: client.writeSize,
    fuse: init,
    readahead,
  });

  const shutdown = async (why: string): Promise<void> => {
    if (stopping) return;
    log('info', 'shutting down', { why });
    await Promise.race([fs.flushAll(), new Promise((r) => setTimeout(r, 30_000))]);
    stopping = true;
    if (mountedAt(mountpoint)) await unmountFuse(mountpoint);
    await client.close().catch(() => undefined);
    log('info', 'stopped', { event: 'stopped' });
    process.exit(0);
  };
  // The kernel ends the session when the last user of the mount is gone (after a lazy unmount,
  // open files keep it alive: they are still served).
  session.on('close', () => void shutdown('the mount is gone'));
  session.on('error', (err) => log('error', 'FUSE device error', { error: String((err as Error)?.message ?? err) }));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGHUP', () => undefined);
}

main().catch((err) => fail(1, 'crash', `fuse-nfs failed: ${(err as Error)?.stack ?? String(err)}`));
