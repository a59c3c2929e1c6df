import type { VolumeMeta } from '../../src/driver/catalog';
import { buildStatus, usageText } from '../../src/driver/status';

const MiB = 1024 * 1024;
const meta = (spec: Partial<VolumeMeta['spec']>): VolumeMeta => ({
  version: 1,
  name: 'v',
  createdAt: '2026-11-23T10:00:00.000Z',
  createdBy: 'host-a',
  spec: { backend: 'local', layout: 'directory', onRemove: 'delete', ...spec },
});

describe('Status', () => {
  it('usageText() of an image reads "12.0 MiB of 64.0 MiB (19%)"', () => {
    expect(usageText({ sizeBytes: 64 * MiB, usedBytes: 12 * MiB, availableBytes: 52 * MiB })).toBe('12.0 MiB of 64.0 MiB (19%)');
  });

  it('usageText() of a folder reads "<used> used, <available> available"', () => {
    expect(usageText({ usedBytes: 12 * MiB, availableBytes: 40 * 1024 * MiB })).toBe('12.0 MiB used, 40.0 GiB available');
  });

  it('buildStatus() of an image lists backend, layout, size, fs, usage, mount IDs and their total', () => {
    const s = buildStatus(meta({ layout: 'image', sizeBytes: 64 * MiB, fs: 'ext4' }), { sizeBytes: 64 * MiB, usedBytes: 32 * MiB, availableBytes: 32 * MiB }, { a: 2, b: 1 }, { healthy: true });
    expect(s).toEqual({
      backend: 'local',
      layout: 'image',
      sizeBytes: 64 * MiB,
      fs: 'ext4',
      usedBytes: 32 * MiB,
      availableBytes: 32 * MiB,
      usage: '32.0 MiB of 64.0 MiB (50%)',
      onRemove: 'delete',
      createdBy: 'host-a',
      mounts: ['a', 'b'],
      mountCount: 3,
      healthy: true,
    });
  });

  it('buildStatus() of a folder has no size, and no usage fields when usage is unknown', () => {
    const s = buildStatus(meta({}), undefined, {}, {});
    expect(s).toEqual({ backend: 'local', layout: 'directory', onRemove: 'delete', createdBy: 'host-a', mounts: [], mountCount: 0 });
  });
});
