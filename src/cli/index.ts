#!/usr/bin/env node
import path from 'node:path';
import { Command } from 'commander';
import { loadConfig } from '../config';
import { openLedger } from '../driver';
import { isNetvolError, redact } from '../errors';
import { readMountTable } from '../system';

/**
 * netvolctl: read-only ops commands over the config and the state file, safe to run next to a live
 * daemon (it never writes state and never speaks the plugin protocol).
 */
async function main(argv: string[]): Promise<void> {
  const program = new Command().name('netvolctl').description('inspect a netvol host: configuration and per-host state');
  program
    .command('check-config')
    .description('validate a daemon config file and print it as netvol reads it (secrets redacted)')
    .argument('[file]', 'config file (default: NETVOL_CONFIG, else the built-in default)')
    .action(async (file?: string) => {
      const config = await loadConfig(file ?? process.env.NETVOL_CONFIG);
      process.stdout.write(`${JSON.stringify(redact(config), null, 2)}\n`);
    });
  program
    .command('state')
    .description('list the volumes this host knows, their mount IDs and counts, and whether the kernel has them mounted')
    .option('-c, --config <file>', 'config file, for stateDir and mountRoot')
    .option('--json', 'print JSON')
    .action(async (opts: { config?: string; json?: boolean }) => {
      const config = await loadConfig(opts.config ?? process.env.NETVOL_CONFIG);
      const problems: string[] = [];
      const store = await openLedger(path.join(config.stateDir, 'state.json'), (m) => problems.push(m));
      const table = await readMountTable();
      const mounted = new Set(table.map((m) => m.mountPoint));
      const rows = Object.entries(store.data.volumes).map(([name, r]) => {
        const mp = path.join(config.mountRoot, name);
        const count = Object.values(r.mounts).reduce((a, b) => a + b, 0);
        const kernel = mounted.has(mp);
        const agrees = r.pending === undefined && (count > 0 ? kernel : true);
        return { name, backend: r.backend, layout: r.layout, mountIds: r.mounts, count, attached: r.attached, kernelMounted: kernel, pending: r.pending ?? null, agrees };
      });
      if (opts.json) {
        process.stdout.write(`${JSON.stringify({ problems, volumes: rows }, null, 2)}\n`);
        return;
      }
      for (const p of problems) process.stdout.write(`warning: ${p}\n`);
      process.stdout.write(`${'VOLUME'.padEnd(30)} ${'BACKEND'.padEnd(12)} ${'LAYOUT'.padEnd(9)} MOUNTS  KERNEL  NOTE\n`);
      for (const r of rows) {
        const note = r.pending ? `${r.pending} interrupted` : r.agrees ? '' : 'mounts held but not mounted: the daemon re-mounts it at start';
        process.stdout.write(`${r.name.padEnd(30)} ${r.backend.padEnd(12)} ${r.layout.padEnd(9)} ${String(r.count).padEnd(7)} ${(r.kernelMounted ? 'yes' : 'no').padEnd(7)} ${note}\n`);
      }
    });
  await program.parseAsync(argv);
}

main(process.argv).catch((err: unknown) => {
  process.stderr.write(`netvolctl: ${isNetvolError(err) ? err.message : (err as Error).message}\n`);
  process.exit(1);
});
