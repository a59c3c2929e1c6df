/**
 * Ten randomized failover trials (trials.ts), split between sftp and nfs: each one must take over,
 * never attach the image on two hosts at once, leave a clean filesystem and lose no synced file.
 * `npm run trials -- --count 200` runs the long version. The seed is printed; set NETVOL_TRIALS_SEED
 * to repeat a run.
 */
import { BackendName, Cluster, LEASE_SECONDS, startCluster } from './support/cluster';
import { describeTrial, runTrial, seededRandom, summarize, TrialResult } from './trials';

jest.setTimeout(180_000);

const COUNT = 10;
const seed = Number(process.env.NETVOL_TRIALS_SEED ?? Math.floor(Math.random() * 2 ** 31));
const random = seededRandom(seed);
const results: TrialResult[] = [];
let cluster: Cluster | undefined;

beforeAll(async () => {
  process.stdout.write(`multihost trials: seed ${seed}\n`);
  cluster = await startCluster();
}, 240_000);

afterAll(async () => {
  for (const b of ['sftp', 'nfs']) process.stdout.write(`${JSON.stringify(summarize(b, results.filter((r) => r.backend === b)))}\n`);
  const left = (await cluster?.stop()) ?? [];
  expect(left).toEqual([]);
}, 240_000);

const trials = Array.from({ length: COUNT }, (_, i) => ({ index: i, backend: (i % 2 === 0 ? 'sftp' : 'nfs') as BackendName }));

test.each(trials)('trial $index on $backend: takeover, no double attach, clean fsck, no lost file', async ({ index, backend }) => {
  if (!cluster) throw new Error('the cluster did not start');
  const r = await runTrial(cluster, { backend, index, random });
  results.push(r);
  const account = describeTrial(r);
  expect({ account, takeover: r.takeover }).toEqual({ account, takeover: true });
  expect({ account, inTime: (r.takeoverMs ?? Infinity) <= (LEASE_SECONDS + 5) * 1000 }).toEqual({ account, inTime: true });
  expect({ account, doubleAttachSamples: r.doubleAttachSamples }).toEqual({ account, doubleAttachSamples: 0 });
  expect({ account, fsckClean: r.fsckClean, lost: r.lostFiles }).toEqual({ account, fsckClean: true, lost: [] });
  expect({ account, problems: r.problems }).toEqual({ account, problems: [] });
});
