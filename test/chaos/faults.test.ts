import { FAULT_KINDS, faultPhase, TIMEOUT_SECONDS } from './support/faults';
import type { PhaseResult } from './support/phases';

/** The CI short run: one round of each fault; `npm run chaos` runs more (--fault-rounds). */
const ROUNDS = Number(process.env.CHAOS_FAULT_ROUNDS ?? 1);
const SEED = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000);

jest.setTimeout(600_000);

describe.each(FAULT_KINDS)('server fault while a volume is in use: %s', (kind) => {
  let r: PhaseResult;

  beforeAll(async () => {
    r = await faultPhase({ kind, rounds: ROUNDS, seed: SEED });
    process.stdout.write(`chaos ${r.phase}: ${r.requests} requests in ${(r.durationMs / 1000).toFixed(1)} s, worst Err ${r.worstErrMs} ms; known bugs seen ${JSON.stringify(r.knownBugs)}; ${r.notes.join('; ')}\n`);
  });

  test(`every request during the fault is answered within timeoutSeconds (${TIMEOUT_SECONDS} s), with a readable Err naming the volume`, () => {
    expect(r.faults).toBe(ROUNDS);
    expect(r.problems.filter((p) => /took|no answer|Err|succeeded while/.test(p))).toEqual([]);
  });

  test('nothing fsynced before (or after) the fault is lost, and the volume is usable again once the server is back', () => {
    expect(r.cycles).toBe(ROUNDS);
    expect(r.checksumMismatches).toBe(0);
    expect(r.problems).toEqual([]);
  });
});
