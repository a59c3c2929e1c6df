import { refusal, settle } from './support/driver-world';
import { removeRigs, rig } from './support/fake-world';

afterAll(removeRigs);

describe('driver log lines', () => {
  it('name the backend on every line about a volume, through a whole life and a restart', async () => {
    const r = await rig('logs');
    await r.driver.create('img', { size: '64M', onRemove: 'archive' });
    await r.driver.create('dir', {});
    r.mounts.failNextImageMount = new Error('mount: bad superblock');
    await refusal(r.driver.mount('img', 'A'));
    await r.driver.mount('img', 'A');
    await r.driver.mount('dir', 'B');
    await r.driver.get('img');
    r.mounts.forgetAll();
    await r.restart();
    await r.driver.restore();
    await r.driver.remountAll();
    await r.driver.unmount('img', 'A');
    await r.driver.unmount('dir', 'B');
    await r.driver.remove('img');
    await r.driver.remove('dir');
    await settle();

    const aboutVolumes = r.records.filter((rec) => rec.volume !== undefined);
    expect(aboutVolumes.map((rec) => rec.message)).toEqual(
      expect.arrayContaining(['created volume', 'attached volume', 're-attaching a volume that has live mounts but lost its mount', 'detached volume', 'archived volume', 'removed volume']),
    );
    expect(aboutVolumes.filter((rec) => rec.backend !== 'local')).toEqual([]);
  });
});
