import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { ARCHIVE_MARK, archiveName, validateVolumeName } from '../../src/driver/names';
import { makeWorld, World } from './support/driver-world';

const AT = new Date('2026-11-23T10:15:00.123Z');
const STAMP = '20261123T101500Z';
const NAME_RULE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
const bytes = (s: string): number => Buffer.byteLength(s, 'utf8');

describe('archiveName()', () => {
  it('keeps a short name whole: name, mark, UTC stamp', () => {
    expect(archiveName('data', AT)).toBe(`data${ARCHIVE_MARK}${STAMP}`);
  });

  it.each([200, 229, 230, 231, 254, 255])('fits in 255 bytes for a valid name of %i characters', (n) => {
    const name = validateVolumeName(`v${'x'.repeat(n - 1)}`);
    const archive = archiveName(name, AT);
    expect(bytes(archive)).toBeLessThanOrEqual(255);
    expect(NAME_RULE.test(archive)).toBe(true);
    expect(archive).toContain(`${ARCHIVE_MARK}${STAMP}`);
  });

  it('keeps the longest name that fits whole, and shortens only names that would not', () => {
    const fits = 'f'.repeat(255 - ARCHIVE_MARK.length - STAMP.length);
    expect(archiveName(fits, AT)).toBe(`${fits}${ARCHIVE_MARK}${STAMP}`);
    expect(archiveName(`${fits}g`, AT)).not.toContain(`${fits}g`);
  });

  it('a shortened archive starts with the name and ends with a short hash of the full name', () => {
    const name = `db-${'a'.repeat(252)}`;
    const archive = archiveName(name, AT);
    const hash = createHash('sha256').update(name).digest('hex');
    const m = new RegExp(`^(.+)${ARCHIVE_MARK.replace(/\./g, '\\.')}${STAMP}-([0-9a-f]+)$`).exec(archive);
    expect(m).not.toBeNull();
    expect(name.startsWith(m![1])).toBe(true);
    expect(m![1].length).toBeGreaterThan(150);
    expect(hash.startsWith(m![2])).toBe(true);
    expect(m![2].length).toBeGreaterThanOrEqual(8);
  });

  it('two long names that share their first 250 characters get different archives', () => {
    const head = 'p'.repeat(250);
    expect(archiveName(`${head}aaaaa`, AT)).not.toBe(archiveName(`${head}bbbbb`, AT));
  });
});

describe('onRemove=archive with the longest valid name', () => {
  let w: World | undefined;
  afterAll(async () => {
    await w?.cleanup();
  });

  it.each(['directory', 'image'])('removes a %s volume and keeps its data under an archive name', async (layout) => {
    w ??= await makeWorld('archive');
    const name = `${layout}-${'z'.repeat(255 - layout.length - 1)}`;
    expect(name).toHaveLength(255);
    await w.driver.create(name, layout === 'image' ? { size: '16M', onRemove: 'archive' } : { onRemove: 'archive' });
    const mp = await w.driver.mount(name, 'A');
    await fs.writeFile(`${mp}/kept.txt`, 'still here');
    await w.driver.unmount(name, 'A');

    await w.driver.remove(name);

    expect((await w.driver.list()).map((v) => v.name)).not.toContain(name);
    const folders = await fs.readdir(w.volumesDir);
    expect(folders).not.toContain(name);
    const archive = folders.find((f) => f.startsWith(`${layout}-zzz`) && f.includes(ARCHIVE_MARK));
    expect(archive).toBeDefined();
    expect(bytes(archive!)).toBeLessThanOrEqual(255);
  });
});
