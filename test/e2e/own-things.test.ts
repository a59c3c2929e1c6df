import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { argNamesPath, isAlive, killAllMentioning, pidsMentioning, sleep } from '../harness/dockerd';
import { startNetvol } from '../harness/netvol';
import { ForeignPlugin, startForeignPlugin } from './support/foreign-plugin';
import { startWorld, stopWorld, uniqueName, World } from './support/world';

jest.setTimeout(180_000);

/**
 * The private dockerd of a test sees every plugin socket in /run/docker/plugins, so whatever the
 * harness removes "because it is there" may belong to another daemon on the machine. These tests
 * put a foreign plugin next to the run and check that cleanup never touches it.
 */
describe('the e2e harness removes only the volumes it created', () => {
  const foreignVolume = uniqueName('foreign-data');
  let foreign: ForeignPlugin | undefined;
  let w: World | undefined;

  beforeAll(async () => {
    foreign = await startForeignPlugin([foreignVolume]);
    w = await startWorld();
  });

  afterAll(async () => {
    await stopWorld(w);
    await foreign?.close();
  });

  test("dockerd lists the foreign plugin's volume (so what follows is a real test)", async () => {
    const ls = await w!.d.dockerOk(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}']);
    expect(ls.split('\n')).toContain(`${foreign!.name} ${foreignVolume}`);
  });

  test("removeAll() removes its containers, local volumes and its own driver's volumes, never a foreign one", async () => {
    const local = uniqueName('own-local');
    const mine = uniqueName('own-netvol');
    await w!.d.dockerOk(['volume', 'create', '-d', 'local', local]);
    await w!.d.dockerOk(['volume', 'create', '-d', w!.plugin, mine]);
    await w!.d.dockerOk(['create', '--network', 'none', '-v', `${local}:/data`, 'busybox:local', 'true']);

    await w!.d.removeAll([w!.plugin]);

    expect(foreign!.calls['VolumeDriver.Remove'] ?? 0).toBe(0);
    expect(foreign!.volumes.has(foreignVolume)).toBe(true);
    expect(await w!.d.dockerOk(['ps', '-aq'])).toBe('');
    // Other runs on this machine may list their plugins' volumes here too: look only at ours and the foreign one.
    const left = (await w!.d.dockerOk(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}'])).split('\n');
    expect(left).toContain(`${foreign!.name} ${foreignVolume}`);
    expect(left.filter((l) => l.endsWith(` ${local}`) || l.endsWith(` ${mine}`))).toEqual([]);
    const listed = await w!.nv.request('VolumeDriver.List', {});
    expect(listed.json.Volumes).toEqual([]);
  });

  test('removeAll() without drivers leaves plugin volumes alone, its own included', async () => {
    const mine = uniqueName('own-netvol');
    await w!.d.dockerOk(['volume', 'create', '-d', w!.plugin, mine]);
    await w!.d.removeAll();
    expect(foreign!.calls['VolumeDriver.Remove'] ?? 0).toBe(0);
    expect((await w!.nv.request('VolumeDriver.Get', { Name: mine })).json.Err).toBe('');
  });

  test('stopWorld() removes its own volumes and socket, and leaves the foreign volume alone', async () => {
    const world = w!;
    const mine = uniqueName('own-netvol');
    await world.d.dockerOk(['volume', 'create', '-d', world.plugin, mine]);
    const removedBefore = world.nv.jsonLogs().filter((l) => l.message === 'removed volume').length;

    await stopWorld(world);
    w = undefined;

    expect(foreign!.calls['VolumeDriver.Remove'] ?? 0).toBe(0);
    expect(foreign!.volumes.has(foreignVolume)).toBe(true);
    expect(world.nv.jsonLogs().filter((l) => l.message === 'removed volume').length).toBeGreaterThan(removedBefore);
    expect(fs.existsSync(world.nv.socket)).toBe(false);
    expect(fs.existsSync(world.nv.root)).toBe(false);
  });
});

describe('the netvol harness never leaves a socket in /run/docker/plugins', () => {
  test('cleanup() removes the socket a kill -9 left behind', async () => {
    const nv = await startNetvol();
    try {
      await nv.kill9();
      expect(fs.existsSync(nv.socket)).toBe(true); // as after a crash
    } finally {
      await nv.cleanup();
    }
    expect(fs.existsSync(nv.socket)).toBe(false);
    expect(fs.existsSync(nv.root)).toBe(false);
  });
});

describe('killAllMentioning() kills only processes that name the run’s own folder', () => {
  const children: ChildProcess[] = [];
  /** A node process that idles for a minute with `arg` in its argv. */
  const idler = (arg: string): ChildProcess => {
    const c = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)', arg], { stdio: 'ignore' });
    children.push(c);
    return c;
  };
  let dir: string;

  beforeAll(() => {
    dir = fs.mkdtempSync('/tmp/nvk-');
  });

  afterAll(() => {
    for (const c of children) if (isAlive(c.pid)) c.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('argNamesPath() matches the folder as a path, not as a prefix of another name', () => {
    expect(argNamesPath(dir, dir)).toBe(true);
    expect(argNamesPath(`${dir}/exec/containerd.sock`, dir)).toBe(true);
    expect(argNamesPath(`--data-root=${dir}/data`, dir)).toBe(true);
    expect(argNamesPath(`user@host:${dir}/v`, dir)).toBe(true);
    expect(argNamesPath(`${dir}2`, dir)).toBe(false);
    expect(argNamesPath(`${dir}-other/x`, dir)).toBe(false);
    expect(argNamesPath(`ls ${dir}`, dir)).toBe(false);
  });

  test('kills a helper naming a path below the folder; spares lookalikes, shell lines and older processes', async () => {
    const older = idler(`${dir}/older`);
    await sleep(2500);
    const since = Date.now();
    const own = idler(`${dir}/helper.sock`);
    const sibling = idler(`${dir}2/x`);
    const shellLine = idler(`rm -rf ${dir}`);
    await sleep(300);

    expect(pidsMentioning(dir, { startedAfterMs: since })).toEqual([own.pid]);
    killAllMentioning(dir, { startedAfterMs: since });
    await sleep(300);

    expect(isAlive(own.pid)).toBe(false);
    expect(isAlive(sibling.pid)).toBe(true);
    expect(isAlive(shellLine.pid)).toBe(true);
    expect(isAlive(older.pid)).toBe(true);
  });

  test('refuses a folder that is not a run’s own (/, /tmp, relative)', () => {
    for (const bad of ['/', '/tmp', '/tmp/', 'tmp/nvd-x', '/tmp/../etc']) {
      expect(() => pidsMentioning(bad)).toThrow(/refusing/);
    }
  });
});
