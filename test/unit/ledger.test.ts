import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openLedger, STATE_VERSION } from '../../src/driver';
import { Ledger } from '../../src/driver/ledger';

describe('the ledger (state.json)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'netvol-ledger-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  const write = async (name: string, doc: unknown) => {
    const file = path.join(dir, name, 'state.json');
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, JSON.stringify(doc));
    return file;
  };

  it('migrates a version 1 file instead of discarding it: mount counts of running containers survive, copies of shared metadata go', async () => {
    const meta = (layout: string, onRemove = 'delete') => ({ version: 1, name: 'x', createdAt: '2026-01-01T00:00:00.000Z', createdBy: 'h', spec: { backend: 'nas', layout, fs: layout === 'image' ? 'ext4' : undefined, onRemove } });
    const file = await write('v1', {
      version: 1,
      data: {
        volumes: {
          running: { backend: 'nas', meta: meta('image'), mounts: { abc: 2, def: 1 }, attached: true, lastUsage: { usedBytes: 10, availableBytes: 20 } },
          removing: { backend: 'nas', meta: meta('directory', 'archive'), mounts: {}, attached: false, pending: 'remove' },
          idle: { backend: 'nas', meta: meta('directory'), mounts: {}, attached: false },
        },
      },
    });
    const problems: string[] = [];
    const store = await openLedger(file, (m) => problems.push(m));
    expect(problems).toEqual([]);
    expect(store.data.volumes).toEqual({
      running: { backend: 'nas', layout: 'image', fs: 'ext4', mounts: { abc: 2, def: 1 }, attached: true, lastUsage: { usedBytes: 10, availableBytes: 20 } },
      removing: { backend: 'nas', layout: 'directory', mounts: {}, attached: false, pending: 'remove', onRemove: 'archive' },
    });
    await store.save();
    const saved = JSON.parse(await fs.readFile(file, 'utf8')) as { version: number };
    expect(saved.version).toBe(STATE_VERSION);
  });

  it('sets aside a file that breaks the schema, naming the problem, and starts empty', async () => {
    const file = await write('bad', { version: STATE_VERSION, data: { volumes: { v: { backend: 'nas', layout: 'image', mounts: { a: -1 }, attached: true } } } });
    const problems: string[] = [];
    const store = await openLedger(file, (m) => problems.push(m));
    expect(store.data.volumes).toEqual({});
    expect(problems[0]).toMatch(/could not be read .*kept it as .*state\.json\.corrupt-/);
    expect((await fs.readdir(path.dirname(file))).some((f) => f.startsWith('state.json.corrupt-'))).toBe(true);
  });

  it('sets aside a file from a newer netvol, saying so', async () => {
    const file = await write('newer', { version: STATE_VERSION + 1, data: { volumes: {} } });
    const problems: string[] = [];
    await openLedger(file, (m) => problems.push(m));
    expect(problems[0]).toContain(`version ${STATE_VERSION + 1} is not one this netvol knows`);
  });

  it('keeps volumes and mount IDs named like Object.prototype keys (constructor, toString, __proto__) through a save and a load', async () => {
    const file = await write('proto', { version: STATE_VERSION, data: { volumes: {} } });
    const store = await openLedger(file, () => undefined);
    const ledger = new Ledger(store);
    for (const name of ['constructor', 'toString', 'valueOf', 'hasOwnProperty']) expect(ledger.get(name)).toBeUndefined();
    ledger.set('__proto__', { backend: 'nas', layout: 'directory', mounts: { constructor: 1 }, attached: true });
    ledger.set('constructor', { backend: 'nas', layout: 'directory', mounts: {}, attached: false, pending: 'create' });
    expect(ledger.get('__proto__')?.mounts.toString).toBeUndefined();
    await store.save();
    const again = new Ledger(await openLedger(file, (m) => { throw new Error(m); }));
    expect(Object.keys(again.records).sort()).toEqual(['__proto__', 'constructor']);
    expect(again.get('__proto__')).toMatchObject({ backend: 'nas', attached: true });
    expect(Object.entries(again.get('__proto__')?.mounts ?? {})).toEqual([['constructor', 1]]);
    expect(again.get('toString')).toBeUndefined();
    expect(again.get('__proto__')?.mounts.valueOf).toBeUndefined();
  });
});
