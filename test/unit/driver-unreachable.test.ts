/**
 * Mount of a volume this host has attached, while the backend's server does not answer: the
 * attachment (whose helper reconnects by itself) is left as it is, and the Mount is answered at
 * once with an Err naming the volume; only a dead attachment is attached again.
 */
import type { AttachmentHealth, Backend } from '../../src/backends';
import { buildConfig } from '../../src/config';
import { VolumeDriver } from '../../src/driver';
import { recordingLogger, refusal } from './support/driver-world';
import { removeRigs, rig } from './support/fake-world';

afterAll(removeRigs);

/** The rig's local backend, presented as networked, whose health() says what the case needs (or never answers). */
async function world(tag: string) {
  const r = await rig(tag);
  const config = buildConfig({ stateDir: r.config.stateDir, hostId: 'fake-host', timeoutSeconds: 0.5, backends: { local: { type: 'local', path: `${r.root}/volumes` } } }, 'unit test', {});
  const calls = { attach: 0, detach: 0 };
  const state: { health: AttachmentHealth | 'never' } = { health: 'attached' };
  const backend = Object.create(r.backend) as Backend;
  Object.defineProperty(backend, 'capabilities', { value: { ...r.backend.capabilities, networked: true } });
  backend.attach = (name: string, signal?: AbortSignal) => {
    calls.attach++;
    return r.backend.attach(name, signal);
  };
  backend.detach = (name: string, signal?: AbortSignal) => {
    calls.detach++;
    return r.backend.detach(name, signal);
  };
  backend.health = async () => {
    if (state.health === 'never') return new Promise<AttachmentHealth>((resolve) => setTimeout(() => resolve('attached'), 1500));
    return state.health;
  };
  const { log } = recordingLogger();
  const driver = new (VolumeDriver as unknown as new (...a: unknown[]) => VolumeDriver)(config, new Map([['local', backend]]), r.store, log, r.mounts);
  await driver.create('vol', {});
  await driver.mount('vol', 'c1');
  expect(calls.attach).toBe(1);
  return { r, driver, calls, state };
}

describe('Mount while the server of an attached volume does not answer', () => {
  it('is answered at once with BACKEND_UNAVAILABLE naming the volume and what to do; the attachment stays and the mount is not counted', async () => {
    const { r, driver, calls, state } = await world('unreach');
    state.health = 'unreachable';
    const started = Date.now();
    const err = await refusal(driver.mount('vol', 'c2'));
    expect(Date.now() - started).toBeLessThan(1000);
    expect(err.code).toBe('BACKEND_UNAVAILABLE');
    expect(err.message).toMatch(/^volume vol: the server of backend local does not answer; .*reconnects by itself.*try again when the server answers$/);
    expect(calls).toEqual({ attach: 1, detach: 0 });
    expect(r.mounts.table.has(r.mountpoint('vol'))).toBe(true);
    expect((await driver.get('vol')).status.mounts).toEqual(['c1']);

    // The server answers again: the next Mount is counted on the same attachment.
    state.health = 'attached';
    await expect(driver.mount('vol', 'c2')).resolves.toBe(r.mountpoint('vol'));
    expect(calls).toEqual({ attach: 1, detach: 0 });
  });

  it('a health check that does not finish within the timeout counts as unreachable, not dead: answered after one timeout, nothing replaced', async () => {
    const { r, driver, calls, state } = await world('hang');
    state.health = 'never';
    const started = Date.now();
    const err = await refusal(driver.mount('vol', 'c2'));
    const took = Date.now() - started;
    expect(err.code).toBe('BACKEND_UNAVAILABLE');
    expect(err.message).toMatch(/^volume vol: /);
    expect(took).toBeGreaterThanOrEqual(450);
    expect(took).toBeLessThan(1400);
    expect(calls).toEqual({ attach: 1, detach: 0 });
    expect(r.mounts.table.has(r.mountpoint('vol'))).toBe(true);
  });

  it('a dead attachment is still attached again, and the Mount counted', async () => {
    const { r, driver, calls, state } = await world('dead');
    state.health = 'dead';
    await expect(driver.mount('vol', 'c2')).resolves.toBe(r.mountpoint('vol'));
    expect(calls.attach).toBe(2);
    expect((await driver.get('vol')).status.mounts).toEqual(['c1', 'c2']);
  });
});

describe('re-attaching a dead attachment that fails', () => {
  // Found by the chaos tier (sshd killed mid-write): the dead stack's mount was taken off the
  // mountpoint before the new attachment was made; when that failed, the mountpoint was a plain
  // folder of this host's disk, and writes through its path went there, fsynced, and were gone
  // once the volume was mounted again.
  it('leaves the dead mount on the mountpoint (writes fail loudly) and the record attached, so the last Unmount still takes it down', async () => {
    const { r, driver, calls, state } = await world('dead-fails');
    const b = (driver as unknown as { pool: { find(n: string): Backend } }).pool.find('local');
    state.health = 'dead';
    const attach = b.attach;
    b.attach = async () => {
      calls.attach++;
      throw new Error('backend local: cannot attach volume vol: the server does not answer');
    };
    await refusal(driver.mount('vol', 'c2'));
    expect(calls.attach).toBe(2);
    expect(r.mounts.table.has(r.mountpoint('vol'))).toBe(true);
    b.attach = attach;
    await driver.unmount('vol', 'c1');
    expect(r.mounts.table.has(r.mountpoint('vol'))).toBe(false);
    expect(calls.detach).toBe(1);
  });
});

describe('a backend that cannot be opened', () => {
  it('fails Create and Mount with an Err that names the volume, the backend and what to do', async () => {
    const r = await rig('open-fails');
    const config = buildConfig({ stateDir: r.config.stateDir, hostId: 'fake-host', timeoutSeconds: 0.5, backends: { local: { type: 'local', path: `${r.root}/volumes` } } }, 'unit test', {});
    const backend = Object.create(r.backend) as Backend;
    backend.open = async () => {
      throw new Error('backend local: connection refused by 127.0.0.1:22');
    };
    const { log } = recordingLogger();
    const driver = new (VolumeDriver as unknown as new (...a: unknown[]) => VolumeDriver)(config, new Map([['local', backend]]), r.store, log, r.mounts);
    for (const attempt of [() => driver.create('vol-o', {}), () => driver.mount('vol-o', 'c1')]) {
      const err = await refusal(attempt());
      expect(err.message).toMatch(/^volume vol-o: /);
      expect(err.message).toMatch(/backend local/);
      expect(err.message).toMatch(/connection refused/);
      expect(err.message).toMatch(/check that backend local is reachable from this host|try again/);
    }
  });
});
