#!/usr/bin/env node
/**
 * `npm run bench`: runs the benchmark sections (each file in bench/sections/ that exports
 * `section`), prints one markdown table to stdout, and writes it with the machine's facts to
 * bench/results/latest.md. A MISS is a finding, not a failure: the exit code is 1 only when a
 * section could not run.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { BenchRun, SectionContext } from './lib/context';
import { hostFacts } from './lib/host';
import { JudgedRow, judge, renderTable } from './lib/table';
import { Section } from './lib/types';

/** This file is compiled to <outDir>/bench/index.js; the repository root is found by its package.json. */
function findRepoRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'bench'))) return dir;
    if (path.dirname(dir) === dir) throw new Error('cannot find the repository root above the compiled bench');
  }
}

function isSection(v: unknown): v is Section {
  const s = v as Section | undefined;
  return !!s && typeof s.name === 'string' && typeof s.description === 'string' && typeof s.run === 'function';
}

/** Every compiled module in sections/ exporting `section`, ordered by file name. */
function loadSections(): Section[] {
  const dir = path.join(__dirname, 'sections');
  const out: Section[] = [];
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.js')).sort()) {
    // Sections are discovered at run time, so they are loaded with require().
    const candidate = (require(path.join(dir, file)) as { section?: unknown }).section;
    if (!isSection(candidate)) throw new Error(`bench/sections/${file.replace(/\.js$/, '.ts')} does not export a \`section\``);
    if (out.some((s) => s.name === candidate.name)) throw new Error(`two bench sections are named ${candidate.name}`);
    out.push(candidate);
  }
  return out;
}

function writeAtomic(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

async function main(): Promise<number> {
  const repoRoot = findRepoRoot();
  const all = loadSections();
  const program = new Command()
    .name('npm run bench --')
    .description('Measure netvol against its baselines and print the table (a report: a MISS does not fail the run)')
    .option('--only <names>', `comma-separated sections to run (${all.map((s) => s.name).join(', ')})`)
    .option('--list', 'list the sections and exit')
    .option('--quick', 'fewer repetitions, to try the bench out; does not write the results file unless --out is given')
    .option('--out <file>', 'where to write the table', path.join(repoRoot, 'bench', 'results', 'latest.md'))
    .parse(process.argv);
  const opts = program.opts<{ only?: string; list?: boolean; quick?: boolean; out: string }>();

  if (opts.list) {
    for (const s of all) process.stdout.write(`${s.name.padEnd(14)} ${s.optIn ? '(--only) ' : ''}${s.description}\n`);
    return 0;
  }
  let chosen = all.filter((s) => !s.optIn);
  if (opts.only) {
    const names = opts.only.split(',').map((s) => s.trim()).filter(Boolean);
    const unknown = names.filter((n) => !all.some((s) => s.name === n));
    if (unknown.length > 0) {
      process.stderr.write(`bench: no section named ${unknown.join(', ')}; sections: ${all.map((s) => s.name).join(', ')}\n`);
      return 2;
    }
    chosen = all.filter((s) => names.includes(s.name));
  }
  const writeResults = !opts.quick || program.getOptionValueSource('out') === 'cli';

  const facts = hostFacts(repoRoot);
  const run = new BenchRun(repoRoot, !!opts.quick);
  const judged: JudgedRow[] = [];
  let interrupted = false;
  let current: SectionContext | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`bench: ${signal}: cleaning up\n`);
    void (async () => {
      await current?.close();
      await run.close();
      process.exit(130);
    })();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    for (const s of chosen) {
      const ctx = new SectionContext(run, s.name);
      current = ctx;
      const started = Date.now();
      ctx.log('starting');
      try {
        const rows = await s.run(ctx);
        for (const r of rows) judged.push(judge(s.name, r));
      } catch (err) {
        const e = err as Error;
        ctx.log(`failed: ${e.stack ?? e.message}`);
        judged.push(judge(s.name, { metric: 'section', error: e.message }));
      } finally {
        await ctx.close();
        current = undefined;
      }
      ctx.log(`done in ${Math.round((Date.now() - started) / 1000)} s`);
    }
  } finally {
    await run.close();
  }

  const table = renderTable(judged);
  const notes = run.notes.map((n) => `- ${n.section}: ${n.text}`);
  process.stdout.write(`${table}\n${notes.length ? `\n${notes.join('\n')}\n` : ''}`);

  if (writeResults) {
    const header = [
      '# netvol benchmark results',
      '',
      `Measured ${facts.date} on ${facts.kernel}, ${facts.cpus} CPUs (${facts.cpuModel}), ${facts.memoryGiB} GiB, Node ${facts.node};`,
      `commit ${facts.commit}; load average ${facts.loadAverage} at start, ${hostFacts(repoRoot).loadAverage} at end (other work on the machine adds noise; baselines run interleaved with netvol).`,
      `Sections: ${chosen.map((s) => s.name).join(', ')}${opts.quick ? ' (quick run: fewer repetitions)' : ''}. How to read this table: bench/README.md.`,
      '',
    ];
    writeAtomic(opts.out, `${header.join('\n')}\n${table}\n${notes.length ? `\n## Notes\n${notes.join('\n')}\n` : ''}`);
    process.stderr.write(`bench: wrote ${path.relative(process.cwd(), opts.out) || opts.out}\n`);
  }
  return judged.some((j) => j.verdict === 'ERROR') ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
