/**
 * The request deadline: a Docker request's work is cut off at its budget, and the volume's lock is
 * not released before the cut-off work has stopped, so a retried Mount never runs beside it.
 */
import type { Backend } from '../../src/backends';
import { buildConfig } from '../../src/config';
import { VolumeDriver, type Mounts } from '../../src/driver';
import { recordingLogger, refusal } from './support/driver-world';
import { removeRigs, rig } from './support/fake-world';

afterAll(removeRigs);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The rig's local backend, whose attach() takes `slowMs` the first time (ending early, after a short cleanup, when its signal aborts). */
function slowAttach(inner: Backend, slowMs: number, honoursSignal = true) {
  const events: string[] = [];
  let calls = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  const backend = Object.create(inner) as Backend;
  backend.attach = async (name: string, signal?: AbortSignal) => {
    const call = ++calls;
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    events.push(`start ${call}`);
    try {
      if (call === 1) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, slowMs);
          if (honoursSignal) signal?.addEventListener('abort', () => {
            clearTimeout(timer);
            setTimeout(resolve, 150); // undoing what was half done takes a moment
          });
        });
        if (honoursSignal && signal?.aborted) throw new Error('attach stopped');
      }
      return await inner.attach(name);
    } finally {
      inFlight--;
      events.push(`end ${call}`);
    }
  };
  return { backend, events, maxInFlight: () => maxInFlight };
}

async function world(tag: string, timeoutSeconds: number, slowMs: number, honoursSignal = true) {
  const r = await rig(tag);
  const config = buildConfig({ stateDir: r.config.stateDir, hostId: 'fake-host', timeoutSeconds, backends: { local: { type: 'local', path: `${r.root}/volumes` } } }, 'unit test', {});
  const slow = slowAttach(r.backend, slowMs, honoursSignal);
  const { log } = recordingLogger();
  const budgets = { createMs: 800, mountMs: 800, otherMs: 800, settleMs: 2000 };
  const driver = new (VolumeDriver as unknown as new (...a: unknown[]) => VolumeDriver)(config, new Map([['local', slow.backend]]), r.store, log, r.mounts, budgets);
  return { r, slow, driver };
}

describe('request deadline', () => {
  it('a Mount whose backend call outlives the deadline keeps the volume locked until that call has stopped: a retried Mount never runs beside it', async () => {
    const r = await rig('deadline');
    const config = buildConfig({ stateDir: r.config.stateDir, hostId: 'fake-host', timeoutSeconds: 0.3, backends: { local: { type: 'local', path: `${r.root}/volumes` } } }, 'unit test', {});
    const slow = slowAttach(r.backend, 3000);
    const { log } = recordingLogger();
    const budgets = { createMs: 800, mountMs: 800, otherMs: 800, settleMs: 2000 };
    const driver = new (VolumeDriver as unknown as new (...a: unknown[]) => VolumeDriver)(config, new Map([['local', slow.backend]]), r.store, log, r.mounts, budgets);
    await driver.create('slowvol', {});

    const first = refusal(driver.mount('slowvol', 'm1'));
    await sleep(500); // past the single call's bound (0.3 s), before the request's budget
    const second = driver.mount('slowvol', 'm2');
    const failed = await first;
    expect(failed.code).toBe('TIMEOUT');
    expect(failed.message).toMatch(/volume slowvol/);
    await expect(second).resolves.toBe(r.mountpoint('slowvol'));

    expect(slow.maxInFlight()).toBe(1);
    expect(slow.events).toEqual(['start 1', 'end 1', 'start 2', 'end 2']);
  });

  it('a Mount still working at its budget is stopped there and answered TIMEOUT within the settle time, naming the volume and the verb', async () => {
    const { r, slow, driver } = await world('budget', 10, 5000);
    await driver.create('budgetvol', {});
    const started = Date.now();
    const failed = await refusal(driver.mount('budgetvol', 'm1'));
    const took = Date.now() - started;
    expect(failed.code).toBe('TIMEOUT');
    expect(failed.message).toMatch(/^volume budgetvol: mount did not finish within 0\.8 s/);
    expect(took).toBeGreaterThanOrEqual(750);
    expect(took).toBeLessThan(2000);
    expect(r.mounts.table.size).toBe(0);
    // The answer may leave before the stopped attach has finished undoing; the lock does not.
    await expect(driver.mount('budgetvol', 'm2')).resolves.toBe(r.mountpoint('budgetvol'));
    expect(slow.events).toEqual(['start 1', 'end 1', 'start 2', 'end 2']);
  });

  it('work that ignores the abort keeps the volume locked: a retried Mount waits, then fails TIMEOUT at its own deadline without running', async () => {
    const { slow, driver } = await world('stuck', 10, 3500, false);
    await driver.create('stuckvol', {});
    const first = refusal(driver.mount('stuckvol', 'm1'));
    await sleep(900); // the first request is out of time and answered after the settle time; its work still runs
    const second = await refusal(driver.mount('stuckvol', 'm2'));
    expect(second.code).toBe('TIMEOUT');
    expect(second.message).toMatch(/^volume stuckvol: mount waited 0\.8 s for an earlier request on this volume that is still finishing/);
    expect((await first).code).toBe('TIMEOUT');
    expect(slow.events).toEqual(['start 1']);
    expect(slow.maxInFlight()).toBe(1);
    await sleep(2000);
    expect(slow.events).toEqual(['start 1', 'end 1']);
  });

  it('a Create whose image is still being made at its budget stops the image maker (mkfs) and leaves no half-made volume', async () => {
    const { r, driver } = await world('mkfs', 10, 0);
    let sawAbort = false;
    (r.mounts as Mounts).createImage = (_file, _size, _fs, _attrs, signal) =>
      new Promise<void>((_resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('mkfs was never stopped')), 5000);
        signal?.addEventListener('abort', () => {
          sawAbort = true;
          clearTimeout(timer);
          reject(new Error('mkfs killed'));
        });
      });
    const failed = await refusal(driver.create('slowimg', { size: '64M' }));
    expect(failed.code).toBe('TIMEOUT');
    expect(failed.message).toMatch(/volume slowimg/);
    expect(sawAbort).toBe(true);
    await expect(driver.get('slowimg')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});
