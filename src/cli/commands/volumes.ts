import type { Command } from 'commander';
import type { VolumeDetails } from '../../driver';
import { printJson, size, table } from '../output';
import { AdminOptions, clientFor, withAdminOptions } from './common';

function percent(d: VolumeDetails): string {
  const total = d.sizeBytes ?? (d.usedBytes !== undefined && d.availableBytes !== undefined ? d.usedBytes + d.availableBytes : undefined);
  if (d.usedBytes === undefined || !total) return '-';
  return `${Math.round((d.usedBytes / total) * 100)}%`;
}

function health(d: VolumeDetails): string {
  if (d.state === 'unreadable') return 'backend unreadable';
  if (d.status?.fenced) return 'fenced';
  if (d.healthy === undefined) return d.mountCount > 0 ? '?' : '-';
  return d.healthy ? 'ok' : 'broken';
}

/** `netvolctl ls` and `netvolctl inspect`: what the daemon sees on every backend. */
export function volumeCommands(program: Command): void {
  withAdminOptions(
    program
      .command('ls')
      .description('every volume on every backend, retained and archived ones included: size, use, which hosts have it attached, lease holder, health')
      .option('--fast', 'skip measuring usage and health (reads only the backends\' listings)')
      .option('--json', 'print JSON'),
  ).action(async (opts: AdminOptions & { fast?: boolean }) => {
    const client = await clientFor(opts);
    const { volumes } = await client.json<{ volumes: VolumeDetails[] }>('GET', `/v1/volumes${opts.fast ? '?measure=0' : ''}`);
    if (opts.json) return printJson({ volumes });
    const rows = volumes.map((d) => [
      d.name,
      d.backend,
      d.state === 'live' ? (d.layout ?? '-') : `${d.layout ?? '-'} (${d.state})`,
      size(d.sizeBytes),
      size(d.usedBytes),
      percent(d),
      d.attachedOn.length > 0 ? d.attachedOn.join(',') : '-',
      d.leaseHolder === undefined ? '' : (d.leaseHolder ?? '-'),
      health(d),
      d.onRemove ?? '-',
    ]);
    process.stdout.write(table(['VOLUME', 'BACKEND', 'LAYOUT', 'SIZE', 'USED', 'USE%', 'ATTACHED ON', 'LEASE', 'HEALTH', 'ON REMOVE'], rows));
  });

  withAdminOptions(
    program
      .command('inspect')
      .description('one volume in detail (a live one; else its retained or archived copy)')
      .argument('<volume>', 'volume name')
      .option('--json', 'print JSON'),
  ).action(async (name: string, opts: AdminOptions) => {
    const client = await clientFor(opts);
    const { volume } = await client.json<{ volume: VolumeDetails }>('GET', `/v1/volumes/${encodeURIComponent(name)}`);
    if (opts.json) return printJson(volume);
    const { status, ...rest } = volume;
    const rows: Array<[string, string]> = Object.entries(rest).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') || '-' : String(v ?? '-')]);
    for (const [k, v] of Object.entries(status ?? {})) if (!(k in rest)) rows.push([`status.${k}`, typeof v === 'object' ? JSON.stringify(v) : String(v)]);
    process.stdout.write(table(['FIELD', 'VALUE'], rows));
  });
}
