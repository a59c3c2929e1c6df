/**
 * `npm run chaos -- [--cycles 1000] [--requests 100000] [--docker-cycles 50] [--fault-rounds 3]
 * [--only fuzz,kill9,docker,faults] [--backends local,sftp,nfs]
 * [--seed N] [--out [FILE]]`: the long run of the chaos tier (the jest tier `chaos` runs the same
 * phases short). Prints a line per phase and a table: cycles, faults, requests, lost volumes,
 * orphans, checksum mismatches, crashes, worst Err time; with --out, writes it as Markdown
 * (default bench/results/chaos-<date>.md). Run as root, from the repository.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Table from 'cli-table3';
import { Command, InvalidArgumentError } from 'commander';
import { dockerdPhase } from './support/docker';
import { faultPhase, FAULT_KINDS } from './support/faults';
import { fuzzPhase, interruption, KILL_BACKENDS, killPhase, type KillBackend, type PhaseResult } from './support/phases';

function count(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a whole number');
  return n;
}
const PHASES = ['fuzz', 'kill9', 'docker', 'faults'] as const;
function list<T extends string>(allowed: readonly T[]) {
  return (v: string): T[] => {
    const items = v.split(',').map((s) => s.trim()).filter(Boolean);
    const bad = items.filter((i) => !allowed.includes(i as T));
    if (bad.length > 0) throw new InvalidArgumentError(`unknown ${bad.join(', ')}: choose from ${allowed.join(', ')}`);
    return items as T[];
  };
}

const program = new Command()
  .name('npm run chaos --')
  .description('the chaos tier, long: protocol fuzzing, kill -9 cycles and server faults against a real netvol daemon')
  .option('--cycles <n>', 'kill -9 cycles in all, shared by the backends in turn', count, 1000)
  .option('--requests <n>', 'fuzz requests', count, 100_000)
  .option('--docker-cycles <n>', 'kill -9 cycles during docker run on a real dockerd', count, 50)
  .option('--fault-rounds <n>', 'rounds of every server fault', count, 3)
  .option('--only <phases>', `phases to run (${PHASES.join(',')})`, list(PHASES), [...PHASES])
  .option('--backends <names>', `backends of the kill -9 cycles (${KILL_BACKENDS.join(',')})`, list(KILL_BACKENDS), [...KILL_BACKENDS])
  .option('--seed <n>', 'seed of every random choice', count)
  .option('--out [file]', 'also write the table as Markdown (default bench/results/chaos-<date>.md)')
  .option('--note <text>', 'a sentence to put under the Markdown table\'s title')
  .parse();

const opts = program.opts<{
  cycles: number; requests: number; dockerCycles: number; faultRounds: number; only: Array<(typeof PHASES)[number]>; backends: KillBackend[]; seed?: number; out?: string | boolean; note?: string;
}>();
const seed = opts.seed ?? Math.floor(Math.random() * 1_000_000);

const HEAD = ['phase', 'cycles', 'faults', 'requests', 'lost volumes', 'orphans', 'checksum mismatches', 'crashes', 'worst Err time', 'other problems', 'known bugs seen'];
const errTime = (ms: number): string => (ms === 0 ? '-' : ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`);
const others = (r: PhaseResult): number => r.problems.length - r.lostVolumes - r.orphans - r.checksumMismatches - r.crashes;
const knownCount = (r: PhaseResult): number => Object.values(r.knownBugs).reduce((a, b) => a + b, 0);
const row = (r: PhaseResult): string[] => [
  r.phase, String(r.cycles), String(r.faults), String(r.requests), String(r.lostVolumes), String(r.orphans), String(r.checksumMismatches),
  String(r.crashes), errTime(r.worstErrMs), String(Math.max(0, others(r))), String(knownCount(r)),
];
function total(results: PhaseResult[]): PhaseResult {
  const t: PhaseResult = {
    phase: 'all', cycles: 0, faults: 0, requests: 0, lostVolumes: 0, orphans: 0, checksumMismatches: 0, crashes: 0, worstErrMs: 0, problems: [], knownBugs: {}, notes: [], durationMs: 0,
  };
  for (const r of results) {
    t.cycles += r.cycles; t.faults += r.faults; t.requests += r.requests; t.lostVolumes += r.lostVolumes; t.orphans += r.orphans;
    t.checksumMismatches += r.checksumMismatches; t.crashes += r.crashes; t.worstErrMs = Math.max(t.worstErrMs, r.worstErrMs);
    t.problems.push(...r.problems); t.durationMs += r.durationMs;
    for (const [k, v] of Object.entries(r.knownBugs)) t.knownBugs[k] = (t.knownBugs[k] ?? 0) + v;
  }
  return t;
}

/** The commit the run's build came from, taken when the run starts. */
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

