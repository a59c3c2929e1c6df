import { archivedAt } from '../../src/driver/gc';
import { parseDuration } from '../../src/cli/commands/gc';

test('gc ages: a whole number and a unit, in milliseconds; anything else names the option and shows examples', () => {
  expect(parseDuration('45s', '--host-age')).toBe(45_000);
  expect(parseDuration('90m', '--host-age')).toBe(90 * 60_000);
  expect(parseDuration('12h', '--older-than')).toBe(12 * 3_600_000);
  expect(parseDuration('30d', '--older-than')).toBe(30 * 86_400_000);
  expect(parseDuration('2w', '--older-than')).toBe(14 * 86_400_000);
  expect(parseDuration('0s', '--host-age')).toBe(0);
  for (const bad of ['30', 'd', '1.5d', '-1d', '30 days', '']) {
    expect(() => parseDuration(bad, '--older-than')).toThrow(/^--older-than ".*": give a whole number and a unit, e\.g\. 30d/);
  }
});

test('an archive\'s age comes from the time in its name, also for a shortened name with a hash', () => {
  expect(archivedAt('data.archive-20261123T101500Z')?.toISOString()).toBe('2026-11-23T10:15:00.000Z');
  expect(archivedAt(`${'x'.repeat(200)}.archive-20200101T000000Z-0123456789ab`)?.toISOString()).toBe('2020-01-01T00:00:00.000Z');
  expect(archivedAt('data')).toBeUndefined();
  expect(archivedAt('data.archive-notatime')).toBeUndefined();
});
