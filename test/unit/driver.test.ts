import crypto from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { loopsOf, makeWorld, mountsAt, MiB, refusal, settle, World } from './support/driver-world';

let w: World;
beforeAll(async () => {
  w = await makeWorld('driver');
});
afterAll(async () => {
  await w?.driver.close();
  await w?.cleanup();
});

const volFolder = (name: string) => path.join(w.volumesDir, name);
const exists = (p: string) => fs.stat(p).then(() => true, () => false);

describe('create()', () => {
  it('refuses a bad name before touching storage', async () => {
    expect(await refusal(w.driver.create('../escape', {}))).toMatchObject({ code: 'INVALID_NAME' });
    expect(await refusal(w.driver.create('a', {}))).toMatchObject({ code: 'INVALID_NAME' });
    expect(await exists(path.join(w.root, 'escape'))).toBe(false);
    expect(await exists(volFolder('a'))).toBe(false);
  });

  it('refuses an unknown option, naming it, and creates nothing', async () => {
    const r = await refusal(w.driver.create('badopt', { color: 'red' }));
    expect(r.code).toBe('INVALID_OPTION');
    expect(r.message).toContain('invalid option "color"');
    expect(await exists(volFolder('badopt'))).toBe(false);
    expect(w.store.data.volumes.badopt).toBeUndefined();
  });

  it('refuses an unknown backend, listing the configured ones', async () => {
    const r = await refusal(w.driver.create('nobackend', { backend: 'nas' }));
    expect(r).toEqual({ code: 'INVALID_OPTION', message: 'volume nobackend: unknown backend "nas": configured backends are local' });
  });

  it('makes a directory volume with its metadata and applies uid, gid and mode to the root', async () => {
    await w.driver.create('dir1', { uid: '1234', gid: '4321', mode: '0750' });
    const st = await fs.stat(path.join(volFolder('dir1'), 'data'));
    expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([1234, 4321, 0o750]);
    const meta = JSON.parse(await fs.readFile(path.join(volFolder('dir1'), 'volume.json'), 'utf8')) as Record<string, unknown>;
    expect(meta).toMatchObject({ version: 1, name: 'dir1', createdBy: 'unit-host', spec: { backend: 'local', layout: 'directory', uid: 1234, gid: 4321, mode: 0o750, onRemove: 'delete' } });
    // The options live on the backend only: this host's ledger keeps nothing of a volume it does not mount.
    expect(w.store.data.volumes.dir1).toBeUndefined();
    const saved = JSON.parse(await fs.readFile(w.stateFile, 'utf8')) as { data: { volumes: Record<string, unknown> } };
    expect(Object.keys(saved.data.volumes)).not.toContain('dir1');
  });

  it('is idempotent for the same name and options (dockerd re-sends Create)', async () => {
    await w.driver.create('idem', { onRemove: 'retain', mode: '0700' });
    const before = await fs.readFile(path.join(volFolder('idem'), 'volume.json'), 'utf8');
    await w.driver.create('idem', { mode: '700', onRemove: 'retain' });
    expect(await fs.readFile(path.join(volFolder('idem'), 'volume.json'), 'utf8')).toBe(before);
  });

  it('refuses the same name with different options, naming each differing option', async () => {
    await w.driver.create('conflict', { onRemove: 'retain' });
    const r = await refusal(w.driver.create('conflict', { onRemove: 'archive', mode: '0700' }));
    expect(r.code).toBe('OPTIONS_CONFLICT');
    expect(r.message).toBe('volume conflict already exists with different options (mode, onRemove): use the same options, or remove the volume first');
  });

  it('refuses a name whose folder exists on the backend but is not a netvol volume, and leaves that folder alone', async () => {
    await fs.mkdir(path.join(volFolder('foreign'), 'stuff'), { recursive: true });
    await fs.writeFile(path.join(volFolder('foreign'), 'stuff', 'keep.txt'), 'mine');
    const r = await refusal(w.driver.create('foreign', {}));
    expect(r.code).toBe('OPTIONS_CONFLICT');
    expect(r.message).toContain('not a netvol volume');
    expect(await fs.readFile(path.join(volFolder('foreign'), 'stuff', 'keep.txt'), 'utf8')).toBe('mine');
    expect(w.store.data.volumes.foreign).toBeUndefined();
  });
});

