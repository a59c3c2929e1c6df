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
 * It never touches its own mountpoint (a FUSE server that does deadlocks on itself): it learns
 * whether it is still mounted from /proc/self/mountinfo, and unmounts through fusermount.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { NfsClient } from '../nfs';
import { toErrno } from './errno';
import { NfsFilesystem } from './filesystem';
import { extraFuseOptions, FUSE_MAX_IO, NetvolFuse } from './mount';

export const FUSE_SUBTYPE = 'netvol-nfs';

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
    const text = readFileSync('/proc/self/mountinfo', 'utf8');
    for (const line of text.split('\n')) {
      const field = line.split(' ')[4];
      if (field && field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))) === mountpoint) return true;
    }
  } catch {
    /* cannot tell: assume still mounted */
    return true;
  }
  return false;
}

function fusermountLazy(mountpoint: string): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn('fusermount', ['-u', '-z', mountpoint], { stdio: 'ignore' });
    child.on('error', () => resolve());
    child.on('exit', () => resolve());
  });
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
    client = await NfsClient.connect({
      host: server,
      exportPath,
      port: num(values.port),
      mountPort: num(values['mount-port']),
      uid: num(values.uid),
      gid: num(values.gid),
      timeoutMs: num(values['call-timeout-ms']) ?? 15_000,
      connectTimeoutMs: 5_000,
      maxIoSize: 1024 * 1024,
      maxInFlight: 16,
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
    nameTtlMs: 1000,
    maxWritesInFlight: 8,
    commitEvery: 64 * 1024 * 1024,
    retry: {
      giveUpAfterMs: num(values['give-up-after-ms']) ?? 0,
      stopping: () => stopping,
      onOutage: (what, err) => log('warn', 'the NFS server does not answer; retrying until it does', { call: what, error: (err as Error)?.message }),
      onRecovery: (what, ms) => log('info', 'the NFS server answers again', { call: what, waitedMs: ms }),
    },
    log: (level, msg, fields) => log(level, msg, fields),
  });

  const fuse = new NetvolFuse(
    mountpoint,
    fs.ops(),
    {
      timeout: false,
      allowOther: true,
      defaultPermissions: true,
      maxRead: FUSE_MAX_IO,
      attrTimeout: 1,
      entryTimeout: 1,
      fsname: (values.fsname ?? `${server}:${exportPath}`).replace(/[,\s]/g, '_'),
      subtype: FUSE_SUBTYPE,
    },
    extraFuseOptions(),
  );

  await new Promise<void>((resolve) => {
    fuse.mount((err) => {
      if (err) fail(4, 'mount', `cannot mount FUSE at ${mountpoint}: ${err.message}`, String(toErrno(err)));
      resolve();
    });
  });
  log('info', 'mounted', {
    event: 'mounted',
    mountpoint,
    server,
    exportPath,
    path: values.path,
    readSize: client.readSize,
    writeSize: client.writeSize,
    fuseOptions: fuse.optionString(),
  });

  const shutdown = async (why: string): Promise<void> => {
    if (stopping) return;
    log('info', 'shutting down', { why });
    await Promise.race([fs.flushAll(), new Promise((r) => setTimeout(r, 30_000))]);
    stopping = true;
    if (mountedAt(mountpoint)) await fusermountLazy(mountpoint);
    await client.close().catch(() => undefined);
    log('info', 'stopped', { event: 'stopped' });
    process.exit(0);
  };
  const watch = setInterval(() => {
    if (!mountedAt(mountpoint)) {
      clearInterval(watch);
      void shutdown('the mount is gone');
    }
  }, 500);
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGHUP', () => undefined);
}

main().catch((err) => fail(1, 'crash', `fuse-nfs failed: ${(err as Error)?.stack ?? String(err)}`));
