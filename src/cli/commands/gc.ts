import type { Command } from 'commander';
import type { GcReport } from '../../driver';
import { CliError } from '../client';
import { printJson, table } from '../output';
import { AdminOptions, clientFor, withAdminOptions } from './common';

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** "30d", "12h", "90m", "45s", "2w" in milliseconds. */
export function parseDuration(text: string, option: string): number {
  const m = /^(\d+)\s*([smhdw])$/.exec(text.trim());
  if (!m) throw new CliError(`${option} ${JSON.stringify(text)}: give a whole number and a unit, e.g. 30d, 12h, 90m, 45s, 2w`);
  return Number(m[1]) * UNITS[m[2]];
}

/** `netvolctl gc [--apply]`: what nobody uses, as the daemon finds it; removed only with --apply. */
export function gcCommands(program: Command): void {
  withAdminOptions(
    program
      .command('gc')
      .description('list what nobody uses (trash, old archives, retained volumes, records and removal markers of hosts long gone, and on this host orphan mountpoints, attachments, helpers and loop devices); --apply removes it')
      .option('--apply', 'remove what is listed (without it, nothing changes)')
      .option('--older-than <age>', 'archives archived longer ago than this (e.g. 30d) are garbage; without it, archives are kept')
      .option('--retained', 'retained volumes (removed with onRemove=retain) are garbage too')
      .option('--host-age <age>', 'a host counts as long gone once its heartbeat has not changed for this long as this daemon watched it (at least one lease)', '10m')
      .option('--json', 'print JSON'),
  ).action(async (opts: AdminOptions & { apply?: boolean; olderThan?: string; retained?: boolean; hostAge: string }) => {
    const body = {
      apply: opts.apply === true,
      retained: opts.retained === true,
      olderThanMs: opts.olderThan === undefined ? undefined : parseDuration(opts.olderThan, '--older-than'),
      hostAgeMs: parseDuration(opts.hostAge, '--host-age'),
    };
    const client = await clientFor(opts);
    const report = await client.json<GcReport>('POST', '/v1/gc', body);
    const failed = report.items.filter((i) => i.state === 'failed');
    if (opts.json) printJson(report);
    else if (report.items.length === 0) process.stdout.write('nothing to collect\n');
    else {
      const rows = report.items.map((i) => [i.kind, i.backend ?? '-', i.volume ?? '-', i.target, i.state === 'failed' ? `failed: ${i.error}` : i.state, i.reason]);
      process.stdout.write(table(['KIND', 'BACKEND', 'VOLUME', 'WHAT', 'STATE', 'WHY'], rows));
      if (!report.applied) process.stdout.write('dry run: nothing was changed; run again with --apply to remove these\n');
    }
    if (failed.length > 0) process.exitCode = 1;
  });
}
