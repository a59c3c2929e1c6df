import { makeWorld, mountsAt, World } from './support/driver-world';

/**
 * Admin holds (backup, clone, resize mount a volume under an admin mount ID): a daemon killed with
 * kill -9 while holding one leaves it in the ledger; the next daemon run releases it at start. A
 * restart is a new VolumeDriver over the same state file, the old one dropped without close().
 */
jest.setTimeout(60_000);

const worlds: World[] = [];
afterAll(async () => {
  for (const w of worlds) await w.cleanup();
});

describe('admin holds after a kill -9', () => {
  it('a hold taken by a daemon killed with kill -9 is released at the next start, and the volume is detached', async () => {
    const w = await makeWorld('holds');
    worlds.push(w);
    await w.driver.create('held', { size: '32M' });
    const hold = await w.driver.operations.hold('held', 'backup');
    expect(await mountsAt(hold.mountpoint)).toBe(1);
    const ids = Object.keys(w.store.data.volumes.held.mounts);
    expect(ids).toHaveLength(1);
    expect(ids[0]).toMatch(/^netvol-admin\.backup\./);
    // kill -9: the first driver is dropped without close() or release(); a new one starts over the same state.
    const { driver, store } = await w.restart();
    await driver.restore();
    expect(store.data.volumes.held?.mounts ?? {}).toEqual({});
    expect(await mountsAt(hold.mountpoint)).toBe(0);
    await driver.remove('held');
  });

  it('at the next start a container\'s mount ID is kept while the dead daemon\'s hold on the same volume is released', async () => {
    const w = await makeWorld('holds2');
    worlds.push(w);
    await w.driver.create('shared', {});
    const mp = await w.driver.mount('shared', 'container-1');
    await w.driver.operations.hold('shared', 'clone');
    const { driver, store } = await w.restart();
    await driver.restore();
    expect(store.data.volumes.shared.mounts).toEqual({ 'container-1': 1 });
    expect(await mountsAt(mp)).toBe(1);
    await driver.unmount('shared', 'container-1');
    expect(await mountsAt(mp)).toBe(0);
  });

  it('a hold of the running daemon is not released by its own restore and blocks Remove until released', async () => {
    const w = await makeWorld('holds3');
    worlds.push(w);
    await w.driver.create('mine', {});
    const hold = await w.driver.operations.hold('mine', 'resize');
    await w.driver.restore();
    expect(Object.keys(w.store.data.volumes.mine.mounts)).toHaveLength(1);
    await expect(w.driver.remove('mine')).rejects.toMatchObject({ code: 'IN_USE' });
    await hold.release();
    await hold.release();
    await w.driver.remove('mine');
  });
});
