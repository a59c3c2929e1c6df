import { startNetvol, type Netvol } from '../harness/netvol';
import { runCycles, type CycleReport } from './support/cycles';

/** The CI short run: 50 cycles. `npm run chaos` runs 1,000. */
const CYCLES = Number(process.env.CHAOS_CYCLES ?? 50);
const SEED = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000);

jest.setTimeout(900_000);

describe('kill -9 cycles on the local backend (directory and image volumes)', () => {
  let nv: Netvol;
  let report: CycleReport;

  beforeAll(async () => {
    nv = await startNetvol({ extraConfig: { timeoutSeconds: 10, logLevel: 'info' } });
    report = await runCycles(nv, {
      cycles: CYCLES,
      seed: SEED,
      backends: [
        {
          name: 'local',
          names: [
            { name: 'k9-d0', opts: null },
            { name: 'k9-d1', opts: null },
            { name: 'k9-d2', opts: { onRemove: 'delete' } },
            { name: 'k9-i0', opts: { size: '16M' } },
            { name: 'k9-i1', opts: { size: '16M' } },
          ],
        },
      ],
    });
    process.stdout.write(
      `chaos kill -9: ${report.cycles} cycles, ${report.kills} kills, ${report.requests} requests (${report.undecided} cut off), ${report.filesChecked} file checks in ${(report.durationMs / 1000).toFixed(1)} s, seed ${SEED}, worst Err ${report.worstErrMs} ms (${report.worstErr})\n`,
    );
  });

  afterAll(async () => {
    await nv?.cleanup();
  });

  test(`the daemon comes back after each of ${CYCLES} kills`, () => {
    expect(report.cycles).toBe(CYCLES);
    expect(report.kills).toBe(CYCLES);
  });

  test('no acknowledged volume is lost', () => {
    expect(report.lostVolumes).toEqual([]);
  });

  test('mount counts are the acknowledged mounts; no orphan mount, loop device or helper process', () => {
    expect(report.orphans.slice(0, 20)).toEqual([]);
  });

  test('every file written keeps its checksum', () => {
    expect(report.filesChecked).toBeGreaterThan(0);
    expect(report.checksumMismatches.slice(0, 20)).toEqual([]);
  });

  test('the state file agrees, and requests that should work do', () => {
    expect(report.problems.slice(0, 20)).toEqual([]);
  });
});
