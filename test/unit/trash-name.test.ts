import { trashName, TRASH_PREFIX } from '../../src/backends/layout';

describe('trashName()', () => {
  it('always fits in a 255-byte file name, even for the longest volume name', () => {
    const longest = `a${'b'.repeat(254)}`;
    const t = trashName(longest);
    expect(Buffer.byteLength(t)).toBeLessThanOrEqual(255);
    expect(t.startsWith(`${TRASH_PREFIX}abbb`)).toBe(true);
  });

  it('keeps a short name whole, and two removals of one name never collide', () => {
    const a = trashName('data');
    const b = trashName('data');
    expect(a).toMatch(new RegExp(`^${TRASH_PREFIX.replace(/[.]/g, '\\.')}data-[0-9a-f]{8}$`));
    expect(a).not.toBe(b);
  });
});
