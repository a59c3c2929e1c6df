import { promises as fs } from 'node:fs';
import path from 'node:path';
import { MiB, refusal } from './support/driver-world';
import { removeRigs, Rig, rig } from './support/fake-world';
import { HostsWorld, makeHosts } from './support/hosts-world';

const worlds: HostsWorld[] = [];
afterAll(async () => {
  await removeRigs();
  for (const w of worlds) await w.cleanup();
});

/**
 * Bytes the files and folders below `dir` occupy on disk (sparse files count what they hold).
 * Files that vanish while it walks (heartbeats' temporary files, trash) count as gone.
 */
async function allocated(dir: string): Promise<number> {
  const gone = (err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  };
  let total = 0;
  for (const entry of (await fs.readdir(dir, { withFileTypes: true }).catch(gone)) ?? []) {
    const p = path.join(dir, entry.name);
    const st = await fs.lstat(p).catch(gone);
    if (!st) continue;
    total += st.blocks * 512;
    if (entry.isDirectory()) total += await allocated(p);
  }
  return total;
}

/**
 * Gives the rig's local backend a disk of `capacity` bytes: its free space is that less what the
 * volumes folder really occupies, so data written into an image is taken from it as on a real disk.
 */
function smallDisk(r: Pick<Rig, 'backend'>, capacity: number, volumes: string): void {
  r.backend.freeBytes = async () => capacity - (await allocated(volumes));
}

const exists = (p: string): Promise<boolean> => fs.stat(p).then(() => true, () => false);

describe('create() counts the space promised to image volumes (allowOvercommit: false)', () => {
  it('refuses the image that no longer fits once earlier images are counted, though each alone would fit the free space', async () => {
    const r = await rig('promise');
    smallDisk(r, 150 * MiB, path.join(r.root, 'volumes'));
    await r.driver.create('va', { size: '64M' });
    await r.driver.create('vb', { size: '64M' });
    const refused = await refusal(r.driver.create('vc', { size: '64M' }));
    expect(refused.code).toBe('NO_SPACE');
    expect(refused.message).toMatch(
      /^volume vc: backend local has 150\.0 MiB free and 2 image volumes on it are still promised 128\.0 MiB \(their sizes less what their images already hold\), so 22\.0 MiB is left, less than the requested size 64\.0 MiB: choose a smaller size, free space on the backend, or set allowOvercommit: true on the backend$/,
    );
    expect(await exists(path.join(r.root, 'volumes', 'vc'))).toBe(false);
    expect(r.store.data.volumes.vc).toBeUndefined();
    // A folder volume promises nothing and is still made.
    await r.driver.create('plain', {});
  });

  it('counts what an image already holds once: as used disk, not again as promised', async () => {
    const r = await rig('held');
    smallDisk(r, 150 * MiB, path.join(r.root, 'volumes'));
    await r.driver.create('va', { size: '64M' });
    // 40M of data land in a's image: the disk has 40M less free, and a promises 40M less.
    const handle = await fs.open(path.join(r.root, 'volumes', 'va', 'data.img'), 'r+');
    try {
      await handle.write(Buffer.alloc(40 * MiB, 1), 0, 40 * MiB, 0);
      await handle.sync();
    } finally {
      await handle.close();
    }
    // Free 110M, promised 24M: 64M fits (counting a's full size would make it 128M > 110M).
    await r.driver.create('vb', { size: '64M' });
    const refused = await refusal(r.driver.create('vc', { size: '64M' }));
    expect(refused.code).toBe('NO_SPACE');
    expect(refused.message).toMatch(/^volume vc: backend local has 110\.0 MiB free and 2 image volumes on it are still promised 88\.0 MiB/);
  });

  it('lets only one of two Creates at the same moment take the last space', async () => {
    const r = await rig('race');
    smallDisk(r, 100 * MiB, path.join(r.root, 'volumes'));
    const results = await Promise.allSettled([r.driver.create('vx', { size: '64M' }), r.driver.create('vy', { size: '64M' })]);
    expect(results.map((s) => s.status).sort()).toEqual(['fulfilled', 'rejected']);
    const failed = results.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    expect((failed?.reason as { code?: string }).code).toBe('NO_SPACE');
  });

  it('still says plainly when the size alone does not fit the free space', async () => {
    const r = await rig('alone');
    smallDisk(r, 50 * MiB, path.join(r.root, 'volumes'));
    expect(await refusal(r.driver.create('big', { size: '64M' }))).toEqual({
      code: 'NO_SPACE',
      message: 'volume big: backend local has 50.0 MiB free, less than the requested size 64.0 MiB: choose a smaller size, free space, or set allowOvercommit: true on the backend',
    });
  });

  it('promises freely with allowOvercommit: true', async () => {
    const r = await rig('overcommit', { allowOvercommit: true });
    smallDisk(r, 100 * MiB, path.join(r.root, 'volumes'));
    for (const name of ['va', 'vb', 'vc']) await r.driver.create(name, { size: '64M' });
    expect((await r.driver.list()).map((v) => v.name)).toEqual(['va', 'vb', 'vc']);
  });

  it('a re-sent Create of an existing image volume is not counted against itself', async () => {
    const r = await rig('resend');
    smallDisk(r, 100 * MiB, path.join(r.root, 'volumes'));
    await r.driver.create('va', { size: '64M' });
    await r.driver.create('va', { size: '64M' });
  });

  it("counts, from the backend's volume.json files, what another host's image volumes were promised", async () => {
    const w = await makeHosts('space', ['host-a', 'host-b']);
    worlds.push(w);
    const [a, b] = w.hosts;
    for (const h of w.hosts) smallDisk(h, 100 * MiB, w.shared);
    await a.driver.create('froma', { size: '64M' }); // a real ext4 image: it holds a few MiB, the rest is promised
    const refused = await refusal(b.driver.create('fromb', { size: '64M' }));
    expect(refused.code).toBe('NO_SPACE');
    expect(refused.message).toMatch(/^volume fromb: backend nas has [\d.]+ MiB free and 1 image volume on it is still promised [\d.]+ MiB/);
  }, 60_000);
});