describe('get(), list() and path()', () => {
  it('get() describes a directory volume with RFC 3339 CreatedAt and Status fields', async () => {
    await w.driver.create('getdir', {});
    await fs.writeFile(path.join(volFolder('getdir'), 'data', 'f'), Buffer.alloc(100 * 1024, 1));
    const v = await w.driver.get('getdir');
    expect(v.name).toBe('getdir');
    expect(v.mountpoint).toBe('');
    expect(new Date(v.createdAt as string).toISOString()).toBe(v.createdAt);
    expect(v.status).toMatchObject({ backend: 'local', layout: 'directory', onRemove: 'delete', createdBy: 'unit-host', mounts: [], mountCount: 0 });
    expect(v.status.sizeBytes).toBeUndefined();
    expect(v.status.usedBytes as number).toBeGreaterThanOrEqual(100 * 1024);
    expect(v.status.availableBytes as number).toBeGreaterThan(0);
    expect(v.status.usage).toMatch(/^\d+\.\d (B|KiB|MiB|GiB) used, \d+\.\d (B|KiB|MiB|GiB|TiB) available$/);
  });

  it('get() of an unknown volume is NOT_FOUND naming the backends', async () => {
    expect(await refusal(w.driver.get('nosuchvol'))).toEqual({ code: 'NOT_FOUND', message: 'volume nosuchvol not found on any netvol backend (local)' });
  });

  it('list() returns every volume on the backend, sorted, without retained ones', async () => {
    const names = (await w.driver.list()).map((v) => v.name);
    expect(names).toEqual([...names].sort());
    expect(names).toEqual(expect.arrayContaining(['dir1', 'idem', 'conflict', 'getdir']));
    expect(names).not.toContain('foreign');
  });

  it('path() is empty until the volume is mounted, then its mountpoint', async () => {
    await w.driver.create('pathvol', {});
    expect(await w.driver.path('pathvol')).toBe('');
    const mp = await w.driver.mount('pathvol', 'p1');
    expect(await w.driver.path('pathvol')).toBe(mp);
    await w.driver.unmount('pathvol', 'p1');
    expect(await w.driver.path('pathvol')).toBe('');
  });

  it('scope is local with only the local backend under scope auto', () => {
    expect(w.driver.scope).toBe('local');
  });
});

describe('mount() and unmount()', () => {
  it('the same mount ID mounted twice needs two unmounts before the volume detaches', async () => {
    await w.driver.create('twice', {});
    const mp = await w.driver.mount('twice', 'cid1');
    expect(mp).toBe(w.mountpoint('twice'));
    expect(await w.driver.mount('twice', 'cid1')).toBe(mp);
    expect(await mountsAt(mp)).toBe(1);
    expect(w.store.data.volumes.twice.mounts).toEqual({ cid1: 2 });
    await fs.writeFile(path.join(mp, 'hello.txt'), 'hi');
    expect(await fs.readFile(path.join(volFolder('twice'), 'data', 'hello.txt'), 'utf8')).toBe('hi');

    await w.driver.unmount('twice', 'cid1');
    expect(await mountsAt(mp)).toBe(1);
    expect((await w.driver.get('twice')).status).toMatchObject({ mounts: ['cid1'], mountCount: 1 });
    await w.driver.unmount('twice', 'cid1');
    expect(await mountsAt(mp)).toBe(0);
    expect(w.store.data.volumes.twice).toBeUndefined();
  });

  it('two mount IDs keep the volume attached until both unmount', async () => {
    await w.driver.create('shared', {});
    const mp = await w.driver.mount('shared', 'a');
    await w.driver.mount('shared', 'b');
    await w.driver.unmount('shared', 'a');
    expect(await mountsAt(mp)).toBe(1);
    await w.driver.unmount('shared', 'b');
    expect(await mountsAt(mp)).toBe(0);
  });

  it('unmount of an unknown mount ID succeeds with a warning in the log', async () => {
    await w.driver.create('unk', {});
    await expect(w.driver.unmount('unk', 'never-mounted')).resolves.toBeUndefined();
    await expect(w.driver.unmount('not-a-volume', 'x')).resolves.toBeUndefined();
    await settle();
    expect(w.records.some((r) => r.level === 'warn' && r.volume === 'unk' && r.mountId === 'never-mounted')).toBe(true);
  });

  it('mount() of an unknown volume is NOT_FOUND and a malformed mount ID is refused', async () => {
    expect((await refusal(w.driver.mount('ghost', 'x'))).code).toBe('NOT_FOUND');
    await w.driver.create('badid', {});
    expect(await refusal(w.driver.mount('badid', ''))).toEqual({ code: 'INVALID_OPTION', message: 'volume badid: mount ID is missing or malformed' });
    expect((await refusal(w.driver.mount('badid', 'a/../b'))).code).toBe('INVALID_OPTION');
    expect((await refusal(w.driver.mount('badid', undefined))).code).toBe('INVALID_OPTION');
  });

  it('remove() is refused while mounted, with the count in the text', async () => {
    await w.driver.create('busy', {});
    await w.driver.mount('busy', 'x');
    await w.driver.mount('busy', 'x');
    await w.driver.mount('busy', 'y');
    const r = await refusal(w.driver.remove('busy'));
    expect(r.code).toBe('IN_USE');
    expect(r.message).toBe('volume busy is in use: 3 mounts on this host (2 container mount IDs); stop the containers using it first');
    expect(await exists(volFolder('busy'))).toBe(true);
    for (const id of ['x', 'x', 'y']) await w.driver.unmount('busy', id);
    await w.driver.remove('busy');
    expect(await exists(volFolder('busy'))).toBe(false);
    expect(await exists(w.mountpoint('busy'))).toBe(false);
  });
});

