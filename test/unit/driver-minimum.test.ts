import { promises as fs } from 'node:fs';
import path from 'node:path';
import { MiB, refusal } from './support/driver-world';
import { removeRigs, Rig, rig } from './support/fake-world';

afterAll(removeRigs);

/** An xfs image volume of 64M as older xfsprogs made them (mkfs.xfs then accepted less than 300M). */
async function olderXfsVolume(r: Rig, name: string): Promise<void> {
  const folder = path.join(r.root, 'volumes', name);
  await fs.mkdir(folder, { recursive: true });
  await fs.writeFile(path.join(folder, 'data.img'), '');
  await fs.truncate(path.join(folder, 'data.img'), 64 * MiB);
  const spec = { backend: 'local', layout: 'image', sizeBytes: 64 * MiB, fs: 'xfs', onRemove: 'delete' };
  await fs.writeFile(path.join(folder, 'volume.json'), JSON.stringify({ version: 1, name, createdAt: '2025-01-01T00:00:00.000Z', createdBy: 'older-host', spec }));
}

describe("create() and each filesystem's minimum size", () => {
  it('accepts a re-sent Create of an existing xfs image under 300M (made by older xfsprogs) with the same options', async () => {
    const r = await rig('min-resend');
    await olderXfsVolume(r, 'oldxfs');
    await r.driver.create('oldxfs', { size: '64M', fs: 'xfs' });
    expect((await r.driver.get('oldxfs')).status).toMatchObject({ layout: 'image', fs: 'xfs', sizeBytes: 64 * MiB });
  });

  it('answers a Create of that volume with other options as a conflict, naming the options, not the minimum', async () => {
    const r = await rig('min-conflict');
    await olderXfsVolume(r, 'oldxfs');
    expect(await refusal(r.driver.create('oldxfs', { size: '128M', fs: 'xfs' }))).toEqual({
      code: 'OPTIONS_CONFLICT',
      message: 'volume oldxfs already exists with different options (size): use the same options, or remove the volume first',
    });
  });

  it('still refuses a new xfs image under 300M, and touches nothing', async () => {
    const r = await rig('min-new');
    expect(await refusal(r.driver.create('newxfs', { size: '64M', fs: 'xfs' }))).toEqual({
      code: 'INVALID_OPTION',
      message: 'volume newxfs: size=64M is below the 300M minimum of an xfs image (mkfs.xfs makes none smaller); use size=300M or more, or fs=ext4 (minimum 16M)',
    });
    expect(await fs.stat(path.join(r.root, 'volumes', 'newxfs')).then(() => true, () => false)).toBe(false);
    expect(r.store.data.volumes.newxfs).toBeUndefined();
  });
});
