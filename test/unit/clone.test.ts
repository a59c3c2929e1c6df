import { promises as fs } from 'node:fs';
import path from 'node:path';
import { VolumeDriver } from '../../src/driver';
import { cloneSpec } from '../../src/driver/clone';
import type { VolumeSpec } from '../../src/driver/options';
import { NetvolError } from '../../src/errors';
import { recordingLogger, refusal } from './support/driver-world';
import { removeRigs, rig, Rig } from './support/fake-world';

afterAll(removeRigs);

const MiB = 1024 * 1024;
const image: VolumeSpec = { backend: 'local', layout: 'image', sizeBytes: 64 * MiB, fs: 'ext4', uid: 1000, gid: 1000, mode: 0o750, onRemove: 'retain' };
const directory: VolumeSpec = { backend: 'local', layout: 'directory', onRemove: 'delete' };

function refused(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(NetvolError);
    return (err as NetvolError).message;
  }
  throw new Error('not refused');
}

describe('cloneSpec(): what the clone of a volume is made with', () => {
  it('takes layout, size, fs, owner, mode and onRemove from the source when nothing is given', () => {
    expect(cloneSpec('dst', 'src', image, { overrides: {}, attrs: {} })).toEqual(image);
  });

  it('lets size grow, and onRemove, owner and backend be given', () => {
    const spec = cloneSpec('dst', 'src', image, { overrides: { sizeBytes: 128 * MiB, onRemove: 'delete', uid: 0, backend: 'remote' }, attrs: { uid: 0 } });
    expect(spec).toEqual({ ...image, sizeBytes: 128 * MiB, onRemove: 'delete', uid: 0, backend: 'remote' });
  });

  it('refuses a size smaller than the source\'s, naming both sizes and what to do', () => {
    expect(refused(() => cloneSpec('dst', 'src', image, { overrides: { sizeBytes: 32 * MiB }, attrs: {} }))).toBe(
      'volume dst: size=32.0 MiB is smaller than volume src (64.0 MiB); a clone can only keep or grow the size: give size=64.0 MiB or more, or leave size out',
    );
  });

  it('refuses a size for the clone of a directory volume, and another fs than the source\'s', () => {
    expect(refused(() => cloneSpec('dst', 'src', directory, { overrides: { sizeBytes: 32 * MiB }, attrs: {} }))).toContain('src: it is a directory volume, which has no size; clone it without size');
    expect(refused(() => cloneSpec('dst', 'src', image, { overrides: { fs: 'xfs' }, attrs: {} }))).toContain('option fs=xfs differs from volume src (ext4)');
  });
});

/** A directory volume `src` holding a few files, on a rig's real local backend. */
async function withSource(r: Rig): Promise<string> {
  await r.driver.create('src', { mode: '0750', onRemove: 'retain' });
  const data = path.join(r.root, 'volumes', 'src', 'data');
  await fs.writeFile(path.join(data, 'a'), 'first\n');
  await fs.mkdir(path.join(data, 'sub'));
  await fs.writeFile(path.join(data, 'sub', 'b'), 'second\n');
  await fs.symlink('sub/b', path.join(data, 'link'));
  return data;
}

