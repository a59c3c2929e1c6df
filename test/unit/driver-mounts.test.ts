import { promises as fs } from 'node:fs';
import path from 'node:path';
import { DEFAULT_BUDGETS } from '../../src/driver/locks';
import { refusal } from './support/driver-world';
import { removeRigs, rig } from './support/fake-world';

/**
 * The driver's bookkeeping over a fake mount seam: mount counting, undo after a failed image mount,
 * and recovery at start, with no loop device, no mount(8) and no root. The same rules run against
 * the kernel in driver.test.ts and driver-restart.test.ts.
 */
afterAll(removeRigs);

async function until(ok: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms`);
    await new Promise((res) => setTimeout(res, 25));
  }
}

describe('the driver over a fake mount seam', () => {
  it('mounts an image once for any number of Mounts and unmounts it after the last Unmount', async () => {
    const r = await rig('count');
    await r.driver.create('counted', { size: '64M' });
    const mp = r.mountpoint('counted');
    expect(await r.driver.mount('counted', 'A')).toBe(mp);
    await r.driver.mount('counted', 'A');
    await r.driver.mount('counted', 'B');
    expect(r.mounts.log).toEqual([`mountImage ${mp}`]);
    expect((await r.driver.get('counted')).status).toMatchObject({ mounts: ['A', 'B'], mountCount: 3, usedBytes: 3 * 1024 * 1024 });

    await r.driver.unmount('counted', 'A');
    await r.driver.unmount('counted', 'B');
    expect(await r.mounts.isMounted(mp)).toBe(true);
    await r.driver.unmount('counted', 'A');
    expect(r.mounts.log).toEqual([`mountImage ${mp}`, `unmountImage ${mp}`]);
    expect(r.store.data.volumes.counted).toMatchObject({ attached: false, mounts: {}, lastUsage: { usedBytes: 3 * 1024 * 1024 } });
  });

  it('undoes an image mount that fails: no mount ID counted, nothing attached, and the next Mount tries again', async () => {
    const r = await rig('undo');
    await r.driver.create('flaky', { size: '64M' });
    r.mounts.failNextImageMount = new Error('mount: wrong fs type, bad superblock');
    const failed = await refusal(r.driver.mount('flaky', 'A'));
    expect(failed.code).toBe('COMMAND_FAILED');
    expect(failed.message).toContain('cannot mount volume flaky');
    expect(r.store.data.volumes.flaky).toBeUndefined();
    expect(await r.mounts.isMounted(r.mountpoint('flaky'))).toBe(false);
    expect(await r.driver.get('flaky')).toMatchObject({ mountpoint: '', status: { mountCount: 0 } });

    expect(await r.driver.mount('flaky', 'A')).toBe(r.mountpoint('flaky'));
    expect(r.store.data.volumes.flaky).toMatchObject({ attached: true, mounts: { A: 1 } });
  });

  it('a Create of a volume still mounted here whose folder is gone from the backend is refused and keeps the mount IDs', async () => {
    // The volume's folder went away behind this host's back (an operator, a stale peer) while a
    // container uses it: a Create must not make a new volume over the record, which would forget the
    // mount IDs (the mount would then be torn down at the next start under the running container).
    const r = await rig('gone');
    await r.driver.create('held', {});
    await r.driver.mount('held', 'A');
    await r.restart(); // metadata is read from the backend again, not from the attach-time cache
    await r.driver.restore();
    await fs.rm(path.join(r.root, 'volumes', 'held'), { recursive: true });
    const refused = await refusal(r.driver.create('held', {}));
    expect(refused.message).toMatch(/volume held: .*still mounted on this host.*mount ID/);
    expect(r.store.data.volumes.held).toMatchObject({ mounts: { A: 1 } });
    await r.restart();
    await r.driver.restore();
    expect(r.store.data.volumes.held).toMatchObject({ mounts: { A: 1 } });
    expect(await r.mounts.isMounted(r.mountpoint('held'))).toBe(true);
  });

  it('an Unmount whose detach fails answers an Err and still gives up its mount ID, as dockerd forgets it; the next Mount with that ID counts once', async () => {
    // dockerd only logs a failed Unmount and Mounts with the same ID at the container's next start:
    // an ID kept here would be counted twice then, and hold the volume in use for ever.
    const r = await rig('unmount-fails');
    await r.driver.create('stuck', {});
    await r.driver.mount('stuck', 'A');
    r.mounts.failNextUnmount = new Error('umount: target is busy');
    const failed = await refusal(r.driver.unmount('stuck', 'A'));
    expect(failed.message).toContain('cannot unmount volume stuck');
    expect(r.store.data.volumes.stuck.mounts).toEqual({});
    expect((await r.driver.get('stuck')).status).toMatchObject({ mountCount: 0 });
    expect(await r.driver.mount('stuck', 'A')).toBe(r.mountpoint('stuck'));
    expect(r.store.data.volumes.stuck).toMatchObject({ attached: true, mounts: { A: 1 } });
    await r.driver.unmount('stuck', 'A');
    expect(await r.mounts.isMounted(r.mountpoint('stuck'))).toBe(false);
    expect(r.store.data.volumes.stuck).toBeUndefined();
  });

  it('a detach that failed after the last Unmount is tried again in the background until it succeeds', async () => {
    // A userspace NFS mount that takes longer than timeoutSeconds to commit on a busy host: the
    // Unmount answers an Err, and the volume must not stay attached (helper running, attachment
    // published) until some later Mount or start.
    const r = await rig('retry-detach', {}, { ...DEFAULT_BUDGETS, detachRetryMs: [150] });
    await r.driver.create('slow', {});
    await r.driver.mount('slow', 'A');
    const mp = r.mountpoint('slow');
    r.mounts.failNextUnmount = new Error('umount: target is busy');
    await refusal(r.driver.unmount('slow', 'A'));
    expect(r.store.data.volumes.slow).toMatchObject({ attached: true, mounts: {} });
    r.mounts.failNextUnmount = new Error('umount: target is busy'); // the first retry fails too
    // The line is logged once the retry's work is done (the ledger is saved just before it).
    const finished = 'a detach that had failed finished in the background';
    await until(() => r.records.some((rec) => rec.volume === 'slow' && rec.message === finished), 5000);
    expect(r.store.data.volumes.slow).toBeUndefined();
    expect(await r.mounts.isMounted(mp)).toBe(false);
    expect(r.mounts.failNextUnmount).toBeUndefined();
    const lines = r.records.filter((rec) => rec.volume === 'slow').map((rec) => `${rec.level} ${rec.message}`);
    expect(lines.filter((l) => l.includes('tries again in the background'))).toHaveLength(2);
    expect(lines).toContain(`info ${finished}`);
    expect(r.records.filter((rec) => rec.volume === 'slow' && String(rec.message).includes('in the background')).every((rec) => rec.backend === 'local')).toBe(true);
  });

  it('a Mount before the background retry keeps the volume: the retry finds a mount ID and leaves it attached', async () => {
    const r = await rig('retry-mounted', {}, { ...DEFAULT_BUDGETS, detachRetryMs: [150] });
    await r.driver.create('back', {});
    await r.driver.mount('back', 'A');
    const mp = r.mountpoint('back');
    r.mounts.failNextUnmount = new Error('umount: target is busy');
    await refusal(r.driver.unmount('back', 'A'));
    expect(await r.driver.mount('back', 'B')).toBe(mp);
    await new Promise((res) => setTimeout(res, 600));
    expect(r.store.data.volumes.back).toMatchObject({ attached: true, mounts: { B: 1 } });
    expect(await r.mounts.isMounted(mp)).toBe(true);
    expect(r.mounts.log.filter((l) => l.startsWith('unmount'))).toHaveLength(0);
    await r.driver.unmount('back', 'B');
    expect(r.store.data.volumes.back).toBeUndefined();
  });

  it('after a reboot, restore() marks a lost mount detached and remountAll() mounts it again for its mount IDs', async () => {
    const r = await rig('reboot');
    await r.driver.create('kept', { size: '64M' });
    await r.driver.create('keptdir', {});
    await r.driver.mount('kept', 'A');
    await r.driver.mount('kept', 'A');
    await r.driver.mount('keptdir', 'B');
    r.mounts.forgetAll();
    r.mounts.log.length = 0;

    await r.restart();
    await r.driver.restore();
    expect(r.store.data.volumes.kept).toMatchObject({ attached: false, mounts: { A: 2 } });
    expect(r.store.data.volumes.keptdir).toMatchObject({ attached: false, mounts: { B: 1 } });
    await r.driver.remountAll();
    expect(r.mounts.log.sort()).toEqual([`bind ${r.mountpoint('keptdir')}`, `mountImage ${r.mountpoint('kept')}`]);
    expect(r.store.data.volumes.kept).toMatchObject({ attached: true, mounts: { A: 2 } });
    expect((await r.driver.get('keptdir')).mountpoint).toBe(r.mountpoint('keptdir'));
  });

  it('releaseStaleMounts() gives up only the mount IDs held before the start, only on volumes no running container uses', async () => {
    const r = await rig('stale');
    for (const v of ['gone', 'used', 'raced']) await r.driver.create(v, {});
    await r.driver.mount('gone', 'A');
    await r.driver.mount('gone', 'A');
    await r.driver.mount('used', 'B');
    await r.driver.mount('raced', 'C');
    await r.restart();
    await r.driver.restore();
    expect(r.driver.mountedBeforeStart().sort()).toEqual(['gone', 'raced', 'used']);
    // A container starting after the restart mounts "raced" with a new ID (and re-sends C, as docker cp would).
    await r.driver.mount('raced', 'D');
    await r.driver.mount('raced', 'C');
    r.mounts.log.length = 0;

    await r.driver.releaseStaleMounts(new Set(['used']));
    expect(r.store.data.volumes.gone).toBeUndefined();
    expect(r.mounts.log).toEqual([`unmount ${r.mountpoint('gone')}`]);
    expect(r.store.data.volumes.used).toMatchObject({ attached: true, mounts: { B: 1 } });
    expect(r.store.data.volumes.raced).toMatchObject({ attached: true, mounts: { C: 1, D: 1 } });
    // Once per start: a second call releases nothing.
    expect(r.driver.mountedBeforeStart()).toEqual([]);
    await r.driver.releaseStaleMounts(new Set());
    expect(r.store.data.volumes.used).toMatchObject({ mounts: { B: 1 } });
  });

  it('restore() unmounts a volume the kernel still has mounted though no mount ID holds it', async () => {
    const r = await rig('orphan');
    await r.driver.create('orphan', {});
    await r.driver.mount('orphan', 'A');
    // A crash between forgetting the last mount ID and unmounting: the ledger holds no ID, the kernel the mount.
    r.store.data.volumes.orphan.mounts = {};
    await r.store.save();

    await r.restart();
    await r.driver.restore();
    expect(await r.mounts.isMounted(r.mountpoint('orphan'))).toBe(false);
    expect(r.mounts.log).toEqual([`bind ${r.mountpoint('orphan')}`, `unmount ${r.mountpoint('orphan')}`]);
    expect(r.store.data.volumes.orphan).toBeUndefined();
  });

  it('a daemon killed while the backend starts its helper leaves a record, and restore() detaches what was half made', async () => {
    const r = await rig('halfattach');
    await r.driver.create('half', {});
    const detached: string[] = [];
    const attach = r.backend.attach.bind(r.backend);
    const detach = r.backend.detach.bind(r.backend);
    let started!: () => void;
    const helperStarted = new Promise<void>((resolve) => (started = resolve));
    let endOldProcess!: (err: Error) => void;
    // The helper is up (sshfs running, mounted) but attach() has not returned when the daemon dies.
    r.backend.attach = async () => {
      started();
      return new Promise<string>((_resolve, reject) => (endOldProcess = reject));
    };
    r.backend.detach = async (name: string) => {
      detached.push(name);
      return detach(name);
    };
    void r.driver.mount('half', 'A').catch(() => undefined);
    await helperStarted;

    await r.restart(); // kill -9: a new driver over the state file as it is on disk
    r.backend.attach = attach;
    await r.driver.restore();
    expect(detached).toEqual(['half']);
    expect(r.store.data.volumes.half).toBeUndefined();
    endOldProcess(new Error('the old daemon is gone')); // lets the first driver's request end, so nothing is left running
  });

  it('a daemon killed while it formats a new image volume leaves no attachment behind: restore() detaches it', async () => {
    const r = await rig('halfcreate');
    const detached: string[] = [];
    const detach = r.backend.detach.bind(r.backend);
    r.backend.detach = async (name: string) => {
      detached.push(name);
      return detach(name);
    };
    let started!: () => void;
    const formatting = new Promise<void>((resolve) => (started = resolve));
    let endOldProcess!: (err: Error) => void;
    const createImage = r.mounts.createImage.bind(r.mounts);
    r.mounts.createImage = () => {
      started();
      return new Promise<void>((_resolve, reject) => (endOldProcess = reject));
    };
    void r.driver.create('halfimg', { size: '64M' }).catch(() => undefined);
    await formatting;

    await r.restart(); // kill -9 while mkfs runs
    r.mounts.createImage = createImage;
    await r.driver.restore();
    expect(detached).toEqual(['halfimg']);
    expect(r.store.data.volumes.halfimg).toBeUndefined();
    endOldProcess(new Error('the old daemon is gone'));
  });
});
