/**
 * `npm run trials -- --count 200 [--backend sftp|nfs] [--seed N] [--out [FILE]]`: the long run of
 * the randomized failover trials (trials.ts) on one three-host cluster. Prints a line per trial and
 * a table: trials, takeovers, median and worst takeover time, double attaches, fsck failures, lost
 * files; with --out, writes the table as Markdown (default bench/results/trials-<date>.md).
 * Run as root, from the repository, after `npm run build`.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Table from 'cli-table3';
import { Command, InvalidArgumentError } from 'commander';
import { BackendName, BACKENDS, Cluster, LEASE_SECONDS, startCluster } from './support/cluster';
import { describeTrial, runTrial, seededRandom, summarize, TrialResult, TrialSummary } from './trials';

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a whole number of at least 1');
  return n;
}

const program = new Command()
  .name('npm run trials --')
  .description('randomized failover trials of netvol image volumes across three simulated hosts')
  .option('--count <n>', 'how many trials', positiveInt, 200)
  .option('--backend <name>', 'sftp or nfs (default: both, taking turns)')
  .option('--seed <n>', 'seed of the random cut moments', positiveInt)
  .option('--out [file]', 'also write the table as Markdown (default bench/results/trials-<date>.md)')
  .parse();

const opts = program.opts<{ count: number; backend?: string; seed?: number; out?: string | boolean }>();
if (opts.backend !== undefined && !BACKENDS.includes(opts.backend as BackendName)) {
  program.error(`--backend must be one of ${BACKENDS.join(', ')}, not "${opts.backend}"`);
}
const backends: BackendName[] = opts.backend ? [opts.backend as BackendName] : BACKENDS;
const seed = opts.seed ?? Math.floor(Math.random() * 2 ** 31);

const seconds = (ms: number | undefined): string => (ms === undefined ? '-' : `${(ms / 1000).toFixed(1)} s`);
const HEAD = ['backend', 'trials', 'takeovers', 'median takeover', 'worst takeover', 'double attaches', 'fsck failures', 'lost files', 'other problems'];
const row = (s: TrialSummary): string[] => [
  s.backend, String(s.trials), String(s.takeovers), seconds(s.medianTakeoverMs), seconds(s.worstTakeoverMs),
  String(s.doubleAttaches), String(s.fsckFailures), String(s.lostFiles), String(s.problems),
];

function summaries(results: TrialResult[]): TrialSummary[] {
  const per = backends.map((b) => summarize(b, results.filter((r) => r.backend === b)));
  return backends.length > 1 ? [...per, summarize('all', results)] : per;
}

/** The commit the run's build came from, taken when the run starts (the tree may move on while it runs). */
function commitAtStart(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', 'src'], { encoding: 'utf8' }).trim();
    return dirty ? `${head} (src/ modified)` : head;
  } catch {
    return 'unknown';
  }
}
const commit = commitAtStart();

function markdown(results: TrialResult[], startedAt: Date, wallMs: number): string {
  const lines = [
    `# Failover trials, ${startedAt.toISOString().slice(0, 10)}`,
    '',
    `\`npm run trials -- --count ${opts.count}${opts.backend ? ` --backend ${opts.backend}` : ''} --seed ${seed}\` at ${commit}; three hosts on one machine ` +
      `(network + mount namespaces, dockerd 20.10 each), leaseSeconds ${LEASE_SECONDS}, ${(wallMs / 60000).toFixed(1)} min.`,
    '',
    'Each trial: a container on host A writes 16 KiB files, each synced; A is cut off the network at a random moment ' +
      '(0–3 s after its first synced file); host B runs a container on the same 64M image volume (asking again after a refusal) ' +
      'and writes and syncs 10 files; A comes back and its container is removed. Takeover: from the cut to B\'s container running. ' +
      'Double attaches: trials in which, sampled every 200 ms, two hosts had a read-write loop device over the image. ' +
      'Lost files: files B synced, or A synced before the cut, that are missing or differ in the image (e2fsck -fn, debugfs).',
    '',
    `| ${HEAD.join(' | ')} |`,
    `|${HEAD.map(() => '---').join('|')}|`,
    ...summaries(results).map((s) => `| ${row(s).join(' | ')} |`),
    '',
  ];
  const bad = results.filter((r) => !r.takeover || r.doubleAttachSamples > 0 || !r.fsckClean || r.lostFiles.length > 0 || r.problems.length > 0);
  if (bad.length > 0) lines.push('Trials that went wrong (first 20):', '', ...bad.slice(0, 20).map((r) => `- ${describeTrial(r)}`), '');
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const random = seededRandom(seed);
  const results: TrialResult[] = [];
  process.stderr.write(`trials: ${opts.count} on ${backends.join(' and ')}, seed ${seed}; starting three hosts\n`);
  let cluster: Cluster | undefined;
  let interrupted = false;
  const onSignal = (): void => {
    interrupted = true;
    process.stderr.write('trials: interrupted; finishing the current trial, then cleaning up\n');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    cluster = await startCluster();
    for (let i = 0; i < opts.count && !interrupted; i++) {
      const r = await runTrial(cluster, { backend: backends[i % backends.length], index: i, random });
      results.push(r);
      process.stderr.write(`${describeTrial(r)} [${(r.durationMs / 1000).toFixed(0)} s]\n`);
    }
  } finally {
    const left = (await cluster?.stop()) ?? [];
    if (left.length > 0) process.stderr.write(`trials: left behind: ${left.join('; ')}\n`);
  }
  // Plain text when the output is a file or a pipe (a CI log, tee).
  const table = new Table({ head: HEAD, ...(process.stdout.isTTY ? {} : { style: { head: [], border: [] } }) });
  for (const s of summaries(results)) table.push(row(s));
  process.stdout.write(`${table.toString()}\n`);
  if (opts.out !== undefined && opts.out !== false) {
    const file = typeof opts.out === 'string' ? opts.out : path.join('bench', 'results', `trials-${startedAt.toISOString().slice(0, 10)}.md`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, markdown(results, startedAt, Date.now() - startedAt.getTime()));
    process.stderr.write(`trials: wrote ${file}\n`);
  }
  const failed = results.some((r) => !r.takeover || r.doubleAttachSamples > 0 || !r.fsckClean || r.lostFiles.length > 0);
  process.exitCode = failed || interrupted ? 1 : 0;
}

main().catch((err: Error) => {
  process.stderr.write(`trials: ${err.stack ?? err.message}\n`);
  process.exitCode = 2;
});