describe('remove()', () => {
  it('of an unknown volume succeeds', async () => {
    await expect(w.driver.remove('never-was')).resolves.toBeUndefined();
  });

  it('with onRemove=delete deletes the folder and forgets the volume', async () => {
    await w.driver.create('gone', {});
    await w.driver.remove('gone');
    expect(await exists(volFolder('gone'))).toBe(false);
    expect(w.store.data.volumes.gone).toBeUndefined();
    expect((await refusal(w.driver.get('gone'))).code).toBe('NOT_FOUND');
  });

  it('with onRemove=retain hides the volume, and a matching create adopts its data', async () => {
    await w.driver.create('kept', { onRemove: 'retain' });
    const mp = await w.driver.mount('kept', 'm');
    await fs.writeFile(path.join(mp, 'precious.txt'), 'data survives');
    await w.driver.unmount('kept', 'm');
    await w.driver.remove('kept');

    expect((await refusal(w.driver.get('kept'))).code).toBe('NOT_FOUND');
    expect((await w.driver.list()).map((v) => v.name)).not.toContain('kept');
    expect(await fs.readFile(path.join(volFolder('kept'), 'data', 'precious.txt'), 'utf8')).toBe('data survives');

    const r = await refusal(w.driver.create('kept', { onRemove: 'delete' }));
    expect(r.code).toBe('OPTIONS_CONFLICT');
    expect(r.message).toContain('retained data of an earlier volume with this name and other options (onRemove)');

    await w.driver.create('kept', { onRemove: 'retain' });
    const mp2 = await w.driver.mount('kept', 'm2');
    expect(await fs.readFile(path.join(mp2, 'precious.txt'), 'utf8')).toBe('data survives');
    await w.driver.unmount('kept', 'm2');
    expect((await w.driver.list()).map((v) => v.name)).toContain('kept');
  });

  it('with onRemove=archive renames the folder to a dated archive name', async () => {
    await w.driver.create('arch', { onRemove: 'archive' });
    await fs.writeFile(path.join(volFolder('arch'), 'data', 'old.txt'), 'history');
    const before = Date.now();
    await w.driver.remove('arch');
    expect(await exists(volFolder('arch'))).toBe(false);
    const archives = (await fs.readdir(w.volumesDir)).filter((n) => n.startsWith('arch.archive-'));
    expect(archives).toHaveLength(1);
    const m = /^arch\.archive-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(archives[0]);
    expect(m).not.toBeNull();
    const stamp = Date.UTC(Number(m![1]), Number(m![2]) - 1, Number(m![3]), Number(m![4]), Number(m![5]), Number(m![6]));
    expect(Math.abs(stamp - before)).toBeLessThan(5000);
    expect(await fs.readFile(path.join(w.volumesDir, archives[0], 'data', 'old.txt'), 'utf8')).toBe('history');
    expect((await w.driver.list()).map((v) => v.name).some((n) => n.startsWith('arch'))).toBe(false);
    // the name is free again
    await w.driver.create('arch', {});
    expect(await exists(path.join(volFolder('arch'), 'data', 'old.txt'))).toBe(false);
  });
});

