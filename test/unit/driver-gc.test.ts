import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { GcItem, GcReport, VolumeDriver } from '../../src/driver';
import { readMountTable, run } from '../../src/system';
import { loopsOf, makeWorld, mountsAt, World } from './support/driver-world';
import { makeHosts, HostsWorld } from './support/hosts-world';

/**
 * gc over a real local backend and real loop mounts: orphans made the way a crash leaves them (a
 * volume mounted by a daemon whose ledger record was lost, a loop device nobody mounted, an empty
 * mountpoint folder, trash, an archive from long ago, a retained volume), beside live volumes
 * that must survive with their data.
 */
jest.setTimeout(120_000);

const DAY = 86_400_000;
const worlds: World[] = [];
const sharedWorlds: HostsWorld[] = [];
const extraLoops: string[] = [];
afterAll(async () => {
  for (const d of extraLoops) await run('losetup', ['-d', d]).catch(() => undefined);
  for (const w of worlds) await w.cleanup();
  for (const w of sharedWorlds) await w.cleanup();
});

const exists = (p: string) => fs.stat(p).then(() => true, () => false);

/** The ledger file without one volume's record, as a daemon killed before saving it would leave it. */
async function forget(w: World, name: string): Promise<void> {
  const state = JSON.parse(await fs.readFile(w.stateFile, 'utf8')) as { data?: { volumes: Record<string, unknown> }; volumes?: Record<string, unknown> };
  const volumes = state.data?.volumes ?? state.volumes;
  if (!volumes || !(name in volumes)) throw new Error(`no record of ${name} in ${w.stateFile}: ${JSON.stringify(state)}`);
  delete volumes[name];
  await fs.writeFile(w.stateFile, JSON.stringify(state));
}

async function image(file: string): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await run('truncate', ['-s', '8M', file]);
}

async function attachLoop(file: string): Promise<string> {
  const device = (await run('losetup', ['--find', '--show', file])).stdout.trim();
  extraLoops.push(device);
  return device;
}

/** What a dry run must not change: the mount table under the world, loop devices, the backend folder and mount root listings. */
async function snapshot(w: World): Promise<string> {
  const mounts = (await readMountTable()).filter((m) => m.mountPoint.startsWith(`${w.root}/`)).map((m) => `${m.source} ${m.mountPoint}`).sort();
  const loops = (await run('losetup', ['-l', '-n', '-O', 'NAME,BACK-FILE'])).stdout.split('\n').filter((l) => l.includes(w.root)).sort();
  const folders = (await fs.readdir(w.volumesDir)).sort();
  const mountRoot = (await fs.readdir(w.config.mountRoot)).sort();
  return JSON.stringify({ mounts, loops, folders, mountRoot });
}

const pick = (r: GcReport, kind: GcItem['kind']) => r.items.filter((i) => i.kind === kind);
const summary = (r: GcReport) => r.items.map((i) => `${i.kind} ${i.backend ?? '-'} ${i.volume ?? '-'} ${i.target}`).sort();

