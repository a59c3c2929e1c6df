/**
 * A VolumeDriver over the real local backend in a private temporary folder: its own state file,
 * volumes folder and mount root, a logger whose records the test can read, and a cleanup that
 * unmounts whatever is left under the folder.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { Backend } from '../../../src/backends';
import { backendType } from '../../../src/backends';
import { buildConfig, Config } from '../../../src/config';
import { HostState, openLedger, VolumeDriver } from '../../../src/driver';
import { createLogger, Logger } from '../../../src/log';
import { StateStore } from '../../../src/state';
import { readMountTable, run } from '../../../src/system';

export const MiB = 1024 * 1024;

export interface World {
  root: string;
  volumesDir: string;
  stateFile: string;
  config: Config;
  log: Logger;
  /** Parsed log records, in order. */
  records: Array<Record<string, unknown>>;
  driver: VolumeDriver;
  store: StateStore<HostState>;
  /** A fresh driver over the same state file and backend folder, as after a daemon restart. */
  restart(): Promise<{ driver: VolumeDriver; store: StateStore<HostState> }>;
  mountpoint(name: string): string;
  cleanup(): Promise<void>;
}

export async function makeWorld(tag: string, extra: Record<string, unknown> = {}): Promise<World> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), `netvol-unit-${tag}-`));
  const volumesDir = path.join(root, 'volumes');
  const stateDir = path.join(root, 'state');
  const config = buildConfig({ stateDir, hostId: 'unit-host', backends: { local: { type: 'local', path: volumesDir } }, ...extra }, 'unit test', {});
  const { log, records } = recordingLogger();
  const stateFile = path.join(stateDir, 'state.json');

  const open = async () => {
    const backends = new Map<string, Backend>();
    for (const b of config.backends) {
      const kind = backendType(b.type);
      if (!kind) throw new Error(`no backend type ${b.type}`);
      backends.set(b.name, kind.create(b.options, { name: b.name, hostId: config.hostId, workDir: path.join(stateDir, 'backends', b.name), timeoutMs: config.timeoutMs, logger: log }));
    }
    const store = await openLedger(stateFile, (m) => log.error(m));
    return { driver: new VolumeDriver(config, backends, store, log), store };
  };
  const first = await open();
  return {
    root,
    volumesDir,
    stateFile,
    config,
    log,
    records,
    driver: first.driver,
    store: first.store,
    restart: open,
    mountpoint: (name) => path.join(config.mountRoot, name),
    cleanup: async () => {
      const mine = (await readMountTable()).filter((m) => m.mountPoint.startsWith(`${root}/`)).reverse();
      for (const m of mine) {
        await run('umount', ['-l', m.mountPoint]).catch(() => undefined);
        if (m.source.startsWith('/dev/loop')) await run('losetup', ['-d', m.source]).catch(() => undefined);
      }
      await fs.rm(root, { recursive: true, force: true });
    },
  };
}

/** A debug logger whose records land, parsed and in order, in `records`. */
export function recordingLogger(): { log: Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _e, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) records.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: createLogger('debug', stream), records };
}

/** Mount-table entries at exactly `mountPoint`. */
export async function mountsAt(mountPoint: string): Promise<number> {
  return (await readMountTable()).filter((m) => m.mountPoint === mountPoint).length;
}

/** Loop devices backed by `file`. */
export async function loopsOf(file: string): Promise<string[]> {
  const { stdout } = await run('losetup', ['-j', file]);
  return stdout.split('\n').filter(Boolean);
}

/** The code and message of a rejection (fails the test when the call succeeds). */
export async function refusal(work: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await work;
  } catch (err) {
    return { code: (err as { code?: string }).code ?? 'none', message: (err as Error).message };
  }
  throw new Error('the call succeeded');
}

/** Lets the logger's stream deliver pending records. */
export const settle = (): Promise<void> => new Promise((r) => setImmediate(r));
