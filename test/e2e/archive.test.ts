import * as fs from 'node:fs';
import * as path from 'node:path';
import { Netvol, startNetvol } from '../harness/netvol';

jest.setTimeout(120_000);

/** onRemove=archive over the plugin socket, as dockerd sends it, with the longest name Docker allows. */
describe('onRemove=archive through the daemon', () => {
  let nv: Netvol | undefined;
  beforeAll(async () => {
    nv = await startNetvol();
  });
  afterAll(async () => {
    await nv?.cleanup();
  });

  test('a volume with a 255-character name is removed and its data kept under an archive that fits', async () => {
    const name = `arch-${'q'.repeat(250)}`;
    expect(name).toHaveLength(255);
    expect((await nv!.request('VolumeDriver.Create', { Name: name, Opts: { size: '16M', onRemove: 'archive' } })).json).toEqual({ Err: '' });
    const mounted = await nv!.request('VolumeDriver.Mount', { Name: name, ID: 'c1' });
    expect(mounted.json.Err).toBe('');
    fs.writeFileSync(path.join(mounted.json.Mountpoint as string, 'kept.txt'), 'still here');
    expect((await nv!.request('VolumeDriver.Unmount', { Name: name, ID: 'c1' })).json.Err).toBe('');

    expect((await nv!.request('VolumeDriver.Remove', { Name: name })).json).toEqual({ Err: '' });

    expect((await nv!.request('VolumeDriver.Get', { Name: name })).json.Err).not.toBe('');
    const folders = fs.readdirSync(nv!.localPath);
    expect(folders).not.toContain(name);
    const archive = folders.find((f) => f.startsWith('arch-qqq') && f.includes('.archive-'));
    expect(archive).toBeDefined();
    expect(Buffer.byteLength(archive!)).toBeLessThanOrEqual(255);
  });
});
