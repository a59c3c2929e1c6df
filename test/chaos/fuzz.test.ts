import { startNetvol, type Netvol } from '../harness/netvol';
import { quietChecks, runFuzz, tearDown, type FuzzReport } from './support/fuzz';
import { MountModel } from './support/model';

/** The CI short run: 10,000 requests. `npm run chaos` runs 100,000. */
const REQUESTS = Number(process.env.CHAOS_FUZZ_REQUESTS ?? 10_000);
const SEED = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000);

jest.setTimeout(600_000);

describe('protocol fuzzing over the real socket of a real daemon', () => {
  let nv: Netvol;
  let report: FuzzReport;

  beforeAll(async () => {
    nv = await startNetvol({ extraConfig: { timeoutSeconds: 10, logLevel: 'info' } });
    report = await runFuzz(nv, { requests: REQUESTS, concurrency: 8, seed: SEED, deadlineMs: 60_000 });
    process.stdout.write(
      `chaos fuzz: ${report.requests} requests in ${(report.durationMs / 1000).toFixed(1)} s, seed ${SEED}, answers by status ${JSON.stringify(report.answersByStatus)}, successes ${JSON.stringify(report.succeeded)}, worst Err ${report.worstErrMs} ms (${report.worstErr}), known bugs seen ${JSON.stringify(report.knownBugs)}\n`,
    );
  });

  afterAll(async () => {
    await nv?.cleanup();
  });

  test(`the daemon answers all ${REQUESTS} requests and never dies`, () => {
    expect(report.requests).toBeGreaterThanOrEqual(REQUESTS);
    expect(report.crashes).toEqual([]);
    // The races reached the volumes, not only the validators.
    for (const route of ['VolumeDriver.Create', 'VolumeDriver.Mount', 'VolumeDriver.Unmount', 'VolumeDriver.Remove']) {
      expect(report.succeeded[route] ?? 0).toBeGreaterThan(REQUESTS / 1000);
    }
    expect(report.hangs).toEqual([]);
  });

  test('every answer is a JSON object with a readable Err or a result', () => {
    expect(report.badAnswers.slice(0, 20)).toEqual([]);
  });

  test('the checks see a mount the model does not hold (they can fail)', async () => {
    const model = new MountModel();
    const c = await nv.request('VolumeDriver.Create', { Name: 'fz-probe' });
    expect(c.json).toEqual({ Err: '' });
    const m = await nv.request('VolumeDriver.Mount', { Name: 'fz-probe', ID: 'untold' });
    expect(m.json?.Err).toBe('');
    const problems = await quietChecks(nv, model);
    expect(problems.join('\n')).toMatch(/fz-probe.*untold/);
    expect(problems.join('\n')).toMatch(/orphan mount/);
    model.mounted('fz-probe', 'untold');
    expect(await tearDown(nv, model)).toEqual([]);
  });

  test('mount counts, mounts and the state file match the acknowledged mounts after every batch and after tear-down', () => {
    expect(report.problems.slice(0, 20)).toEqual([]);
  });
});
