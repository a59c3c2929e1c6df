import { promises as fs } from 'node:fs';
import path from 'node:path';
import { refusal } from './support/driver-world';
import { removeRigs, rig } from './support/fake-world';

afterAll(removeRigs);

describe("create() and the backend's capabilities", () => {
  it('refuses size on a backend that cannot hold image volumes, naming the backend, and touches nothing', async () => {
    const r = await rig('noimage');
    Object.defineProperty(r.backend, 'capabilities', { value: { ...r.backend.capabilities, imageVolumes: false } });
    const refused = await refusal(r.driver.create('sized', { size: '64M' }));
    expect(refused).toEqual({
      code: 'INVALID_OPTION',
      message: 'volume sized: backend local (local) cannot hold image volumes, so the size option is not available on it: create the volume without size, or on a backend that has image volumes',
    });
    expect(await fs.stat(path.join(r.root, 'volumes', 'sized')).then(() => true, () => false)).toBe(false);
    expect(r.store.data.volumes.sized).toBeUndefined();
    // Directory volumes are still made there.
    await r.driver.create('plain', {});
    expect((await r.driver.get('plain')).status).toMatchObject({ backend: 'local', layout: 'directory' });
  });

  it('an unknown backend name of any length is quoted short: the Err names the volume and the backends there are', async () => {
    // Found by the chaos tier's fuzzing: a 20,000-character name came back whole in the Err.
    const r = await rig('longbackend');
    const refused = await refusal(r.driver.create('longb', { backend: 'y'.repeat(20_000) }));
    expect(refused.code).toBe('INVALID_OPTION');
    expect(refused.message.length).toBeLessThan(300);
    expect(refused.message).toMatch(/^volume longb: unknown backend "y+…" \(20000 characters\): configured backends are local$/);
  });

  it('makes image volumes on a backend that declares them', async () => {
    const r = await rig('default');
    expect(r.backend.capabilities.imageVolumes).toBe(true);
    await r.driver.create('sized', { size: '64M' });
    expect((await r.driver.get('sized')).status).toMatchObject({ layout: 'image', sizeBytes: 64 * 1024 * 1024 });
  });
});