describe('gc on one host', () => {
  let w: World;
  let driver: VolumeDriver;
  let foreignLoop: string;
  let looseLoop: string;
  let listed: string[] = [];

  beforeAll(async () => {
    w = await makeWorld('gc');
    worlds.push(w);
    // Live volumes, mounted as containers would have them, with data.
    await w.driver.create('keepimg', { size: '32M' });
    await fs.writeFile(path.join(await w.driver.mount('keepimg', 'c1'), 'precious'), 'image data');
    await w.driver.create('keepdir', {});
    await fs.writeFile(path.join(await w.driver.mount('keepdir', 'c2'), 'precious'), 'dir data');
    // A volume mounted by a daemon that died before its record was saved: its mount and loop device stay, no record names them.
    await w.driver.create('lostimg', { size: '32M' });
    await w.driver.mount('lostimg', 'c3');
    await w.driver.create('lostdir', {});
    await w.driver.mount('lostdir', 'c4');
    // A fresh archive, a retained volume.
    await w.driver.create('newarch', { onRemove: 'archive' });
    await w.driver.remove('newarch');
    await w.driver.create('kept', { onRemove: 'retain' });
    await w.driver.remove('kept');
    // The "kill -9": a new driver over a ledger that lost two records.
    await forget(w, 'lostimg');
    await forget(w, 'lostdir');
    ({ driver } = await w.restart());
    await driver.restore();
    // Left by crashes: trash, an old archive, an empty mountpoint folder, a loop device on a netvol image nobody mounted.
    await fs.mkdir(path.join(w.volumesDir, '.netvol-trash-gone-0badc0de', 'data'), { recursive: true });
    await fs.writeFile(path.join(w.volumesDir, '.netvol-trash-gone-0badc0de', 'data', 'f'), 'x');
    const old = path.join(w.volumesDir, 'oldvol.archive-20200101T000000Z');
    await fs.mkdir(path.join(old, 'data'), { recursive: true });
    await fs.writeFile(path.join(old, 'volume.json'), JSON.stringify({ version: 1, name: 'oldvol', createdAt: '2019-12-01T00:00:00.000Z', createdBy: 'unit-host', spec: { layout: 'directory', onRemove: 'archive' } }));
    await fs.mkdir(path.join(w.config.mountRoot, 'ghost'), { recursive: true });
    await image(path.join(w.volumesDir, 'loose', 'data.img'));
    looseLoop = await attachLoop(path.join(w.volumesDir, 'loose', 'data.img'));
    // Not netvol's: a loop device on a data.img outside any backend folder, and a file folder in the mount root.
    await image(path.join(w.root, 'elsewhere', 'data.img'));
    foreignLoop = await attachLoop(path.join(w.root, 'elsewhere', 'data.img'));
    await fs.mkdir(path.join(w.config.mountRoot, 'notempty'), { recursive: true });
    await fs.writeFile(path.join(w.config.mountRoot, 'notempty', 'somebody-elses'), 'x');
  });

  it('a dry run lists the orphans, the trash and (when asked) old archives and retained volumes, and changes nothing', async () => {
    const before = await snapshot(w);
    const r = await driver.operations.gc({ apply: false, olderThanMs: 30 * DAY, retained: true });
    expect(r.applied).toBe(false);
    expect(r.items.every((i) => i.state === 'found')).toBe(true);
    expect(pick(r, 'trash').map((i) => i.target)).toEqual(['.netvol-trash-gone-0badc0de']);
    expect(pick(r, 'archive').map((i) => i.target)).toEqual(['oldvol.archive-20200101T000000Z']);
    expect(pick(r, 'retained').map((i) => i.volume)).toEqual(['kept']);
    expect(pick(r, 'mountpoint').map((i) => i.volume).sort()).toEqual(['ghost', 'lostdir', 'lostimg']);
    const loops = pick(r, 'loop');
    expect(loops.map((i) => i.volume).sort()).toEqual(['loose', 'lostimg']);
    expect(loops.find((i) => i.volume === 'loose')?.target).toBe(looseLoop);
    expect(r.items.some((i) => i.target === foreignLoop || i.volume === 'notempty' || i.volume === 'keepimg' || i.volume === 'keepdir' || i.volume === 'newarch')).toBe(false);
    expect(await snapshot(w)).toBe(before);
    listed = summary(r);
  });

  it('without --older-than no archive and without --retained no retained volume is listed', async () => {
    const r = await driver.operations.gc({ apply: false, retained: false });
    expect(pick(r, 'archive')).toEqual([]);
    expect(pick(r, 'retained')).toEqual([]);
    expect(pick(r, 'trash')).toHaveLength(1);
  });

  it('--apply removes exactly what was listed; live volumes stay mounted with their data, and what is not netvol\'s is untouched', async () => {
    const r = await driver.operations.gc({ apply: true, olderThanMs: 30 * DAY, retained: true });
    expect(r.items.filter((i) => i.state !== 'removed')).toEqual([]);
    expect(summary(r)).toEqual(listed);
    expect(await exists(path.join(w.volumesDir, '.netvol-trash-gone-0badc0de'))).toBe(false);
    expect(await exists(path.join(w.volumesDir, 'oldvol.archive-20200101T000000Z'))).toBe(false);
    expect(await exists(path.join(w.volumesDir, 'kept'))).toBe(false);
    expect((await fs.readdir(w.volumesDir)).some((f) => f.startsWith('newarch.archive-'))).toBe(true);
    expect(await mountsAt(w.mountpoint('lostimg'))).toBe(0);
    expect(await mountsAt(w.mountpoint('lostdir'))).toBe(0);
    expect(await exists(w.mountpoint('ghost'))).toBe(false);
    expect(await loopsOf(path.join(w.volumesDir, 'lostimg', 'data.img'))).toEqual([]);
    expect(await loopsOf(path.join(w.volumesDir, 'loose', 'data.img'))).toEqual([]);
    // The lost volumes themselves are still volumes on the backend: only this host's leftovers went.
    expect(await exists(path.join(w.volumesDir, 'lostimg', 'volume.json'))).toBe(true);
    // Live and foreign things.
    expect(await fs.readFile(path.join(w.mountpoint('keepimg'), 'precious'), 'utf8')).toBe('image data');
    expect(await fs.readFile(path.join(w.mountpoint('keepdir'), 'precious'), 'utf8')).toBe('dir data');
    expect(await loopsOf(path.join(w.root, 'elsewhere', 'data.img'))).toHaveLength(1);
    expect(await exists(path.join(w.config.mountRoot, 'notempty', 'somebody-elses'))).toBe(true);
    expect((await driver.get('keepimg')).status).toMatchObject({ mountCount: 1 });
    // Nothing is left to collect.
    expect((await driver.operations.gc({ apply: false, olderThanMs: 30 * DAY, retained: true })).items).toEqual([]);
  });

  it('a lost volume is mounted again by the next Mount after gc', async () => {
    const mp = await driver.mount('lostimg', 'again');
    expect(await mountsAt(mp)).toBe(1);
    await driver.unmount('lostimg', 'again');
  });

  it('an orphan mount that a process still uses is reported as failed and left mounted', async () => {
    await driver.create('busy', {});
    const mp = await driver.mount('busy', 'b1');
    await forget(w, 'busy');
    const again = await w.restart();
    await again.driver.restore();
    const handle = await fs.open(path.join(mp, 'open-file'), 'w');
    try {
      const r = await again.driver.operations.gc({ apply: true, retained: false });
      const item = r.items.find((i) => i.kind === 'mountpoint' && i.volume === 'busy');
      expect(item).toMatchObject({ state: 'failed' });
      expect(item?.error).toMatch(/busy/);
      expect(await mountsAt(mp)).toBe(1);
    } finally {
      await handle.close();
    }
    const r = await again.driver.operations.gc({ apply: true, retained: false });
    expect(r.items.find((i) => i.volume === 'busy')).toMatchObject({ state: 'removed' });
    expect(await mountsAt(mp)).toBe(0);
  });
});