describe('image volumes (hard quota)', () => {
  it('create() makes a sparse, formatted image that takes little disk', async () => {
    const started = Date.now();
    await w.driver.create('img64', { size: '64M' });
    expect(Date.now() - started).toBeLessThan(10_000);
    const st = await fs.stat(path.join(volFolder('img64'), 'data.img'));
    expect(st.size).toBe(64 * MiB);
    expect(st.blocks * 512).toBeLessThan(64 * MiB);
    expect(await exists(path.join(volFolder('img64'), 'data'))).toBe(false);
  });

  it('100 concurrent Mounts of one volume attach it once, and the last Unmount detaches it', async () => {
    await w.driver.create('hundred', { size: '32M' });
    const ids = Array.from({ length: 100 }, (_, i) => `id${i}`);
    const mps = await Promise.all(ids.map((id) => w.driver.mount('hundred', id)));
    const mp = w.mountpoint('hundred');
    expect(new Set(mps)).toEqual(new Set([mp]));
    expect(await mountsAt(mp)).toBe(1);
    expect(await loopsOf(path.join(volFolder('hundred'), 'data.img'))).toHaveLength(1);
    expect(Object.keys(w.store.data.volumes.hundred.mounts)).toHaveLength(100);

    await Promise.all(ids.slice(1).map((id) => w.driver.unmount('hundred', id)));
    expect(await mountsAt(mp)).toBe(1);
    await w.driver.unmount('hundred', ids[0]);
    expect(await mountsAt(mp)).toBe(0);
    expect(await loopsOf(path.join(volFolder('hundred'), 'data.img'))).toHaveLength(0);
  });

  it('a write past the size fails with ENOSPC and the file written before is intact', async () => {
    await w.driver.create('quota', { size: '16M' });
    const mp = await w.driver.mount('quota', 'q');
    const keep = crypto.randomBytes(2 * MiB);
    const sum = crypto.createHash('sha256').update(keep).digest('hex');
    await fs.writeFile(path.join(mp, 'keep.bin'), keep);
    const keepHandle = await fs.open(path.join(mp, 'keep.bin'), 'r+');
    await keepHandle.sync();
    await keepHandle.close();

    let failure: NodeJS.ErrnoException | undefined;
    const fill = await fs.open(path.join(mp, 'fill.bin'), 'w');
    try {
      const chunk = Buffer.alloc(MiB, 7);
      for (let i = 0; i < 64 && !failure; i++) {
        await fill.write(chunk).catch((e: NodeJS.ErrnoException) => (failure = e));
      }
      if (!failure) await fill.sync().catch((e: NodeJS.ErrnoException) => (failure = e));
    } finally {
      await fill.close().catch(() => undefined);
    }
    expect(['ENOSPC', 'EDQUOT']).toContain(failure?.code);
    expect((await fs.stat(path.join(mp, 'fill.bin'))).size).toBeLessThan(16 * MiB);

    const again = await fs.readFile(path.join(mp, 'keep.bin'));
    expect(crypto.createHash('sha256').update(again).digest('hex')).toBe(sum);

    // and on disk, after a detach and a fresh attach
    await w.driver.unmount('quota', 'q');
    const mp2 = await w.driver.mount('quota', 'q2');
    expect(crypto.createHash('sha256').update(await fs.readFile(path.join(mp2, 'keep.bin'))).digest('hex')).toBe(sum);
    await fs.rm(path.join(mp2, 'fill.bin'));
    await w.driver.unmount('quota', 'q2');
  });

  it('Status of a mounted image shows backend, layout, sizeBytes, usage of the filesystem and mounts', async () => {
    await w.driver.create('stat', { size: '64M', mode: '0770' });
    const mp = await w.driver.mount('stat', 'sid');
    expect((await fs.stat(mp)).mode & 0o777).toBe(0o770);
    await fs.writeFile(path.join(mp, 'ten.bin'), crypto.randomBytes(10 * MiB));
    const v = await w.driver.get('stat');
    expect(v.mountpoint).toBe(mp);
    expect(v.status).toMatchObject({ backend: 'local', layout: 'image', sizeBytes: 64 * MiB, fs: 'ext4', mounts: ['sid'], mountCount: 1, healthy: true });
    const used = v.status.usedBytes as number;
    const avail = v.status.availableBytes as number;
    expect(used).toBeGreaterThanOrEqual(10 * MiB);
    expect(used + avail).toBeLessThanOrEqual(64 * MiB);
    expect(avail).toBeGreaterThan(40 * MiB);
    const pct = Math.round((used / (64 * MiB)) * 100);
    expect(v.status.usage).toMatch(new RegExp(`^\\d+\\.\\d MiB of 64\\.0 MiB \\(${pct}%\\)$`));
    await w.driver.unmount('stat', 'sid');
  });

  it('Status of an unmounted image counts the image file against its size', async () => {
    const v = await w.driver.get('img64');
    expect(v.status).toMatchObject({ layout: 'image', sizeBytes: 64 * MiB, mounts: [], mountCount: 0 });
    expect((v.status.usedBytes as number) + (v.status.availableBytes as number)).toBe(64 * MiB);
    expect(v.status.usage).toMatch(/^\d+\.\d (KiB|MiB) of 64\.0 MiB \(\d+%\)$/);
  });

  it('remove() of an unmounted image volume deletes the image', async () => {
    await w.driver.remove('img64');
    expect(await exists(volFolder('img64'))).toBe(false);
  });
});
