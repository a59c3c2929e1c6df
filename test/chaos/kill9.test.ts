import { killPhase, type KillBackend, type PhaseResult } from './support/phases';

/**
 * The CI short run: 50 cycles in all (20 local, 15 sftp on a real sshd, 15 nfs on a real
 * nfs-ganesha); `npm run chaos` runs 1,000. CHAOS_CYCLES scales every backend's share.
 */
const SCALE = Number(process.env.CHAOS_CYCLES ?? 50) / 50;
const SEED = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000);
const SHARE: Array<[KillBackend, number]> = [
  ['local', 20],
  ['sftp', 15],
  ['nfs', 15],
];

jest.setTimeout(900_000);

describe.each(SHARE)('kill -9 cycles on the %s backend (directory and image volumes)', (backend, share) => {
  const cycles = Math.max(1, Math.round(share * SCALE));
  let r: PhaseResult;

  beforeAll(async () => {
    r = await killPhase({ backend, cycles, seed: SEED });
    process.stdout.write(`chaos ${r.phase}: ${r.cycles} cycles, ${r.requests} requests in ${(r.durationMs / 1000).toFixed(1)} s; ${r.notes.join('; ')}\n`);
  });

  test(`the daemon comes back after each of ${cycles} kills`, () => {
    expect(r.cycles).toBe(cycles);
    expect(r.faults).toBe(cycles);
    expect(r.crashes).toBe(0);
  });

  test('no acknowledged volume is lost; counts are the acknowledged mounts; no orphan mount, loop device or helper; every checksum intact', () => {
    expect({ lost: r.lostVolumes, orphans: r.orphans, mismatches: r.checksumMismatches }).toEqual({ lost: 0, orphans: 0, mismatches: 0 });
  });

  test('nothing else went wrong (state file, requests that should work)', () => {
    expect(r.problems.slice(0, 20)).toEqual([]);
  });
});
