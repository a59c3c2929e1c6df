import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { StateStore } from '../../src/state';

interface Doc {
  items: Record<string, number>;
  blob?: string;
}
const empty = (): Doc => ({ items: {} });

describe('state store', () => {
  let dir: string;
  let n = 0;
  const fresh = () => path.join(dir, `case-${++n}`, 'state.json');

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'netvol-unit-state-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('open() starts from empty() when there is no file, creating the folder 0700', async () => {
    const file = fresh();
    const store = await StateStore.open(file, 1, empty, () => undefined);
    expect(store.data).toEqual({ items: {} });
    expect((await fs.stat(path.dirname(file))).mode & 0o777).toBe(0o700);
    await expect(fs.stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('save() writes a versioned envelope with mode 0600 that open() reads back', async () => {
    const file = fresh();
    const store = await StateStore.open(file, 3, empty, () => undefined);
    store.data.items.a = 1;
    await store.save();
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await fs.readFile(file, 'utf8'))).toEqual({ version: 3, data: { items: { a: 1 } } });
    const again = await StateStore.open(file, 3, empty, () => undefined);
    expect(again.data).toEqual({ items: { a: 1 } });
  });

  it('save() replaces the file by rename (a new inode), leaving no temporary files', async () => {
    const file = fresh();
    const store = await StateStore.open(file, 1, empty, () => undefined);
    await store.save();
    const before = (await fs.stat(file)).ino;
    store.data.items.b = 2;
    await store.save();
    expect((await fs.stat(file)).ino).not.toBe(before);
    expect(await fs.readdir(path.dirname(file))).toEqual(['state.json']);
  });

  it('a reader never sees a partial file while large saves run', async () => {
    const file = fresh();
    const store = await StateStore.open(file, 1, empty, () => undefined);
    store.data.blob = 'x'.repeat(2 * 1024 * 1024);
    await store.save();
    let reads = 0;
    let stop = false;
    const reader = (async () => {
      while (!stop) {
        const doc = JSON.parse(await fs.readFile(file, 'utf8')) as { data: Doc };
        expect(doc.data.blob?.length).toBe(2 * 1024 * 1024);
        reads++;
      }
    })();
    for (let i = 0; i < 20; i++) {
      store.data.items.i = i;
      await store.save();
    }
    stop = true;
    await reader;
    expect(reads).toBeGreaterThan(0);
    expect((JSON.parse(await fs.readFile(file, 'utf8')) as { data: Doc }).data.items.i).toBe(19);
  });

  it('concurrent save() calls coalesce into at most two writes, and the last state lands', async () => {
    const file = fresh();
    const store = await StateStore.open(file, 1, empty, () => undefined);
    const write = jest.spyOn(store as unknown as { write: () => Promise<void> }, 'write');
    const saves: Array<Promise<void>> = [];
    for (let i = 0; i < 50; i++) {
      store.data.items[`k${i}`] = i;
      saves.push(store.save());
    }
    await Promise.all(saves);
    expect(write.mock.calls.length).toBeLessThanOrEqual(2);
    expect(Object.keys((JSON.parse(await fs.readFile(file, 'utf8')) as { data: Doc }).data.items)).toHaveLength(50);
  });

  it('a save() called while a write runs resolves only after a later write holds its change', async () => {
    const file = fresh();
    const store = await StateStore.open(file, 1, empty, () => undefined);
    store.data.items.first = 1;
    const first = store.save();
    store.data.items.second = 2;
    const second = store.save();
    await second;
    expect((JSON.parse(await fs.readFile(file, 'utf8')) as { data: Doc }).data.items).toEqual({ first: 1, second: 2 });
    await first;
  });

  it('a corrupt file is set aside under a .corrupt- name and reported, and the store starts empty', async () => {
    const file = fresh();
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, '{"version":1,"data":{"items":{"a":');
    const problems: string[] = [];
    const store = await StateStore.open(file, 1, empty, (m) => problems.push(m));
    expect(store.data).toEqual({ items: {} });
    const names = await fs.readdir(path.dirname(file));
    const aside = names.find((f) => f.startsWith('state.json.corrupt-'));
    expect(aside).toBeDefined();
    expect(await fs.readFile(path.join(path.dirname(file), aside as string), 'utf8')).toBe('{"version":1,"data":{"items":{"a":');
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(`kept it as ${path.join(path.dirname(file), aside as string)}`);
  });

  it('a file of another version is set aside, not misread', async () => {
    const file = fresh();
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, JSON.stringify({ version: 9, data: { items: { z: 1 } } }));
    const problems: string[] = [];
    const store = await StateStore.open(file, 1, empty, (m) => problems.push(m));
    expect(store.data).toEqual({ items: {} });
    expect(problems[0]).toContain('version 9 is not 1');
    expect((await fs.readdir(path.dirname(file))).some((f) => f.startsWith('state.json.corrupt-'))).toBe(true);
  });
});