function markdown(results: PhaseResult[], startedAt: Date, wallMs: number): string {
  const args = process.argv.slice(2).filter((a, i, all) => a !== '--out' && all[i - 1] !== '--out' && !a.startsWith('--out=') && a !== '--note' && all[i - 1] !== '--note');
  const all = [...results, total(results)];
  const lines = [
    `# Chaos run, ${startedAt.toISOString().slice(0, 10)}`,
    '',
    ...(opts.note ? [opts.note, ''] : []),
    ...(interruption.requested ? ['**Interrupted**: the counts are those of the steps that ran.', ''] : []),
    `\`npm run chaos -- ${[...args, ...(opts.seed === undefined ? ['--seed', String(seed)] : [])].join(' ')}\` at ${commit}; ${(wallMs / 60000).toFixed(1)} min on one machine.`,
    '',
    'Protocol fuzzing: fast-check requests from 8 workers at once on a real daemon\'s socket (races on four names, hostile bodies on every route); ' +
      'after every batch the daemon\'s mount counts, the kernel\'s mounts and loop devices and state.json are checked against the acknowledged mounts. ' +
      'kill -9 cycles: random create / mount / write (sha256 recorded) / unmount / remove on directory and image volumes, the daemon SIGKILLed at a random moment and restarted; ' +
      'then no acknowledged volume may be missing, counts must be the acknowledged mount IDs, no orphan mount, loop device or helper, every checksum intact. ' +
      'kill -9 under docker run: a real dockerd runs a container writing a file into the volume and the daemon is killed at a random moment of it; once no container runs the daemon must hold no mount. ' +
      'Server faults: sshd and ganesha killed and restarted mid-write, a full server filesystem, permission denied, a server that stops answering; each must get a clear Err within timeoutSeconds, ' +
      'keep what was written before the fault, and leave the volume usable once the server is back.',
    '',
    `| ${HEAD.join(' | ')} |`,
    `|${HEAD.map(() => '---').join('|')}|`,
    ...all.map((r) => `| ${row(r).join(' | ')} |`),
    '',
    ...results.flatMap((r) => r.notes.map((n) => `- ${r.phase}: ${n}`)),
    '',
  ];
  const known = total(results).knownBugs;
  if (Object.keys(known).length > 0) {
    lines.push('Known bugs seen (reported, reproduced in test/chaos/known-bugs.test.ts, not counted as failures above):', '', ...Object.entries(known).map(([k, v]) => `- ${k}: ${v}`), '');
  }
  const problems = results.flatMap((r) => r.problems.map((p) => `${r.phase}: ${p}`));
  if (problems.length > 0) lines.push('Problems (first 30):', '', ...problems.slice(0, 30).map((p) => `- ${p.split('\n')[0].slice(0, 400)}`), '');
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const progress = (line: string): void => void process.stderr.write(`chaos: ${line}\n`);
  const results: PhaseResult[] = [];
  process.stderr.write(`chaos: seed ${seed}; phases ${opts.only.join(', ')}\n`);
  const onSignal = (): void => {
    interruption.requested = true;
    process.stderr.write('chaos: interrupted; finishing the current step, tearing down, then writing the table\n');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const phase = async (run: () => Promise<PhaseResult>): Promise<void> => {
    if (interruption.requested) return;
    const r = await run();
    results.push(r);
    progress(`${r.phase}: ${row(r).slice(1).map((v, i) => `${HEAD[i + 1]} ${v}`).join(', ')} [${(r.durationMs / 1000).toFixed(0)} s]`);
  };
  if (opts.only.includes('fuzz')) await phase(() => fuzzPhase({ requests: opts.requests, seed, progress }));
  if (opts.only.includes('kill9')) {
    const per = Math.floor(opts.cycles / opts.backends.length);
    for (const [i, backend] of opts.backends.entries()) {
      const cycles = per + (i < opts.cycles % opts.backends.length ? 1 : 0);
      if (cycles > 0) await phase(() => killPhase({ backend, cycles, seed: seed + i * 100_000, progress }));
    }
  }
  if (opts.only.includes('docker') && opts.dockerCycles > 0) await phase(() => dockerdPhase({ cycles: opts.dockerCycles, seed, progress }));
  if (opts.only.includes('faults')) {
    for (const kind of FAULT_KINDS) await phase(() => faultPhase({ kind, rounds: opts.faultRounds, seed, progress }));
  }
  const table = new Table({ head: HEAD, ...(process.stdout.isTTY ? {} : { style: { head: [], border: [] } }) });
  for (const r of [...results, total(results)]) table.push(row(r));
  process.stdout.write(`${table.toString()}\n`);
  if (opts.out !== undefined && opts.out !== false) {
    const file = typeof opts.out === 'string' ? opts.out : path.join('bench', 'results', `chaos-${startedAt.toISOString().slice(0, 10)}.md`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, markdown(results, startedAt, Date.now() - startedAt.getTime()));
    process.stderr.write(`chaos: wrote ${file}\n`);
  }
  process.exitCode = total(results).problems.length > 0 || interruption.requested ? 1 : 0;
}

main().catch((err: Error) => {
  process.stderr.write(`chaos: ${err.stack ?? err.message}\n`);
  process.exitCode = 2;
});
