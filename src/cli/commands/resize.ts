import type { Command } from 'commander';
import type { ResizeResult } from '../../driver';
import { printJson, size } from '../output';
import { AdminOptions, clientFor, withAdminOptions } from './common';

const HOW: Record<ResizeResult['mode'], string> = {
  online: 'online, while mounted on this host',
  offline: 'offline, mounted on this host for the resize only',
  unchanged: 'it already has that size: nothing to do',
};

/** `netvolctl resize VOL SIZE`: grows an image volume's quota, online where it is mounted. */
export function resizeCommands(program: Command): void {
  withAdminOptions(
    program
      .command('resize')
      .description('grow an image volume to SIZE, online while its containers use it (on the host that has it mounted; offline when no host has)')
      .argument('<volume>', 'volume name')
      .argument('<size>', 'the new size, as -o size= takes it: 512M, 2G, 1.5T (never smaller than now)')
      .option('--json', 'print JSON'),
  ).action(async (name: string, newSize: string, opts: AdminOptions) => {
    const client = await clientFor(opts);
    const { resize } = await client.json<{ resize: ResizeResult }>('POST', `/v1/volumes/${encodeURIComponent(name)}/resize`, { size: newSize });
    if (opts.json) return printJson(resize);
    const fsLine = resize.filesystemBytes === undefined ? '' : `; ${resize.fs} now ${size(resize.filesystemBytes)}`;
    process.stdout.write(`${resize.name}: ${size(resize.oldSizeBytes)} → ${size(resize.newSizeBytes)} (${HOW[resize.mode]}${fsLine}, ${(resize.durationMs / 1000).toFixed(1)} s)\n`);
  });
}
