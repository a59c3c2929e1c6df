/**
 * FolderBackend's attach rules, written once for every backend type: reuse a healthy attachment,
 * replace a dead one, and the errors of detach and fence. The tree is a real local folder; the data
 * path is a stand-in that mounts a tmpfs at the mountpoint (so the mount table is real), and says
 * whatever the case needs about its health.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FolderBackend } from '../../src/backends/folder/folder-backend';
import type { DataPath, StartRequest } from '../../src/backends/folder/data-path';
import { LocalTree } from '../../src/backends/local/local-tree';
import type { MountEntry } from '../../src/system';
import { capturingLogger } from '../harness/logs';
import { rejection } from './contract/subject';

class StandIn implements DataPath {
  readonly label = 'stand-in';
  healthy = true;
  /** Its helper lives but the server does not answer (wins over `healthy`). */
  unreachable = false;
  failStop = false;
  started: StartRequest[] = [];
  cleared: Array<string | undefined> = [];
  fenced: string[] = [];

  async check(): Promise<'attached' | 'unreachable' | 'dead'> {
    if (this.unreachable) return 'unreachable';
    return this.healthy ? 'attached' : 'dead';
  }
  async clear(mountpoint: string, entry: MountEntry | undefined): Promise<void> {
    this.cleared.push(entry?.fsType);
    if (entry) execFileSync('umount', ['-l', mountpoint]);
  }
  async start(req: StartRequest): Promise<Record<string, unknown>> {
    this.started.push(req);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'standin', req.mountpoint]);
    return { how: 'tmpfs' };
  }
  async stop(_volume: string, mountpoint: string, entry: MountEntry | undefined): Promise<void> {
    if (this.failStop) throw new Error('target is busy');
    if (entry) execFileSync('umount', [mountpoint]);
  }
  async fence(mountpoint: string): Promise<boolean> {
    this.fenced.push(mountpoint);
    execFileSync('umount', ['-l', mountpoint]);
    return true;
  }
}

let base: string;
let dataPath: StandIn;
let backend: FolderBackend;
let logs: string[];

beforeEach(async () => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'nvfolder-'));
  dataPath = new StandIn();
  const captured = capturingLogger();
  logs = captured.logs;
  const capabilities = { networked: true, sharedAcrossHosts: true, imageVolumes: true, atomicRename: true, symlinkAttributes: true };
  backend = new FolderBackend(
    { type: 'standin', capabilities, tree: new LocalTree('far', path.join(base, 'root')), dataPath },
    { name: 'far', hostId: 'h', workDir: path.join(base, 'work'), timeoutMs: 5000, logger: captured.logger },
  );
  await backend.open();
  await backend.makeFolder('dir', true);
  await backend.makeFolder('img', false);
});

afterEach(async () => {
  await backend.close();
  for (const name of ['dir', 'img']) {
    const mp = path.join(base, 'work', name);
    if (fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${mp} `)) execFileSync('umount', ['-l', mp]);
  }
  fs.rmSync(base, { recursive: true, force: true });
});

test('attach() starts the data path at a mountpoint in workDir, saying whether data/ is a folder, and logs "<label> attached"', async () => {
  expect(await backend.attach('dir')).toBe(path.join(base, 'work', 'dir'));
  expect(await backend.attach('img')).toBe(path.join(base, 'work', 'img'));
  expect(dataPath.started.map((r) => [r.volume, r.folder, r.directoryLayout, r.logFile])).toEqual([
    ['dir', 'dir', true, path.join(base, 'work', '.logs', 'dir.log')],
    ['img', 'img', false, path.join(base, 'work', '.logs', 'img.log')],
  ]);
  expect(await backend.health('dir')).toBe('attached');
  expect(logs.filter((l) => /stand-in attached/.test(l) && /"how":"tmpfs"/.test(l))).toHaveLength(2);
});

test('attach() reuses a healthy attachment without starting anything', async () => {
  await backend.attach('dir');
  await backend.attach('dir');
  expect(dataPath.started).toHaveLength(1);
  expect(logs.join('\n')).toMatch(/found the volume still attached; reusing it/);
});

test('attach() replaces a dead attachment: the data path clears it, then starts again', async () => {
  await backend.attach('dir');
  dataPath.healthy = false;
  expect(await backend.health('dir')).toBe('dead');
  await backend.attach('dir');
  expect(dataPath.cleared).toEqual([undefined, 'tmpfs']);
  expect(dataPath.started).toHaveLength(2);
  expect(logs.join('\n')).toMatch(/the attachment is dead; mounting it again/);
});

test('attach() leaves an attachment whose server does not answer as it is: BACKEND_UNAVAILABLE naming the volume, nothing cleared or started', async () => {
  await backend.attach('dir');
  dataPath.unreachable = true;
  expect(await backend.health('dir')).toBe('unreachable');
  const err = await rejection(backend.attach('dir'));
  expect(err.code).toBe('BACKEND_UNAVAILABLE');
  expect(err.message).toMatch(/^backend far: cannot attach volume dir: its server does not answer; .*try again when the server answers$/);
  expect(dataPath.cleared).toEqual([undefined]);
  expect(dataPath.started).toHaveLength(1);
});

test('detach() stops the data path and removes the mountpoint; a refusal is COMMAND_FAILED naming the backend and the mountpoint', async () => {
  await backend.attach('dir');
  dataPath.failStop = true;
  const err = await rejection(backend.detach('dir'));
  expect(err.code).toBe('COMMAND_FAILED');
  expect(err.message).toBe(`backend far: cannot detach volume dir: target is busy (is a process still using ${path.join(base, 'work', 'dir')}?)`);
  dataPath.failStop = false;
  await backend.detach('dir');
  expect(await backend.health('dir')).toBe('detached');
  expect(fs.existsSync(path.join(base, 'work', 'dir'))).toBe(false);
  await backend.detach('dir');
});

test('fence() cuts the data path off, removes the mountpoint and warns', async () => {
  await backend.attach('dir');
  await (backend.fence as (name: string) => Promise<void>)('dir');
  expect(dataPath.fenced).toEqual([path.join(base, 'work', 'dir')]);
  expect(fs.existsSync(path.join(base, 'work', 'dir'))).toBe(false);
  expect(logs.join('\n')).toMatch(/"level":"warn".*fenced: the data path was cut off the server/);
});
