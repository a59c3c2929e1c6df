import { OperationTiming, operationTimings } from '../../src/log';
import { refusal } from './support/driver-world';
import { removeRigs, rig } from './support/fake-world';

/**
 * The driver's side of the metrics, over the real local backend and a fake mount seam: the timings
 * its verbs emit (operation, volume, backend, result) and what a sweep and the in-memory facts say.
 */
afterAll(removeRigs);

const MiB = 1024 * 1024;

function recordTimings(): { seen: OperationTiming[]; stop: () => void } {
  const seen: OperationTiming[] = [];
  const stop = operationTimings.subscribe((t) => seen.push(t));
  return { seen, stop };
}

describe('operation timings from the driver', () => {
  it('each verb emits one timing with its volume, its backend and ok', async () => {
    const r = await rig('timings');
    const { seen, stop } = recordTimings();
    try {
      await r.driver.create('timed', { size: '64M' });
      await r.driver.mount('timed', 'A');
      await r.driver.unmount('timed', 'A');
      await r.driver.remove('timed');
    } finally {
      stop();
    }
    const mine = seen.filter((t) => t.volume === 'timed');
    expect(mine.map((t) => [t.operation, t.backend, t.result])).toEqual([
      ['create', 'local', 'ok'],
      ['mount', 'local', 'ok'],
      ['unmount', 'local', 'ok'],
      ['remove', 'local', 'ok'],
    ]);
    for (const t of mine) expect(t.durationSeconds).toBeGreaterThan(0);
  });

  it('a refused verb emits its error code as the result', async () => {
    const r = await rig('timing-refused');
    const { seen, stop } = recordTimings();
    try {
      expect((await refusal(r.driver.mount('never-made', 'A'))).code).toBe('NOT_FOUND');
      await r.driver.create('busy', {});
      await r.driver.mount('busy', 'A');
      expect((await refusal(r.driver.remove('busy'))).code).toBe('IN_USE');
    } finally {
      stop();
    }
    expect(seen.find((t) => t.volume === 'never-made')).toMatchObject({ operation: 'mount', backend: '', result: 'NOT_FOUND' });
    expect(seen.find((t) => t.volume === 'busy' && t.operation === 'remove')).toMatchObject({ backend: 'local', result: 'IN_USE' });
  });
});

describe('the facts the metrics read', () => {
  it('a sweep measures every live volume and lists every backend; mount counts come from memory', async () => {
    const r = await rig('sweep');
    await r.driver.create('img', { size: '64M' });
    await r.driver.create('dir', {});
    await r.driver.mount('img', 'A');
    await r.driver.mount('img', 'B');
    const ops = r.driver.operations;
    const sweep = await ops.sweepStats(4);
    expect(sweep.backends).toEqual([{ name: 'local', up: true }]);
    const byName = Object.fromEntries(sweep.volumes.map((v) => [v.name, v]));
    expect(Object.keys(byName).sort()).toEqual(['dir', 'img']);
    // The fake seam says 3 MiB used, 61 MiB available inside the mounted image.
    expect(byName.img).toMatchObject({ backend: 'local', layout: 'image', capacityBytes: 64 * MiB, usedBytes: 3 * MiB, availableBytes: 61 * MiB, healthy: true });
    expect(byName.img.error).toBeUndefined();
    expect(byName.dir).toMatchObject({ backend: 'local', layout: 'directory' });
    expect(byName.dir.healthy).toBeUndefined();
    expect(byName.dir.capacityBytes).toBe((byName.dir.usedBytes ?? NaN) + (byName.dir.availableBytes ?? NaN));
    expect(ops.hostFacts({ name: 'img', backend: 'local', layout: 'image' })).toEqual({ mounts: 2, leaseHeld: undefined });
    expect(ops.hostFacts({ name: 'dir', backend: 'local', layout: 'directory' })).toEqual({ mounts: 0, leaseHeld: undefined });
    expect(ops.volumesHere()).toEqual([{ name: 'img', backend: 'local', layout: 'image' }]);
  });

  it('a sweep stops early when its signal aborts', async () => {
    const r = await rig('sweep-abort');
    for (const n of ['a1', 'a2', 'a3']) await r.driver.create(n, {});
    const stopped = new AbortController();
    stopped.abort();
    const sweep = await r.driver.operations.sweepStats(1, stopped.signal);
    expect(sweep.volumes).toEqual([]);
    expect(sweep.backends).toEqual([{ name: 'local', up: true }]);
  });
});
