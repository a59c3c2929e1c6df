import path from 'node:path';
import type { Command } from 'commander';
import type { HostFile } from '../../driver';
import { isNetvolError, redact } from '../../errors';

// The config, the driver and the system helpers are loaded when one of these commands runs, not at
// every netvolctl start: they take over a second to load, and the commands that talk to the daemon
// need none of them.

/**
 * Commands that read the config, this host's state file and the backends' heartbeat files
 * directly, without the daemon: safe next to a live daemon (they never write the state file nor
 * change a volume). `hosts` opens each shared backend as the daemon does, so it writes a probe file
 * there and finishes removals still in its trash.
 */
export function localCommands(program: Command): void {
  program
    .command('check-config')
    .description('validate a daemon config file and print it as netvol reads it (secrets redacted)')
    .argument('[file]', 'config file (default: NETVOL_CONFIG, else the built-in default)')
    .action(async (file?: string) => {
      const { loadConfig } = await import('../../config');
      const config = await loadConfig(file ?? process.env.NETVOL_CONFIG);
      process.stdout.write(`${JSON.stringify(redact(config), null, 2)}\n`);
    });
  program
    .command('state')
    .description('list the volumes this host knows, their mount IDs and counts, and whether the kernel has them mounted')
    .option('-c, --config <file>', 'config file, for stateDir and mountRoot')
    .option('--json', 'print JSON')
    .action(async (opts: { config?: string; json?: boolean }) => {
      const [{ loadConfig }, { openLedger }, { readMountTable }] = await Promise.all([import('../../config'), import('../../driver'), import('../../system')]);
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
  program
    .command('hosts')
    .description('the cluster as each shared backend records it: every host, the volumes it has attached, and whether its heartbeat moves')
    .option('-c, --config <file>', 'config file, for the backends')
    .option('--wait <seconds>', 'read every heartbeat, wait this long, read again: a host whose heartbeat did not change is quiet (a lease of quiet means gone)', '3')
    .option('--json', 'print JSON')
    .action(async (opts: { config?: string; wait: string; json?: boolean }) => {
      const [{ loadConfig }, { buildBackends, readHostFiles }, { withTimeout }, { createLogger }] = await Promise.all([
        import('../../config'),
        import('../../driver'),
        import('../../system'),
        import('../../log'),
      ]);
      const config = await loadConfig(opts.config ?? process.env.NETVOL_CONFIG);
      const waitMs = Math.max(0, Number(opts.wait) * 1000 || 0);
      const backends = buildBackends(config, createLogger('error'));
      const rows: Array<{ backend: string; host: string; beating: boolean | null; leaseSeconds: number; volumes: Record<string, string>; error?: string }> = [];
      for (const backend of backends.values()) {
        if (!backend.capabilities.sharedAcrossHosts) continue;
        const read = async (): Promise<Map<string, HostFile>> => {
          const out = new Map<string, HostFile>();
          for (const [host, file] of await readHostFiles(backend, config.timeoutMs)) if (file) out.set(host, file);
          return out;
        };
        try {
          await withTimeout(backend.open(), config.timeoutMs, `opening backend ${backend.name}`);
          const before = await read();
          if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
          const after = waitMs > 0 ? await read() : before;
          for (const [host, file] of after) {
            const was = before.get(host);
            const beating = waitMs > 0 ? !(was && was.incarnation === file.incarnation && was.beat === file.beat) : null;
            rows.push({ backend: backend.name, host, beating, leaseSeconds: file.leaseSeconds, volumes: file.volumes });
          }
        } catch (err) {
          rows.push({ backend: backend.name, host: '', beating: null, leaseSeconds: 0, volumes: {}, error: isNetvolError(err) ? err.message : (err as Error).message });
        } finally {
          await backend.close().catch(() => undefined);
        }
      }
      if (opts.json) {
        process.stdout.write(`${JSON.stringify({ hosts: rows }, null, 2)}\n`);
        return;
      }
      process.stdout.write(`${'BACKEND'.padEnd(12)} ${'HOST'.padEnd(24)} ${'HEARTBEAT'.padEnd(10)} VOLUMES\n`);
      for (const r of rows) {
        if (r.error) {
          process.stdout.write(`${r.backend.padEnd(12)} ${'-'.padEnd(24)} ${'-'.padEnd(10)} cannot read: ${r.error}\n`);
          continue;
        }
        const beat = r.beating === null ? '?' : r.beating ? 'moving' : 'quiet';
        const vols = Object.entries(r.volumes).map(([v, h]) => (h === 'shared' ? v : `${v} (${h === 'exclusive' ? 'lease' : 'claiming'})`)).join(', ');
        process.stdout.write(`${r.backend.padEnd(12)} ${r.host.padEnd(24)} ${beat.padEnd(10)} ${vols || '-'}\n`);
      }
    });
}
