import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { VolumeRecord } from '../../src/driver';
import { unmountImage } from '../../src/quota';
import { unmount } from '../../src/system';
import { loopsOf, makeWorld, mountsAt, refusal, settle, World } from './support/driver-world';

/**
 * Each test runs one daemon "life", then a second VolumeDriver over the same state file and backend
 * folder, as after a restart (the first driver is dropped without close(), as by kill -9).
 */
const worlds: World[] = [];
async function world(): Promise<World> {
  const w = await makeWorld('restart');
  worlds.push(w);
  return w;
}
afterAll(async () => {
  for (const w of worlds) await w.cleanup();
});

const exists = (p: string) => fs.stat(p).then(() => true, () => false);

describe('restart: a new VolumeDriver over the same state', () => {
  it('serves the same volumes and honours the mount counts it had', async () => {
    const w = await world();
    await w.driver.create('counted', { size: '32M' });
    const mp = await w.driver.mount('counted', 'A');
    await w.driver.mount('counted', 'A');
    await w.driver.mount('counted', 'B');
    await fs.writeFile(path.join(mp, 'before.txt'), 'written before the restart');

    const { driver } = await w.restart();
    await driver.restore();
    await driver.remountAll();
    expect((await driver.get('counted')).status).toMatchObject({ mounts: ['A', 'B'], mountCount: 3, layout: 'image' });
    expect(await mountsAt(mp)).toBe(1);
    expect(await loopsOf(path.join(w.volumesDir, 'counted', 'data.img'))).toHaveLength(1);
    expect(await fs.readFile(path.join(mp, 'before.txt'), 'utf8')).toBe('written before the restart');

    await driver.unmount('counted', 'A');
    await driver.unmount('counted', 'B');
    expect(await mountsAt(mp)).toBe(1);
    expect(await refusal(driver.remove('counted'))).toMatchObject({ code: 'IN_USE' });
    await driver.unmount('counted', 'A');
    expect(await mountsAt(mp)).toBe(0);
    await driver.remove('counted');
    expect(await exists(path.join(w.volumesDir, 'counted'))).toBe(false);
  });

  it('remountAll() re-attaches an image volume that has mount IDs but lost its mount', async () => {
    const w = await world();
    await w.driver.create('lostimg', { size: '32M' });
    const mp = await w.driver.mount('lostimg', 'X');
    await fs.writeFile(path.join(mp, 'data.txt'), 'still here');
    await unmountImage(mp);
    expect(await mountsAt(mp)).toBe(0);

    const { driver, store } = await w.restart();
    await driver.restore();
    expect(store.data.volumes.lostimg).toMatchObject({ mounts: { X: 1 }, attached: false });
    await driver.remountAll();
    expect(await mountsAt(mp)).toBe(1);
    expect(store.data.volumes.lostimg.attached).toBe(true);
    expect(await fs.readFile(path.join(mp, 'data.txt'), 'utf8')).toBe('still here');
    await settle();
    expect(w.records.some((r) => r.level === 'warn' && r.volume === 'lostimg' && String(r.message).includes('re-attaching'))).toBe(true);

    await driver.unmount('lostimg', 'X');
    expect(await mountsAt(mp)).toBe(0);
  });

  it('remountAll() re-binds a directory volume that has mount IDs but lost its mount', async () => {
    const w = await world();
    await w.driver.create('lostdir', {});
    const mp = await w.driver.mount('lostdir', 'Y');
    await fs.writeFile(path.join(mp, 'f.txt'), 'dir data');
    await unmount(mp);

    const { driver } = await w.restart();
    await driver.restore();
    await driver.remountAll();
    expect(await mountsAt(mp)).toBe(1);
    expect(await fs.readFile(path.join(mp, 'f.txt'), 'utf8')).toBe('dir data');
    expect(await driver.path('lostdir')).toBe(mp);
  });

  it('restore() detaches a volume that is still mounted but has no mount IDs left', async () => {
    const w = await world();
    await w.driver.create('stray', { size: '32M' });
    const mp = await w.driver.mount('stray', 'Z');
    // The crash came after the Unmount was recorded but before the detach.
    w.store.data.volumes.stray.mounts = {};
    await w.store.save();

    const { driver, store } = await w.restart();
    await driver.restore();
    expect(await mountsAt(mp)).toBe(0);
    expect(await loopsOf(path.join(w.volumesDir, 'stray', 'data.img'))).toHaveLength(0);
    expect(store.data.volumes.stray).toMatchObject({ mounts: {}, attached: false });
  });

  it('restore() frees the loop device of a daemon killed between losetup and mount, and a later Remove and Create of the name work', async () => {
    const w = await world();
    await w.driver.create('halfway', { size: '32M' });
    const mp = await w.driver.mount('halfway', 'A');
    const image = path.join(w.volumesDir, 'halfway', 'data.img');
    // The kill came in the middle of the Mount's attach: the image is on a loop device, nothing is
    // mounted yet, and no mount ID was counted.
    await unmount(mp, { timeoutMs: 10_000 });
    expect(await loopsOf(image)).toHaveLength(1);
    w.store.data.volumes.halfway.mounts = {};
    await w.store.save();

    const { driver } = await w.restart();
    await driver.restore();
    expect(await loopsOf(image)).toHaveLength(0);
    // Nothing left that would make the name's next image refuse its Mount ("still attached").
    await driver.remove('halfway');
    await driver.create('halfway', { size: '32M' });
    expect(await driver.mount('halfway', 'B')).toBe(mp);
    expect(await loopsOf(image)).toHaveLength(1);
    await driver.unmount('halfway', 'B');
    expect(await loopsOf(image)).toHaveLength(0);
  });

  it("restore() cleans up a volume whose 'create' was pending and has no metadata", async () => {
    const w = await world();
    const half: VolumeRecord = {
      backend: 'local',
      layout: 'image',
      fs: 'ext4',
      mounts: {},
      attached: false,
      pending: 'create',
    };
    w.store.data.volumes.half = half;
    await w.store.save();
    await fs.mkdir(path.join(w.volumesDir, 'half'), { recursive: true });
    await fs.writeFile(path.join(w.volumesDir, 'half', 'data.img'), Buffer.alloc(4096));

    const { driver, store } = await w.restart();
    await driver.restore();
    expect(store.data.volumes.half).toBeUndefined();
    expect(await exists(path.join(w.volumesDir, 'half'))).toBe(false);
    expect((JSON.parse(await fs.readFile(w.stateFile, 'utf8')) as { data: { volumes: object } }).data.volumes).not.toHaveProperty('half');
    expect((await refusal(driver.get('half'))).code).toBe('NOT_FOUND');
    // and the name can be created afresh
    await driver.create('half', {});
    expect((await driver.get('half')).status.layout).toBe('directory');
  });

  it("restore() keeps a volume whose 'create' was pending but whose metadata was written", async () => {
    const w = await world();
    await w.driver.create('almost', {});
    w.store.data.volumes.almost = { backend: 'local', layout: 'directory', mounts: {}, attached: false, pending: 'create' };
    await w.store.save();

    const { driver, store } = await w.restart();
    expect((await refusal(driver.get('almost'))).code).toBe('NOT_FOUND');
    await driver.restore();
    expect(store.data.volumes.almost).toBeUndefined(); // nothing pending, nothing mounted: no host facts left
    expect((await driver.get('almost')).name).toBe('almost');
  });

  it("restore() finishes a 'remove' that was interrupted", async () => {
    const w = await world();
    await w.driver.create('halfgone', {});
    w.store.data.volumes.halfgone = { backend: 'local', layout: 'directory', mounts: {}, attached: false, pending: 'remove', onRemove: 'delete' };
    await w.store.save();

    const { driver, store } = await w.restart();
    await driver.restore();
    expect(store.data.volumes.halfgone).toBeUndefined();
    expect(await exists(path.join(w.volumesDir, 'halfgone'))).toBe(false);
  });

  it("restore() finishes an interrupted 'remove' of a retained volume: hidden, not back in the list", async () => {
    const w = await world();
    await w.driver.create('keepme', { onRemove: 'retain' });
    w.store.data.volumes.keepme = { backend: 'local', layout: 'directory', mounts: {}, attached: false, pending: 'remove', onRemove: 'retain' };
    await w.store.save();

    const { driver, store } = await w.restart();
    await driver.restore();
    expect(store.data.volumes.keepme).toBeUndefined();
    expect((await driver.list()).map((v) => v.name)).not.toContain('keepme');
    expect(await exists(path.join(w.volumesDir, 'keepme', 'data'))).toBe(true);
  });

  it("restore() finishes an interrupted 'remove' of an archived volume: renamed to an archive", async () => {
    const w = await world();
    await w.driver.create('oldlogs', { onRemove: 'archive' });
    w.store.data.volumes.oldlogs = { backend: 'local', layout: 'directory', mounts: {}, attached: false, pending: 'remove', onRemove: 'archive' };
    await w.store.save();

    const { driver, store } = await w.restart();
    await driver.restore();
    expect(store.data.volumes.oldlogs).toBeUndefined();
    const folders = await fs.readdir(w.volumesDir);
    expect(folders).not.toContain('oldlogs');
    expect(folders.some((f) => f.startsWith('oldlogs.archive-'))).toBe(true);
  });

  it('a lost state file loses no volume: they are found again on the backend', async () => {
    const w = await world();
    await w.driver.create('durable', { size: '32M' });
    await w.driver.create('durdir', { onRemove: 'retain' });
    await fs.rm(w.stateFile);

    const { driver } = await w.restart();
    await driver.restore();
    expect((await driver.list()).map((v) => v.name)).toEqual(['durable', 'durdir']);
    expect((await driver.get('durable')).status).toMatchObject({ layout: 'image', sizeBytes: 32 * 1024 * 1024 });
    // re-created with the same options is idempotent, with other options a conflict
    await driver.create('durdir', { onRemove: 'retain' });
    expect((await refusal(driver.create('durdir', {}))).code).toBe('OPTIONS_CONFLICT');
  });

  it('a corrupt state file is set aside and the volumes are still served', async () => {
    const w = await world();
    await w.driver.create('survivor', {});
    await fs.writeFile(w.stateFile, '{ not json');

    const { driver } = await w.restart();
    await driver.restore();
    expect((await driver.get('survivor')).name).toBe('survivor');
    expect((await fs.readdir(path.dirname(w.stateFile))).some((n) => n.startsWith('state.json.corrupt-'))).toBe(true);
  });
});

describe('scope', () => {
  it('follows the config: global when scope is global, local when local', async () => {
    const g = await makeWorld('scope', { scope: 'global' });
    worlds.push(g);
    expect(g.driver.scope).toBe('global');
    const l = await makeWorld('scope', { scope: 'local' });
    worlds.push(l);
    expect(l.driver.scope).toBe('local');
  });
});
