import { isNetvolError } from '../../src/errors';
import { archiveName, validateVolumeName } from '../../src/driver/names';

function refusal(name: unknown): string {
  try {
    validateVolumeName(name);
  } catch (err) {
    if (isNetvolError(err, 'INVALID_NAME')) return err.message;
    throw err;
  }
  throw new Error(`name ${JSON.stringify(name)} was accepted`);
}

describe('volume names', () => {
  it.each(['ab', 'data', 'my-vol_1.2', 'A0', '9lives', 'x'.repeat(255)])('validateVolumeName() accepts %s (Docker rule, at most 255 chars)', (name) => {
    expect(validateVolumeName(name)).toBe(name);
  });

  it('validateVolumeName() refuses "..", naming the rule', () => {
    expect(refusal('..')).toMatch(/not allowed.*\[a-zA-Z0-9_.-\]/);
  });

  it('validateVolumeName() refuses names with a slash, which would escape the backend folder', () => {
    expect(refusal('a/b')).toContain('"a/b" is not allowed');
    expect(refusal('../etc')).toContain('not allowed');
    expect(refusal('/abs')).toContain('not allowed');
  });

  it('validateVolumeName() refuses an empty name and a missing one', () => {
    expect(refusal('')).toContain('volume name is empty');
    expect(refusal(undefined)).toContain('volume name is empty');
    expect(refusal(42)).toContain('volume name is empty');
  });

  it('validateVolumeName() refuses a 1-character name (Docker needs at least 2)', () => {
    expect(refusal('a')).toContain('at least 2 characters');
  });

  it('validateVolumeName() refuses a 256-character name with its length, showing a shortened name', () => {
    const message = refusal('y'.repeat(256));
    expect(message).toContain('is 256 characters long: the limit is 255');
    expect(message).not.toContain('y'.repeat(61));
  });

  it.each(['-lead', '.hidden', '_under', 'sp ace', 'tab\t', 'uni\u00e9', 'semi;colon'])('validateVolumeName() refuses %j', (name) => {
    expect(refusal(name)).toContain('not allowed');
  });

  it('validateVolumeName() refuses names containing the reserved ".archive-" mark', () => {
    expect(refusal('data.archive-20260101T000000Z')).toContain('reserved');
  });

  it('archiveName() appends a compact UTC stamp that passes the name rule apart from the reserved mark', () => {
    const name = archiveName('data', new Date('2026-11-23T10:15:00.123Z'));
    expect(name).toBe('data.archive-20261123T101500Z');
    expect(/^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/.test(name)).toBe(true);
  });
});
