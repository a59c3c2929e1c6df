import { dockerdPhase } from './support/docker';
import type { PhaseResult } from './support/phases';

/** The CI short run: 3 cycles through a real dockerd; `npm run chaos` runs more (--docker-cycles). */
const CYCLES = Number(process.env.CHAOS_DOCKER_CYCLES ?? 3);
const SEED = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000);

jest.setTimeout(600_000);

describe('kill -9 of the daemon during docker run (real dockerd, local directory and image volumes)', () => {
  let r: PhaseResult;

  beforeAll(async () => {
    r = await dockerdPhase({ cycles: CYCLES, seed: SEED });
    process.stdout.write(`chaos ${r.phase}: ${r.cycles} cycles in ${(r.durationMs / 1000).toFixed(1)} s; known bugs seen ${JSON.stringify(r.knownBugs)}; ${r.notes.join('; ')}\n`);
  });

  test(`the daemon comes back after each of ${CYCLES} kills`, () => {
    expect(r.cycles).toBe(CYCLES);
  });

  test('once no container runs, the daemon holds no mount; nothing is left mounted; every file of a container that succeeded keeps its md5', () => {
    expect(r.problems).toEqual([]);
  });
});