describe('gc of removal markers on a shared backend', () => {
  const LEASE = 5;
  let hw: HostsWorld;
  let archive: string;
  const marker = (folder: string) => path.join(hw.shared, folder, 'removing.json');
  /** The marker as Remove's half of the handshake writes it (removal.ts), left by a Remove that never finished. */
  const leave = (folder: string, host: string) => fs.writeFile(marker(folder), `${JSON.stringify({ host, at: '2026-11-30T08:00:00.000Z' })}\n`);

  beforeAll(async () => {
    hw = await makeHosts('gc-markers', ['host-a', 'host-b', 'host-c'], LEASE);
    sharedWorlds.push(hw);
    const [a, b, c] = hw.hosts;
    for (const v of ['stale', 'orphaned', 'busy', 'mine', 'broken']) await a.driver.create(v, {});
    await a.driver.create('arch', { onRemove: 'archive' });
    await a.driver.remove('arch');
    archive = (await fs.readdir(hw.shared)).find((f) => f.startsWith('arch.archive-')) as string;
    await b.driver.list();
    await c.driver.list();
    await a.driver.list();
    // host-b dies in the middle of two Removes; host-c is removing 'busy' right now; host-a (the one running gc) is removing 'mine'.
    await b.stop();
    await leave('stale', 'host-b');
    await leave(archive, 'host-b');
    await leave('orphaned', 'host-z'); // a host whose heartbeat file is gone too (an earlier gc removed it)
    await leave('busy', 'host-c');
    await leave('mine', 'host-a');
    await fs.writeFile(marker('broken'), ''); // a create whose content never landed: nobody's to judge
  });

  it('the default --host-age is not reached yet: no marker is listed', async () => {
    const r = await hw.hosts[0].driver.operations.gc({ apply: false, retained: false });
    expect(pick(r, 'removal')).toEqual([]);
  });

  it("a dry run lists the markers of the dead host only, and changes nothing", async () => {
    const r = await hw.hosts[0].driver.operations.gc({ apply: false, retained: false, hostAgeMs: 0 });
    expect(pick(r, 'removal').map((i) => `${i.backend} ${i.volume} ${i.target} ${i.state}`).sort()).toEqual([
      `nas arch ${archive}/removing.json found`,
      'nas orphaned orphaned/removing.json found',
      'nas stale stale/removing.json found',
    ]);
    expect(pick(r, 'removal').find((i) => i.volume === 'stale')?.reason).toMatch(/Remove on host host-b \(started 2026-11-30T08:00:00.000Z\) that never finished; that host is gone: heartbeat unchanged for \d+ s/);
    for (const f of ['stale', 'orphaned', archive, 'busy', 'mine', 'broken']) expect(await exists(marker(f))).toBe(true);
  });

  it("--apply removes them (before the dead host's heartbeat), keeps the live hosts' markers, and the volume mounts on host-c again", async () => {
    const [a, , c] = hw.hosts;
    const r = await a.driver.operations.gc({ apply: true, retained: false, hostAgeMs: 0 });
    expect(pick(r, 'removal').map((i) => `${i.target} ${i.state}`).sort()).toEqual([`${archive}/removing.json removed`, 'orphaned/removing.json removed', 'stale/removing.json removed']);
    expect(pick(r, 'host').map((i) => `${i.target} ${i.state}`)).toEqual(['.netvol-hosts/host-b.json removed']);
    // The markers are judged before the heartbeat goes (a heartbeat gone reads as a change of the host's file).
    expect(r.items.map((i) => i.kind).filter((k) => k === 'removal' || k === 'host')).toEqual(['removal', 'removal', 'removal', 'host']);
    for (const f of ['stale', 'orphaned', archive]) expect(await exists(marker(f))).toBe(false);
    expect(await exists(path.join(hw.shared, 'stale', 'volume.json'))).toBe(true);
    for (const f of ['busy', 'mine', 'broken']) expect(await exists(marker(f))).toBe(true);
    await c.driver.mount('stale', 'after-gc');
    await c.driver.unmount('stale', 'after-gc');
    expect(pick(await a.driver.operations.gc({ apply: false, retained: false, hostAgeMs: 0 }), 'removal')).toEqual([]);
  });
});