describe('create() with -o from: a clone of a directory volume on the local backend', () => {
  it('makes an independent volume with the source\'s files and options, and releases its hold on the source', async () => {
    const r = await rig('clone');
    const srcData = await withSource(r);
    await r.driver.create('dst', { from: 'src' });
    const dstData = path.join(r.root, 'volumes', 'dst', 'data');
    expect(await fs.readFile(path.join(dstData, 'sub', 'b'), 'utf8')).toBe('second\n');
    expect(await fs.readlink(path.join(dstData, 'link'))).toBe('sub/b');
    expect((await fs.stat(dstData)).mode & 0o7777).toBe(0o750);
    const meta = JSON.parse(await fs.readFile(path.join(r.root, 'volumes', 'dst', 'volume.json'), 'utf8'));
    expect(meta).toMatchObject({ name: 'dst', clonedFrom: 'src', spec: { layout: 'directory', mode: 0o750, onRemove: 'retain' } });
    // Independent: a write to one does not show in the other.
    await fs.writeFile(path.join(srcData, 'a'), 'changed in src\n');
    await fs.writeFile(path.join(dstData, 'only-in-dst'), 'x');
    expect(await fs.readFile(path.join(dstData, 'a'), 'utf8')).toBe('first\n');
    expect(await fs.stat(path.join(srcData, 'only-in-dst')).then(() => true, () => false)).toBe(false);
    // The hold on the source was released: it can be removed.
    expect(r.store.data.volumes.src).toBeUndefined();
    await r.driver.remove('src');
  });

  it('succeeds without copying again when dockerd re-sends the same Create', async () => {
    const r = await rig('clone-again');
    const srcData = await withSource(r);
    await r.driver.create('dst', { from: 'src', onRemove: 'delete' });
    await fs.writeFile(path.join(srcData, 'later'), 'written after the clone');
    await r.driver.create('dst', { from: 'src', onRemove: 'delete' });
    expect(await fs.stat(path.join(r.root, 'volumes', 'dst', 'data', 'later')).then(() => true, () => false)).toBe(false);
  });

  it('refuses an unknown source, a clone onto an existing volume with other options, and one onto a volume that is no clone of it', async () => {
    const r = await rig('clone-refusals');
    await withSource(r);
    expect(await refusal(r.driver.create('dst', { from: 'nosuch' }))).toEqual({
      code: 'NOT_FOUND',
      message: 'volume dst: cannot clone volume nosuch: it was not found on any netvol backend (local); check the name with `netvolctl ls`',
    });
    await r.driver.create('dst', { from: 'src' });
    expect(await refusal(r.driver.create('dst', { from: 'src', onRemove: 'archive' }))).toEqual({
      code: 'OPTIONS_CONFLICT',
      message: 'volume dst already exists with different options (onRemove): use the same options, or remove the volume first',
    });
    await r.driver.create('other', {});
    expect((await refusal(r.driver.create('other', { from: 'src' }))).message).toBe('volume other already exists, not as a clone of src: remove it first, or choose another name for the clone');
    expect((await refusal(r.driver.create('src', { from: 'src' }))).message).toContain('cannot clone a volume onto itself');
    expect((await refusal(r.driver.create('dst2', { from: '../x' }))).message).toContain('volume dst2: invalid value for option "from"');
  });

  it('leaves no half volume when the copy fails, and releases the source', async () => {
    const r = await rig('clone-fails');
    await withSource(r);
    Object.defineProperty(r.backend, 'copyWithin', { value: async () => { throw new NetvolError('NO_SPACE', 'backend local: cannot copy volume src to broken: the disk is full', { volume: 'broken' }); }, configurable: true });
    expect(await refusal(r.driver.create('broken', { from: 'src' }))).toEqual({ code: 'NO_SPACE', message: 'backend local: cannot copy volume src to broken: the disk is full' });
    const left = (await fs.readdir(path.join(r.root, 'volumes'))).filter((n) => n.includes('broken'));
    // The folder is renamed to trash at once and deleted in the background.
    expect(left.filter((n) => !n.startsWith('.'))).toEqual([]);
    expect(r.store.data.volumes.broken).toBeUndefined();
    expect(r.store.data.volumes.src).toBeUndefined();
    await expect(r.driver.get('broken')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('fails a copy that cannot end within the Create budget with an error pointing to netvolctl clone, leaving nothing', async () => {
    const r = await rig('clone-slow');
    await withSource(r);
    const { log } = recordingLogger();
    const driver = new VolumeDriver(r.config, new Map([['local', r.backend]]), r.store, log, r.mounts, { createMs: 21_500, mountMs: 20_000, otherMs: 20_000, settleMs: 2_000 });
    Object.defineProperty(r.backend, 'copyWithin', {
      configurable: true,
      value: ({ signal }: { signal: AbortSignal }) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(new NetvolError('TIMEOUT', 'cp was stopped')), { once: true })),
    });
    const started = Date.now();
    const answer = await refusal(driver.create('slow', { from: 'src' }));
    expect(answer.code).toBe('TIMEOUT');
    expect(answer.message).toBe(
      'volume slow: copying volume src did not finish within 2 s, about as long as Docker waits for a Create; nothing of slow was kept. Clone it with `netvolctl clone src slow`, which has no such limit, then use it as usual',
    );
    expect(Date.now() - started).toBeLessThan(10_000);
    expect((await fs.readdir(path.join(r.root, 'volumes'))).filter((n) => n === 'slow')).toEqual([]);
    expect(r.store.data.volumes.slow).toBeUndefined();
  });
  it('netvolctl clone stopped by its client (the signal aborts) stops the copy and leaves nothing', async () => {
    const r = await rig('clone-stopped');
    await withSource(r);
    Object.defineProperty(r.backend, 'copyWithin', {
      configurable: true,
      value: ({ signal }: { signal: AbortSignal }) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true })),
    });
    const stop = new AbortController();
    setTimeout(() => stop.abort(new NetvolError('TIMEOUT', 'volume stopped: the clone was stopped because netvolctl went away; nothing of stopped was kept', { volume: 'stopped' })), 300);
    const answer = await refusal(r.driver.operations.clone('stopped', { source: 'src', opts: {}, signal: stop.signal }));
    expect(answer.message).toBe('volume stopped: the clone was stopped because netvolctl went away; nothing of stopped was kept');
    expect((await fs.readdir(path.join(r.root, 'volumes'))).filter((n) => n === 'stopped')).toEqual([]);
    expect(r.store.data.volumes.stopped).toBeUndefined();
    expect(r.store.data.volumes.src).toBeUndefined();
  });
});
